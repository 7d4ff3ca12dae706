/**
 * The scheduler's edge: feeds it events (requests, load outcomes, exits, time) and performs its actions with a
 * ProcessRunner (spawn, stop), resolving or rejecting waiting requests. All side effects of the proxy's model
 * management live here; all decisions live in scheduler.ts.
 */
import { errorMessage, isGglibError } from "../core/errors.js";
import type { ServerConfig } from "../core/config.js";
import type { ServerEvent } from "../core/events.js";
import type { ServerHandle } from "../core/handle.js";
import type { ProcessRunner } from "../core/ports.js";
import type { ProxyModel } from "./catalog.js";
import type { ContextEvent } from "./context/context-cache.js";
import type { UsageStats } from "./forward.js";
import { ProxyHttpError } from "./http-util.js";
import { parseMemoryLog, processGpuBytes, processRss } from "./memory.js";
import type { ProxyMetrics } from "./metrics.js";
import {
  Scheduler,
  type ModelState,
  type SchedulerAction,
  type SchedulerEvent,
  type SchedulerOptions,
} from "./scheduler.js";

export interface ControllerOptions extends SchedulerOptions {
  /** Deadline for one load, ms (default 300 000). */
  loadTimeoutMs?: number;
  /** SIGTERM → SIGKILL grace when stopping a model, ms (default 10 000). */
  stopGraceMs?: number;
  /** Use the process's resident memory as its measured need when llama-server prints no buffer sizes (CPU). */
  measureRss?: boolean;
  /** Lines of log kept per model for /api/logs. */
  logLines?: number;
  /** Steps around a model's life (the context cache); each is bounded by its owner and never throws. */
  hooks?: ModelHooks;
}

/**
 * Seams for features that act at a model's start and stop (src/proxy/context/): a pre-start step that may change
 * the launch config, a post-ready step that runs before the first request is dispatched, and a pre-stop step that
 * runs before any graceful stop (eviction, TTL, unload, reload, shutdown) while the process still answers.
 */
export interface ModelHooks {
  prepare?(model: ProxyModel): Promise<ServerConfig>;
  afterReady?(model: string, handle: ServerHandle): Promise<void>;
  beforeStop?(model: string, handle: ServerHandle, reason: string): Promise<void>;
  /** The process ended without a graceful stop (crash, hang, failed load). */
  exited?(model: string): void;
  /** Extra per-model fields for /api/status. */
  status?(model: string): Record<string, unknown> | undefined;
  /** A finished request's usage/timings as llama-server reported them. */
  observe?(model: string, usage: UsageStats): void;
}

export interface Lease {
  readonly id: string;
  readonly model: string;
  readonly instance: number;
  readonly handle: ServerHandle;
  /** The request is over (call exactly once; later calls do nothing). */
  release(): void;
}

export type ProxyEvent =
  | { type: "state"; model: string; from: string; to: string; reason?: string; at: number }
  | { type: "progress"; model: string; value: number; stage: string; at: number }
  | { type: "health"; model: string; status: string; at: number }
  | { type: "crash"; model: string; reason: string; at: number }
  | { type: "log"; model: string; line: string }
  | ContextEvent;

export interface ModelStatusReport {
  name: string;
  aliases: string[];
  path: string;
  state: string;
  pid?: number;
  port?: number;
  uptimeS?: number;
  inFlight: number;
  queued: number;
  estimatedBytes: number;
  measuredBytes?: number;
  lastUsed?: string;
  ttlLeftS?: number;
  pinned: boolean;
  failures: number;
  lastError?: string;
  loads: number;
  crashes: number;
  progress?: number;
  /** The context cache's state for this model (src/proxy/context/). */
  context?: Record<string, unknown>;
}

interface WaiterRec {
  resolve: (v: { instance: number } | undefined) => void;
  reject: (e: ProxyHttpError) => void;
}

interface Running {
  handle: ServerHandle;
  instance: number;
  /** Open forwards, aborted before a forced stop. */
  aborts: Set<(reason: Error) => void>;
  logs: string[];
}

let seq = 0;

export class ModelController {
  readonly scheduler: Scheduler;
  private models = new Map<string, ProxyModel>();
  private running = new Map<string, Running>();
  private starting = new Map<string, { instance: number; abort: AbortController; startedAt: number; logs: string[] }>();
  private waiters = new Map<string, WaiterRec>();
  private logs = new Map<string, string[]>();
  private progress = new Map<string, number>();
  private exitReasons = new Map<string, { instance: number; reason: string }>();
  private listeners = new Set<(e: ProxyEvent) => void>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopsInFlight = new Set<Promise<void>>();
  private readonly unsubscribe: () => void;
  private readonly opts: Required<Pick<ControllerOptions, "loadTimeoutMs" | "stopGraceMs" | "measureRss" | "logLines">>;
  private readonly hooks: ModelHooks;

  constructor(
    private readonly runner: ProcessRunner,
    models: readonly ProxyModel[],
    options: ControllerOptions = {},
    private readonly metrics?: ProxyMetrics,
    private readonly now: () => number = Date.now,
  ) {
    this.opts = {
      loadTimeoutMs: options.loadTimeoutMs ?? 300_000,
      stopGraceMs: options.stopGraceMs ?? 10_000,
      measureRss: options.measureRss ?? false,
      logLines: options.logLines ?? 500,
    };
    this.hooks = options.hooks ?? {};
    for (const m of models) this.models.set(m.name, m);
    this.scheduler = new Scheduler(
      models.map((m) => m.spec),
      options,
    );
    this.unsubscribe = runner.on((e) => this.onRunnerEvent(e));
  }

  // ---- public API used by the HTTP layer ------------------------------------------------------------------

  catalog(): ProxyModel[] {
    return [...this.models.values()];
  }

  getModel(name: string): ProxyModel | undefined {
    return this.models.get(name);
  }

  /** Whether a request for `model` would be served without waiting. */
  isReady(model: string): boolean {
    return this.scheduler.model(model)?.status === "ready";
  }

  /**
   * Waits until `model` is ready and reserves a request on it. Rejects with ProxyHttpError (404/503/502…).
   * `signal`: the client went away → leaves the queue.
   */
  async acquire(model: string, opts: { signal?: AbortSignal; activity?: boolean } = {}): Promise<Lease> {
    const id = `q${++seq}`;
    const got = await this.wait(id, model, "request", opts.signal, opts.activity ?? true);
    const lease = this.lease(id, model, got?.instance);
    if (!lease) {
      // the model went away between dispatch and now (cannot happen synchronously, kept for safety)
      this.feed({ type: "requestDone", id, now: this.now() });
      throw new ProxyHttpError(
        503,
        "model_unavailable",
        `Model '${model}' stopped before the request could be sent. Retry.`,
        1,
      );
    }
    return lease;
  }

  /**
   * The hot path: a request for a model that is ready is dispatched synchronously (no promise, no abort
   * signal). Undefined when the model is not ready: use acquire().
   */
  tryAcquire(model: string, activity = true): Lease | undefined {
    if (this.scheduler.model(model)?.status !== "ready") return undefined;
    const id = `q${++seq}`;
    let instance: number | undefined;
    this.waiters.set(id, { resolve: (v) => (instance = v?.instance), reject: () => {} });
    this.feed({ type: "request", id, model, kind: "request", activity, now: this.now() });
    if (this.waiters.delete(id)) {
      // not dispatched at once (cannot happen for a ready model): leave the queue
      this.feed({ type: "cancel", id, now: this.now() });
      return undefined;
    }
    const lease = this.lease(id, model, instance);
    if (!lease && instance !== undefined) this.feed({ type: "requestDone", id, now: this.now() });
    return lease;
  }

  private lease(id: string, model: string, instance: number | undefined): Lease | undefined {
    const run = this.running.get(model);
    if (instance === undefined || !run || run.instance !== instance) return undefined;
    let released = false;
    return {
      id,
      model,
      instance,
      handle: run.handle,
      release: () => {
        if (released) return;
        released = true;
        this.feed({ type: "requestDone", id, now: this.now() });
      },
    };
  }

  /** Loads a model (management API / preload); resolves once it is ready. */
  async load(model: string, signal?: AbortSignal): Promise<void> {
    await this.wait(`l${++seq}`, model, "load", signal, true);
  }

  unload(model: string): void {
    this.feed({ type: "unload", model, now: this.now() });
  }

  /** Registers an open forward so a forced stop can abort it first. Returns the unregister function. */
  trackUpstream(model: string, instance: number, abort: (reason: Error) => void): () => void {
    const run = this.running.get(model);
    if (!run || run.instance !== instance) return () => {};
    run.aborts.add(abort);
    return () => run.aborts.delete(abort);
  }

  /** Why a model's connection broke: waits up to `waitMs` for an exit to be seen. */
  async explainFailure(model: string, instance: number, err: Error, waitMs = 300): Promise<string> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const r = this.exitReasons.get(model);
      if (r && r.instance === instance) return `llama-server for '${model}' ${r.reason}`;
      if (Date.now() >= deadline) return `${err.message} (model '${model}')`;
      await new Promise((res) => setTimeout(res, 25));
    }
  }

  /** Replace the catalog (hot reload). Unchanged running models keep running and keep their requests. */
  updateCatalog(models: readonly ProxyModel[]): void {
    const next = new Map(models.map((m) => [m.name, m]));
    // Keep the old ProxyModel for running models whose settings changed until they have stopped: the scheduler
    // applies the new spec on restart; the server config is looked up at start time, so replace now is fine
    // for unchanged and not-running models, and for changed ones the next start uses the new config.
    for (const [name, m] of next) this.models.set(name, m);
    this.feed({ type: "catalog", models: models.map((m) => m.spec), now: this.now() });
    for (const name of [...this.models.keys()])
      if (!next.has(name) && !this.scheduler.model(name)) this.models.delete(name);
  }

  /** A finished request's usage (for the hooks: the context cache verifies reuse from it). */
  observeUsage(model: string, usage: UsageStats | undefined): void {
    if (usage && this.hooks.observe) this.hooks.observe(model, usage);
  }

  /** Sends an event of a feature beside the controller (the context cache) to /api/events listeners. */
  publish(e: ProxyEvent): void {
    this.emit(e);
  }

  on(listener: (e: ProxyEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  modelLogs(model: string, lines = 200): string[] {
    const l = this.logs.get(model) ?? [];
    return l.slice(Math.max(0, l.length - lines));
  }

  status(): ModelStatusReport[] {
    const now = this.now();
    const out: ModelStatusReport[] = [];
    for (const name of this.scheduler.modelNames()) {
      const st = this.scheduler.model(name)!;
      const pm = this.models.get(name);
      const run = this.running.get(name);
      const r: ModelStatusReport = {
        name,
        aliases: pm?.aliases ?? [],
        path: pm?.entry.path ?? "",
        state: st.status,
        inFlight: st.inFlight,
        queued: this.scheduler.waiting(name).length,
        estimatedBytes: st.spec.estimateBytes,
        pinned: st.spec.pinned === true,
        failures: st.failures,
        loads: st.loads,
        crashes: st.crashes,
      };
      if (run) {
        r.pid = run.handle.pid;
        r.port = run.handle.port;
        r.uptimeS = Math.round((now - run.handle.startedAt) / 1000);
      }
      if (st.measuredBytes !== undefined) r.measuredBytes = st.measuredBytes;
      if (st.lastUsed > 0) r.lastUsed = new Date(st.lastUsed).toISOString();
      const ttl = this.scheduler.ttlOf(name);
      if (ttl > 0 && st.status === "ready")
        r.ttlLeftS =
          st.inFlight > 0 ? Math.round(ttl / 1000) : Math.max(0, Math.round((st.lastUsed + ttl - now) / 1000));
      if (st.lastError) r.lastError = st.lastError;
      const p = this.progress.get(name);
      if (p !== undefined && (st.status === "loading" || st.status === "pending")) r.progress = p;
      const ctx = this.hooks.status?.(name);
      if (ctx) r.context = ctx;
      out.push(r);
    }
    return out;
  }

  state(model: string): Readonly<ModelState> | undefined {
    return this.scheduler.model(model);
  }

  loadProgress(model: string): number | undefined {
    return this.progress.get(model);
  }

  /**
   * Drain and stop everything: waiters get 503, requests in flight may finish until `drainMs`, then their
   * upstreams are aborted and every process is stopped.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.feed({ type: "shutdown", now: this.now() });
    const deadline = Date.now() + drainMs;
    while (
      Date.now() < deadline &&
      [...this.running.keys()].some((m) => (this.scheduler.model(m)?.inFlight ?? 0) > 0)
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const run of this.running.values()) for (const a of run.aborts) a(new Error("the proxy is shutting down"));
    for (const s of this.starting.values()) s.abort.abort(new Error("the proxy is shutting down"));
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.stopsInFlight]);
    await this.runner.stopAll({ graceMs: Math.min(this.opts.stopGraceMs, 5_000) });
    this.unsubscribe();
  }

  // ---- internals -----------------------------------------------------------------------------------------

  private wait(
    id: string,
    model: string,
    kind: "request" | "load",
    signal: AbortSignal | undefined,
    activity: boolean,
  ) {
    return new Promise<{ instance: number } | undefined>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new ProxyHttpError(499, "client_closed", "The client went away."));
        return;
      }
      const onAbort = () => {
        if (!this.waiters.has(id)) return;
        this.waiters.delete(id);
        this.feed({ type: "cancel", id, now: this.now() });
        reject(new ProxyHttpError(499, "client_closed", "The client went away."));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.set(id, {
        resolve: (v) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      this.feed({ type: "request", id, model, kind, activity, now: this.now() });
    });
  }

  private feed(event: SchedulerEvent): void {
    const actions = this.scheduler.handle(event);
    for (const a of actions) this.perform(a);
    this.armTimer();
  }

  private perform(a: SchedulerAction): void {
    switch (a.type) {
      case "dispatch": {
        const w = this.waiters.get(a.id);
        this.waiters.delete(a.id);
        if (w) w.resolve({ instance: a.instance });
        else if (a.kind === "request") this.feed({ type: "requestDone", id: a.id, now: this.now() });
        break;
      }
      case "reject": {
        const w = this.waiters.get(a.id);
        this.waiters.delete(a.id);
        w?.reject(new ProxyHttpError(a.status, a.code, a.message, a.retryAfterS));
        break;
      }
      case "start":
        this.start(a.model, a.instance);
        break;
      case "stop":
        this.stop(a.model, a.instance, a.reason, a.abort);
        break;
      case "state":
        this.emit({
          type: "state",
          model: a.model,
          from: a.from,
          to: a.to,
          ...(a.reason ? { reason: a.reason } : {}),
          at: this.now(),
        });
        if (a.to === "stopping" && a.reason && this.metrics) this.metrics.unloaded(a.model, a.reason);
        break;
      case "forgotten":
        this.models.delete(a.model);
        break;
    }
  }

  private start(model: string, instance: number): void {
    const pm = this.models.get(model);
    if (!pm) {
      queueMicrotask(() =>
        this.feed({ type: "loadFailed", model, instance, reason: "not in the catalog", now: this.now() }),
      );
      return;
    }
    const abort = new AbortController();
    const startedAt = this.now();
    const rec = { instance, abort, startedAt, logs: [] as string[] };
    this.starting.set(model, rec);
    this.progress.set(model, 0);
    this.exitReasons.delete(model);
    const prepared = this.hooks.prepare ? this.hooks.prepare(pm).catch(() => pm.server) : Promise.resolve(pm.server);
    prepared
      .then((server) =>
        this.runner.start(server, {
          signal: abort.signal,
          readyTimeoutMs: this.opts.loadTimeoutMs,
          onProgress: (p) => {
            this.progress.set(model, p.value);
            this.emit({ type: "progress", model, value: p.value, stage: p.stage, at: this.now() });
          },
        }),
      )
      .then(async (handle) => {
        // restore before the first request is dispatched (bounded by the hook; a failure only costs the reuse)
        if (!abort.signal.aborted && this.hooks.afterReady) await this.hooks.afterReady(model, handle).catch(() => {});
        return handle;
      })
      .then(
        (handle) => {
          if (this.starting.get(model) === rec) this.starting.delete(model);
          if (!abort.signal.aborted && !this.runner.isRunning(handle)) {
            this.hooks.exited?.(model);
            this.feed({ type: "loadFailed", model, instance, reason: "exited right after loading", now: this.now() });
            return;
          }
          this.metrics?.load(model, (this.now() - startedAt) / 1000, true);
          if (abort.signal.aborted) {
            // stopped while loading, but the start won the race: stop the process now
            this.trackStop(
              this.runner
                .stop(handle, { graceMs: this.opts.stopGraceMs })
                .catch(() => {})
                .then(() => {
                  this.feed({ type: "stopped", model, instance, now: this.now() });
                }),
            );
            return;
          }
          this.running.set(model, { handle, instance, aborts: new Set(), logs: rec.logs });
          this.progress.set(model, 1);
          this.feed({ type: "loadSucceeded", model, instance, now: this.now() });
          this.measure(model, instance, handle, rec.logs);
        },
        (e: unknown) => {
          if (this.starting.get(model) === rec) this.starting.delete(model);
          const reason = describeStartError(e);
          this.hooks.exited?.(model);
          if (!abort.signal.aborted) this.metrics?.load(model, (this.now() - startedAt) / 1000, false);
          this.feed({ type: "loadFailed", model, instance, reason, now: this.now() });
        },
      );
  }

  /**
   * What the running server really uses: its buffer-size log lines when it printed them (-lv 4), else on a
   * RAM budget its resident memory, on a VRAM budget its GPU memory as nvidia-smi reports it.
   */
  private measure(model: string, instance: number, handle: ServerHandle, logs: string[]): void {
    const report = (bytes: number | undefined) => {
      if (bytes !== undefined && bytes > 0)
        this.feed({ type: "memoryMeasured", model, instance, bytes, now: this.now() });
    };
    const fromLog = parseMemoryLog(logs);
    if (fromLog !== undefined) return report(fromLog);
    if (this.opts.measureRss) return report(processRss(handle.pid));
    processGpuBytes(handle.pid).then(report, () => {});
  }

  private stop(model: string, instance: number, reason: string, abortRequests: boolean): void {
    const run = this.running.get(model);
    if (run && run.instance === instance) {
      if (abortRequests) for (const a of run.aborts) a(new Error(`model '${model}' is being stopped (${reason})`));
      this.running.delete(model);
      // save what the process holds first (bounded by the hook; a failed save never blocks the stop)
      const saved = this.hooks.beforeStop
        ? this.hooks.beforeStop(model, run.handle, reason).catch(() => {})
        : Promise.resolve();
      const p = saved
        .then(() => this.runner.stop(run.handle, { graceMs: this.opts.stopGraceMs }))
        .catch(() => {})
        .then(() => this.feed({ type: "stopped", model, instance, now: this.now() }));
      this.trackStop(p);
      return;
    }
    const s = this.starting.get(model);
    if (s && s.instance === instance) {
      // the start's rejection (or its late success) reports the end
      s.abort.abort(new Error(`model '${model}' unloaded while loading`));
      return;
    }
    queueMicrotask(() => this.feed({ type: "stopped", model, instance, now: this.now() }));
  }

  private trackStop(p: Promise<void>): void {
    this.stopsInFlight.add(p);
    void p.finally(() => this.stopsInFlight.delete(p));
  }

  private modelOfHandle(handle: ServerHandle): { model: string; instance: number; logs: string[] } | undefined {
    const run = this.running.get(handle.model);
    if (run && run.handle.id === handle.id) return { model: handle.model, instance: run.instance, logs: run.logs };
    const s = this.starting.get(handle.model);
    if (s) return { model: handle.model, instance: s.instance, logs: s.logs };
    return undefined;
  }

  private onRunnerEvent(e: ServerEvent): void {
    const model = e.handle.model;
    switch (e.type) {
      case "log": {
        this.appendLog(model, e.line);
        const m = this.modelOfHandle(e.handle);
        if (m && m.logs.length < 400 && /buffer size =/.test(e.line)) m.logs.push(e.line);
        break;
      }
      case "health": {
        this.emit({ type: "health", model, status: e.status.status, at: e.at });
        const run = this.running.get(model);
        if (e.status.status === "unhealthy" && run && run.handle.id === e.handle.id)
          this.onHung(model, run, e.status.reason);
        break;
      }
      case "exited": {
        const run = this.running.get(model);
        if (e.expected || !run || run.handle.id !== e.handle.id) break;
        const reason = e.signal ? `signal ${e.signal}` : `exit code ${e.exitCode}`;
        this.exitReasons.set(model, { instance: run.instance, reason: `exited unexpectedly (${reason})` });
        this.running.delete(model);
        for (const a of run.aborts) a(new Error(`llama-server exited (${reason})`));
        this.metrics?.crashed(model);
        this.hooks.exited?.(model);
        this.emit({ type: "crash", model, reason, at: e.at });
        this.feed({
          type: "crashed",
          model,
          instance: run.instance,
          reason: `exited unexpectedly (${reason})`,
          now: this.now(),
        });
        break;
      }
      default:
        break;
    }
  }

  /**
   * The runner's health monitor found a ready server not answering (hung, e.g. stopped or deadlocked): treat it
   * like a crash. Its requests end with an error (streams: SSE error + [DONE]), the process is killed (SIGTERM,
   * then SIGKILL after a short grace), and the next request starts the model again.
   */
  private onHung(model: string, run: Running, why: string): void {
    const reason = `stopped answering its health checks (${why}); it was killed and restarts on the next request`;
    this.exitReasons.set(model, { instance: run.instance, reason });
    this.running.delete(model);
    for (const a of run.aborts) a(new Error(`llama-server for '${model}' ${reason}`));
    this.metrics?.crashed(model);
    this.hooks.exited?.(model);
    this.emit({ type: "crash", model, reason: `hung: ${why}`, at: this.now() });
    this.trackStop(this.runner.stop(run.handle, { graceMs: 1_000 }).catch(() => {}));
    this.feed({ type: "crashed", model, instance: run.instance, reason: `hung: ${why}`, now: this.now() });
  }

  private appendLog(model: string, line: string): void {
    let l = this.logs.get(model);
    if (!l) this.logs.set(model, (l = []));
    l.push(line);
    if (l.length > this.opts.logLines) l.splice(0, l.length - this.opts.logLines);
    if (this.listeners.size > 0) this.emit({ type: "log", model, line });
  }

  private emit(e: ProxyEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  private armTimer(): void {
    const at = this.scheduler.nextWakeAt();
    if (at === undefined) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.feed({ type: "tick", now: this.now() });
      },
      Math.max(0, at - this.now()) + 5,
    );
    this.timer.unref();
  }
}

function describeStartError(e: unknown): string {
  // the runner's message already carries llama-server's own reason (its first error line)
  if (isGglibError(e)) return e.details.hint && !/: \S/.test(e.message) ? `${e.message} ${e.details.hint}` : e.message;
  return errorMessage(e);
}
