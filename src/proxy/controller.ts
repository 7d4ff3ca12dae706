/**
 * The scheduler's edge: feeds it events (requests, load outcomes, exits, time) and performs its actions with a
 * ProcessRunner (spawn, stop), resolving or rejecting waiting requests. All side effects of the proxy's model
 * management live here; all decisions live in scheduler.ts (and its eviction policy, eviction.ts).
 *
 * State: one ModelRuntime per model (how to launch it, its log, its current process), the waiting requests'
 * promises, the listeners and the one timer. Time comes from the injected clock.
 */
import { errorMessage, HttpError, isGglibError } from "../core/errors.js";
import type { ServerConfig } from "../core/config.js";
import type { ServerEvent } from "../core/events.js";
import type { ServerHandle } from "../core/handle.js";
import type { ProcessRunner } from "../core/ports.js";
import type { ProxyModel } from "./catalog.js";
import type { UsageStats } from "./forward.js";
import { rejectionError } from "./http/rejections.js";
import { parseMemoryLog, parseMemorySplit, processGpuBytes, processRss } from "./memory.js";
import { ggmlAbortMessage } from "../process/llama-log.js";
import { LogBuffer } from "../process/log-buffer.js";
import type { ContextStatus, ModelStatusReport, ProxyEvent } from "./api-types.js";
import type { RpcChecker } from "./rpc.js";
import type { ProxyMetrics } from "./metrics.js";
import {
  Scheduler,
  type ModelState,
  type SchedulerAction,
  type SchedulerEvent,
  type SchedulerOptions,
  type StopReason,
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
  /** The proxy's own log (a failed stop is reported here too). */
  log?: (line: string) => void;
  /** Steps around a model's life (the context cache); each is bounded by its owner and never throws. */
  hooks?: ModelHooks;
  /**
   * RPC models (a `rpc` setting): their workers are checked before each start, a refusal fails the load with its
   * words; the split goes into `/api/status` (rpc.ts).
   */
  rpc?: Pick<RpcChecker, "preflight" | "status">;
  /**
   * The load's first stage for a model whose files must be fetched first (a config `hf:` model not in the cache,
   * src/proxy/hf-fetch.ts): the fetch to wait for (shared by every waiter; it resolves once the catalog has the
   * files), or undefined when there is none. Rejects with the HttpError its waiters get.
   */
  download?: (model: ProxyModel, onProgress: (value: number) => void) => Promise<void> | undefined;
}

/**
 * Seams for features that act at a model's start and stop (src/proxy/context/): a pre-start step that may change
 * the launch config, a post-ready step that runs before the first request is dispatched, and a pre-stop step that
 * runs before any graceful stop (eviction, TTL, unload, reload, shutdown) while the process still answers.
 */
export interface ModelHooks {
  prepare?(model: ProxyModel): Promise<ServerConfig>;
  /** May ask for a fresh process before the first request (`restart`: why; e.g. a restore wedged llama-server). */
  afterReady?(model: string, handle: ServerHandle): Promise<AfterReady | void>;
  /** `served`: the requests this process was given (so a hook can tell whether it saw the usage of all of them). */
  beforeStop?(model: string, handle: ServerHandle, reason: StopReason, served: number): Promise<void>;
  /** The process ended without a graceful stop (crash, hang, failed load). */
  exited?(model: string): void;
  /** The model's `context` field of /api/status (the context cache's state). */
  status?(model: string): ContextStatus | undefined;
  /** A finished request's usage/timings as llama-server reported them. */
  observe?(model: string, usage: UsageStats): void;
}

/** What the post-ready step found: `restart` (the reason) when the process must not serve; at most once per load. */
export interface AfterReady {
  restart?: string;
}

/**
 * A reserved request on a ready model's process: everything its holder (the relay) needs until the request is
 * over, so that it asks the lease, not the controller.
 */
export interface Lease {
  readonly id: string;
  readonly model: string;
  readonly instance: number;
  readonly handle: ServerHandle;
  /**
   * Part of an answer came from the process (`bytes` of it; headers count as 1): proof that it makes progress, which
   * the health monitor's hang rule reads (a busy server is not a hung one). Cheap: one addition.
   */
  received(bytes: number): void;
  /** Registers something open on the process (a forward), so that a forced stop or a crash cuts it first. */
  track(open: Abortable): void;
  untrack(open: Abortable): void;
  /**
   * Whether the process still serves its requests: the model is ready, or draining (evicted, but it stops only once
   * its requests in flight, this one included, are done), on the same process. A broken connection may be resent.
   */
  isCurrent(): boolean;
  /** Why a connection to the process broke: waits up to `waitMs` for its exit (or abort line) to say why. */
  explainFailure(err: Error, waitMs?: number): Promise<string>;
  /**
   * The request is over (call exactly once; later calls do nothing): `usage`, what llama-server reported, goes to
   * the model's hooks (the context cache) before the scheduler hears that the request is done.
   */
  release(usage?: UsageStats): void;
}

/** A request queued for a model that is not ready yet: what its holder may tell the client while it waits. */
export interface PendingLease {
  readonly model: string;
  /** `room`: the model waits for room (others stop first, or it is stopping); `loading`: its process starts. */
  readonly stage: "room" | "loading";
  /** The load's progress, 0..1, while the process loads (undefined before the first report, or waiting for room). */
  readonly progress: number | undefined;
  /** Calls `listener` with each load progress report (0..1) of the model; returns the way to stop. */
  onProgress(listener: (value: number) => void): () => void;
}

/** Something in flight on a model's process that a forced stop cuts first (an open forward). */
export interface Abortable {
  abort(reason: Error): void;
}

/** The wire shapes the controller writes: one definition, shared with the dashboard (api-types.ts). */
export type { ModelStatusReport, ProxyEvent };

/** What the controller knows of one model beside the scheduler's state. */
interface ModelRuntime {
  /** How to launch it (replaced on reload; kept for a removed model until it is forgotten). */
  model: ProxyModel;
  /**
   * The log ring for /api/logs, across its processes: the runner's own buffer (`ProcessRunner.logs`) is one
   * process's and goes with it, while this one keeps a crashed or failed process's last lines beside its
   * successor's, and the controller's own `[gglib]` lines (a failed stop, a restart before the first request).
   */
  readonly logs: LogBuffer;
  /** Load progress of the current (or last) start, 0..1. */
  progress?: number;
  /** Why its last process died unexpectedly: explains the broken connections of its requests. */
  lastExit?: { instance: number; reason: string };
  /** Its current process, from the start until it is gone. */
  proc?: ProcessRecord;
}

/** One llama-server process of a model. */
interface ProcessRecord {
  readonly instance: number;
  /** starting: the runner's start is under way; running: ready; stuck: its stop failed (it may live on). */
  phase: "starting" | "running" | "stuck";
  /** Aborts the start. */
  readonly abort: AbortController;
  readonly startedAt: number;
  handle?: ServerHandle;
  /** Open forwards, aborted before a forced stop. */
  readonly forwards: Set<Abortable>;
  /** llama-server's buffer-size lines: what it really uses (measure()). */
  readonly memoryLines: string[];
  /** The first ggml abort it printed (e.g. its RPC worker went away): why it died, in its own words. */
  fatal?: string;
  /** Requests dispatched to this process. */
  served: number;
  /** The post-ready step asked for a fresh process once (never twice in one load). */
  restarted?: boolean;
  /** What its requests received from it so far (answer bytes, 1 per headers): the hang rule's proof of progress. */
  readonly progress: { received: number };
}

interface WaiterRec {
  resolve: (v: { instance: number } | undefined) => void;
  reject: (e: HttpError) => void;
}

const MEMORY_LINE = /buffer size =/;
/** The scheduler's stop reasons (a hung process is `stopping` too, with its crash as the reason: not an unload). */
const STOP_REASONS: ReadonlySet<string> = new Set<StopReason>([
  "evict",
  "ttl",
  "unload",
  "reload",
  "removed",
  "shutdown",
]);
const MAX_MEMORY_LINES = 400;
/** Grace before SIGKILL for a server that stopped answering its health checks, ms. */
const HUNG_GRACE_MS = 1_000;

/** What a lease asks of its controller (one object per controller: a lease allocates no closures). */
interface LeaseHost {
  done(id: string, model: string, usage: UsageStats | undefined): void;
  liveProc(model: string, instance: number): ProcessRecord | undefined;
  forwardsOf(model: string): Set<Abortable> | undefined;
  isServing(model: string, instance: number): boolean;
  explainFailure(model: string, instance: number, err: Error, waitMs?: number): Promise<string>;
  status(model: string): ModelState["status"] | undefined;
  downloading(model: string): boolean;
  progress(model: string): number | undefined;
  on(listener: (e: ProxyEvent) => void): () => void;
}

/** A reserved request on a ready model; releasing it tells the scheduler the request is over. */
class ModelLease implements Lease {
  private released = false;
  constructor(
    private readonly host: LeaseHost,
    readonly id: string,
    readonly model: string,
    readonly instance: number,
    readonly handle: ServerHandle,
    private readonly progress: { received: number },
  ) {}

  received(bytes: number): void {
    this.progress.received += bytes;
  }

  track(open: Abortable): void {
    this.host.liveProc(this.model, this.instance)?.forwards.add(open);
  }

  untrack(open: Abortable): void {
    this.host.forwardsOf(this.model)?.delete(open);
  }

  isCurrent(): boolean {
    return this.host.isServing(this.model, this.instance);
  }

  explainFailure(err: Error, waitMs?: number): Promise<string> {
    return this.host.explainFailure(this.model, this.instance, err, waitMs);
  }

  release(usage?: UsageStats): void {
    if (this.released) return;
    this.released = true;
    this.host.done(this.id, this.model, usage);
  }
}

/** A queued request's view of its model while it waits (acquire's `onWait`). */
class ModelWait implements PendingLease {
  constructor(
    private readonly host: LeaseHost,
    readonly model: string,
  ) {}

  get stage(): "room" | "loading" {
    const st = this.status();
    return st === "pending" || st === "unloaded" || st === "draining" || st === "stopping" ? "room" : "loading";
  }

  get progress(): number | undefined {
    return this.status() === "loading" ? this.host.progress(this.model) : undefined;
  }

  /** Its files being fetched (a config `hf:` model's first use) is the load's first stage. */
  private status(): ModelState["status"] | undefined {
    return this.host.downloading(this.model) ? "loading" : this.host.status(this.model);
  }

  onProgress(listener: (value: number) => void): () => void {
    return this.host.on((e) => {
      if (e.type === "progress" && e.model === this.model) listener(e.value);
    });
  }
}

export class ModelController {
  /** The decisions; others read them through the query methods (`state`, `ttlInfo`, `usedBytes`, `status`). */
  private readonly scheduler: Scheduler;
  private readonly runtimes = new Map<string, ModelRuntime>();
  private readonly waiters = new Map<string, WaiterRec>();
  private readonly listeners = new Set<(e: ProxyEvent) => void>();
  private readonly stopsInFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  /** tryAcquire's request while it is fed: a dispatch for it is caught here instead of through a waiter. */
  private syncId: string | undefined;
  private syncInstance: number | undefined;
  private readonly unsubscribe: () => void;
  /** The last request or load id handed out (`q…`, `l…`). */
  private seq = 0;
  /** Called when a process is lost or prints its abort line (explainFailure waits on it). */
  private readonly processNews = new Set<() => void>();
  /** Called when a request is over (shutdown's drain waits on it). */
  private readonly releases = new Set<() => void>();
  /** What leases and waits ask of the controller. */
  private readonly host: LeaseHost = {
    done: (id, model, usage) => {
      if (usage && this.hooks.observe) this.hooks.observe(model, usage);
      this.requestDone(id);
    },
    liveProc: (model, instance) => this.liveProc(model, instance),
    forwardsOf: (model) => this.runtimes.get(model)?.proc?.forwards,
    isServing: (model, instance) => {
      const m = this.scheduler.model(model);
      return (m?.status === "ready" || m?.status === "draining") && m.instance === instance;
    },
    explainFailure: (model, instance, err, waitMs) => this.explainFailure(model, instance, err, waitMs),
    status: (model) => this.scheduler.model(model)?.status,
    downloading: (model) => this.downloading.has(model),
    progress: (model) => this.runtimes.get(model)?.progress,
    on: (listener) => this.on(listener),
  };
  private readonly opts: Required<
    Pick<ControllerOptions, "loadTimeoutMs" | "stopGraceMs" | "measureRss" | "logLines" | "log">
  >;
  private readonly hooks: ModelHooks;
  private readonly rpc: ControllerOptions["rpc"];
  private readonly download: ControllerOptions["download"];
  /** Models whose download stage is under way, and why the last one failed (until a try succeeds). */
  private readonly downloading = new Set<string>();
  private readonly downloadErrors = new Map<string, string>();

  constructor(
    private readonly runner: ProcessRunner,
    models: readonly ProxyModel[],
    options: ControllerOptions = {},
    private readonly metrics?: ProxyMetrics,
    private readonly now: () => number = Date.now,
  ) {
    const { loadTimeoutMs, stopGraceMs, measureRss, logLines, log, hooks, rpc, download, ...schedulerOptions } =
      options;
    this.hooks = hooks ?? {};
    this.rpc = rpc;
    this.download = download;
    this.opts = {
      loadTimeoutMs: loadTimeoutMs ?? 300_000,
      stopGraceMs: stopGraceMs ?? 10_000,
      measureRss: measureRss ?? false,
      logLines: logLines ?? 500,
      log: log ?? (() => {}),
    };
    for (const m of models) this.runtimes.set(m.name, { model: m, logs: new LogBuffer(this.opts.logLines) });
    this.scheduler = new Scheduler(
      models.map((m) => m.spec),
      schedulerOptions,
    );
    this.unsubscribe = runner.on((e) => this.onRunnerEvent(e));
  }

  // ---- public API used by the HTTP layer ------------------------------------------------------------------

  catalog(): ProxyModel[] {
    return [...this.runtimes.values()].map((r) => r.model);
  }

  getModel(name: string): ProxyModel | undefined {
    return this.runtimes.get(name)?.model;
  }

  /** Whether a request for `model` would be served without waiting. */
  isReady(model: string): boolean {
    return this.scheduler.model(model)?.status === "ready";
  }

  /**
   * Waits until `model` is ready and reserves a request on it. Rejects with HttpError (404/503/502…).
   * `signal`: the client went away → leaves the queue. `onWait`: called at once (before this returns) when the
   * request is queued, i.e. it really has to wait; not when it is refused or dispatched at once. It gets the model's
   * stage and load progress to show meanwhile.
   */
  async acquire(
    model: string,
    opts: {
      signal?: AbortSignal;
      activity?: boolean;
      keepAliveMs?: number;
      onWait?: (pending: PendingLease) => void;
    } = {},
  ): Promise<Lease> {
    const id = `q${++this.seq}`;
    // onWait at most once: for the download stage, else for the scheduler's queue
    let waited = false;
    const onWait = (pending: PendingLease) => {
      if (waited) return;
      waited = true;
      opts.onWait?.(pending);
    };
    await this.fetchFirst(model, opts.signal, onWait);
    const got = await this.wait(id, model, "request", opts.signal, opts.activity ?? true, opts.keepAliveMs, onWait);
    const lease = this.lease(id, model, got?.instance);
    if (!lease) {
      // the model went away between dispatch and now (cannot happen synchronously, kept for safety)
      this.requestDone(id);
      throw new HttpError(
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
   * signal, no waiter record). Undefined when the model is not ready: use acquire().
   */
  tryAcquire(model: string, activity = true, keepAliveMs?: number): Lease | undefined {
    if (this.scheduler.model(model)?.status !== "ready") return undefined;
    const id = `q${++this.seq}`;
    this.syncId = id;
    this.syncInstance = undefined;
    this.feed({
      type: "request",
      id,
      model,
      kind: "request",
      activity,
      ...(keepAliveMs !== undefined ? { keepAliveMs } : {}),
      now: this.now(),
    });
    const instance = this.syncInstance;
    this.syncId = undefined;
    if (instance === undefined) {
      // not dispatched at once (cannot happen for a ready model): leave the queue
      this.feed({ type: "cancel", id, now: this.now() });
      return undefined;
    }
    const lease = this.lease(id, model, instance);
    if (!lease) this.requestDone(id);
    return lease;
  }

  /** Loads a model (management API / preload); resolves once it is ready. */
  async load(model: string, signal?: AbortSignal, keepAliveMs?: number): Promise<void> {
    await this.fetchFirst(model, signal);
    await this.wait(`l${++this.seq}`, model, "load", signal, true, keepAliveMs);
  }

  /** Sets a model's TTL as a request would (Ollama's keep_alive; see the scheduler's `keepAlive` event). */
  keepAlive(model: string, keepAliveMs: number): void {
    this.feed({ type: "keepAlive", model, keepAliveMs, now: this.now() });
  }

  unload(model: string): void {
    this.feed({ type: "unload", model, now: this.now() });
  }

  /**
   * Why a model's connection broke (Lease.explainFailure): waits up to `waitMs` for its exit to be seen, on the
   * controller's news of lost processes and abort lines, not by polling.
   */
  private async explainFailure(model: string, instance: number, err: Error, waitMs = 300): Promise<string> {
    const deadline = this.now() + waitMs;
    // a model on RPC workers whose process lives on may be aborting (a lost worker): wait a little longer for its
    // abort line or its exit, which say why
    const patience = this.now() + (this.runtimes.get(model)?.model.rpc ? Math.max(waitMs, 2_000) : waitMs);
    for (;;) {
      const rt = this.runtimes.get(model);
      const r = rt?.lastExit;
      if (r && r.instance === instance) return `llama-server for '${model}' ${r.reason}`;
      // it aborted and is still dying (printing a backtrace): its own last words say why
      const alive = rt?.proc?.instance === instance ? rt.proc : undefined;
      if (alive?.fatal && this.now() >= deadline) return `llama-server for '${model}' aborted: ${alive.fatal}`;
      const until = alive && !alive.fatal ? patience : deadline;
      if (this.now() >= until) return `${err.message} (model '${model}')`;
      await this.news(this.processNews, until - this.now());
    }
  }

  /** Resolves at the next call of `watchers`' members, or after `ms`. */
  private news(watchers: Set<() => void>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        watchers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      watchers.add(done);
    });
  }

  /** Tells whoever waits in `watchers` (each is called once, then removed by itself). */
  private tell(watchers: Set<() => void>): void {
    if (watchers.size > 0) for (const w of [...watchers]) w();
  }

  /** Replace the catalog (hot reload). Unchanged running models keep running and keep their requests. */
  updateCatalog(models: readonly ProxyModel[]): void {
    const next = new Set(models.map((m) => m.name));
    // A running model whose settings changed restarts with the new ones (the scheduler decides when); the launch
    // config is read at start time, so replacing it now is right for every model.
    for (const m of models) {
      const rt = this.runtimes.get(m.name);
      if (rt) rt.model = m;
      else this.runtimes.set(m.name, { model: m, logs: new LogBuffer(this.opts.logLines) });
    }
    this.feed({ type: "catalog", models: models.map((m) => m.spec), now: this.now() });
    for (const name of [...this.runtimes.keys()])
      if (!next.has(name) && !this.scheduler.model(name)) this.runtimes.delete(name);
  }

  /** Sends an event of a feature beside the controller (the context cache) to /api/events listeners. */
  publish(e: ProxyEvent): void {
    this.emit(e);
  }

  on(listener: (e: ProxyEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves true once a model has no process (unloaded, failed, or gone from the catalog), false when `timeoutMs`
   * passes first: a promise on its state events, not a polling loop.
   */
  whenSettled(model: string, timeoutMs: number): Promise<boolean> {
    const settled = () => {
      const st = this.state(model)?.status;
      return st === undefined || st === "unloaded" || st === "failed";
    };
    if (settled()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        off();
        resolve(ok);
      };
      const timer = setTimeout(() => done(settled()), timeoutMs);
      const off = this.on((e) => {
        if (e.type === "state" && e.model === model && settled()) done(true);
      });
    });
  }

  /** The model's last `lines` log lines, oldest first (its processes' and the controller's own). */
  modelLogs(model: string, lines = 200): string[] {
    return this.runtimes.get(model)?.logs.tail(Math.max(0, Math.floor(lines) || 0)) ?? [];
  }

  status(): ModelStatusReport[] {
    const now = this.now();
    return this.scheduler.modelNames().map((name) => this.statusOf(name, this.scheduler.model(name)!, now));
  }

  state(model: string): Readonly<ModelState> | undefined {
    return this.scheduler.model(model);
  }

  /**
   * The idle TTL that applies to a model now, ms (0: none; pinned models and a request's keep-alive count), and
   * whether a request asked for it to stop as soon as it is idle (keep-alive 0).
   */
  ttlInfo(model: string): { ttlMs: number; stopsWhenIdle: boolean } {
    return { ttlMs: this.scheduler.ttlOf(model), stopsWhenIdle: this.scheduler.stopsWhenIdle(model) };
  }

  /** Memory counted against the budget now (every model holding room: measured, or estimated until measured). */
  usedBytes(): number {
    return this.scheduler.usedBytes();
  }

  /**
   * Drain and stop everything: waiters get 503, requests in flight may finish until `drainMs`, then their
   * upstreams are aborted and every process is stopped.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.feed({ type: "shutdown", now: this.now() });
    // waits on the releases of the requests in flight, up to the drain's deadline
    const deadline = this.now() + drainMs;
    while (this.now() < deadline && this.anyInFlight()) await this.news(this.releases, deadline - this.now());
    const closing = new Error("the proxy is shutting down");
    for (const rt of this.runtimes.values()) {
      if (rt.proc?.phase === "running") for (const f of rt.proc.forwards) f.abort(closing);
      if (rt.proc?.phase === "starting") rt.proc.abort.abort(closing);
    }
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.stopsInFlight]);
    await this.runner.stopAll({ graceMs: Math.min(this.opts.stopGraceMs, 5_000) });
    this.unsubscribe();
  }

  /** A dispatched request is over (Lease.release). */
  private requestDone(id: string): void {
    this.feed({ type: "requestDone", id, now: this.now() });
    this.tell(this.releases);
  }

  // ---- queries on the records ----------------------------------------------------------------------------

  private lease(id: string, model: string, instance: number | undefined): Lease | undefined {
    if (instance === undefined) return undefined;
    const proc = this.liveProc(model, instance);
    return proc?.handle ? new ModelLease(this.host, id, model, instance, proc.handle, proc.progress) : undefined;
  }

  /** The model's running process if it is `instance`. */
  private liveProc(model: string, instance: number): ProcessRecord | undefined {
    const proc = this.runtimes.get(model)?.proc;
    return proc && proc.phase === "running" && proc.instance === instance ? proc : undefined;
  }

  /** The record of the process behind a runner handle, if it is the model's current one. */
  private procOf(handle: ServerHandle): { rt: ModelRuntime; proc: ProcessRecord } | undefined {
    const rt = this.runtimes.get(handle.model);
    const proc = rt?.proc;
    if (!rt || !proc) return undefined;
    // a starting process has no handle yet: the runner's events for it carry the model's name only
    if (proc.phase === "starting" ? proc.handle === undefined : proc.handle?.id === handle.id) return { rt, proc };
    return undefined;
  }

  private anyInFlight(): boolean {
    for (const [name, rt] of this.runtimes)
      if (rt.proc?.phase === "running" && (this.scheduler.model(name)?.inFlight ?? 0) > 0) return true;
    return false;
  }

  private statusOf(name: string, st: Readonly<ModelState>, now: number): ModelStatusReport {
    const rt = this.runtimes.get(name);
    const pm = rt?.model;
    const r: ModelStatusReport = {
      name,
      aliases: pm?.aliases ?? [],
      ...(pm?.presets ? { presets: pm.presets.map((p) => p.name) } : {}),
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
    const handle = rt?.proc?.phase === "starting" ? undefined : rt?.proc?.handle;
    if (handle) {
      r.pid = handle.pid;
      r.port = handle.port;
      r.uptimeS = Math.round((now - handle.startedAt) / 1000);
    }
    if (pm?.estimate.repack)
      r.repack = {
        bytes: pm.estimate.repack.bytes,
        buffers: { ...pm.estimate.repack.buffers },
      };
    if (pm?.arch) r.arch = { ...pm.arch };
    if (pm?.swaFull) r.swaFull = { ...pm.swaFull };
    if (st.measuredBytes !== undefined) r.measuredBytes = st.measuredBytes;
    if (st.lastUsed > 0) r.lastUsed = new Date(st.lastUsed).toISOString();
    const ttl = this.scheduler.ttlOf(name);
    if (ttl > 0 && st.status === "ready")
      r.ttlLeftS = st.inFlight > 0 ? Math.round(ttl / 1000) : Math.max(0, Math.round((st.lastUsed + ttl - now) / 1000));
    if (st.lastError) r.lastError = st.lastError;
    const p = rt?.progress;
    if (p !== undefined && (st.status === "loading" || st.status === "pending")) r.progress = p;
    // the download stage, before the scheduler sees the load
    const idle = st.status === "unloaded" || st.status === "failed";
    if (idle && this.downloading.has(name)) {
      r.state = "loading";
      r.stage = "download";
      r.progress = p ?? 0;
    } else if (st.status === "unloaded" && this.downloadErrors.has(name)) {
      r.state = "failed";
      r.lastError = this.downloadErrors.get(name)!;
    }
    const ctx = this.hooks.status?.(name);
    if (ctx) r.context = ctx;
    if (pm?.rpc && this.rpc) {
      const lines = rt?.proc?.memoryLines;
      const split = this.rpc.status(pm, lines && lines.length > 0 ? parseMemorySplit(lines) : undefined);
      if (split) r.rpc = split;
    }
    return r;
  }

  // ---- feeding the scheduler and performing its actions ----------------------------------------------------

  /**
   * The load's download stage (the `download` option): a model whose files must be fetched first waits for the
   * fetch (shared with the other waiters; no room is booked meanwhile), its progress published as the load's
   * (`progress` events with stage "download", the `PendingLease`'s progress). Rejects with the fetch's HttpError, or 499 when the
   * client goes away (the fetch goes on for the others).
   */
  private async fetchFirst(
    model: string,
    signal?: AbortSignal,
    onWait?: (pending: PendingLease) => void,
  ): Promise<void> {
    const rt = this.download ? this.runtimes.get(model) : undefined;
    if (!rt || !this.download || this.scheduler.model(model)?.status === "ready") return;
    // the first waiter of a download publishes its progress (once per step, whoever waits)
    const first = !this.downloading.has(model);
    const fetching = this.download(rt.model, (value) => {
      if (!first) return;
      const cur = this.runtimes.get(model);
      if (cur) cur.progress = value;
      this.emit({ type: "progress", model, value, stage: "download", at: this.now() });
    });
    if (!fetching) return;
    if (first) {
      // the first waiter of this download: the dashboard re-reads the status (state "loading", stage "download")
      this.downloading.add(model);
      rt.progress = 0;
      const from = this.scheduler.model(model)?.status ?? "unloaded";
      this.emit({ type: "state", model, from, to: "loading", reason: "downloading its files", at: this.now() });
      fetching.then(
        () => {
          this.downloading.delete(model);
          this.downloadErrors.delete(model);
        },
        (e: unknown) => {
          this.downloading.delete(model);
          const reason = errorMessage(e);
          this.downloadErrors.set(model, reason);
          this.emit({ type: "state", model, from: "loading", to: "failed", reason, at: this.now() });
        },
      );
    }
    if (signal?.aborted) throw new HttpError(499, "client_closed", "The client went away.");
    onWait?.(new ModelWait(this.host, model));
    if (!signal) return fetching;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(new HttpError(499, "client_closed", "The client went away."));
      signal.addEventListener("abort", onAbort, { once: true });
      fetching.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  private wait(
    id: string,
    model: string,
    kind: "request" | "load",
    signal: AbortSignal | undefined,
    activity: boolean,
    keepAliveMs?: number,
    onWait?: (pending: PendingLease) => void,
  ) {
    return new Promise<{ instance: number } | undefined>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new HttpError(499, "client_closed", "The client went away."));
        return;
      }
      const onAbort = () => {
        if (!this.waiters.has(id)) return;
        this.waiters.delete(id);
        this.feed({ type: "cancel", id, now: this.now() });
        reject(new HttpError(499, "client_closed", "The client went away."));
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
      this.feed({
        type: "request",
        id,
        model,
        kind,
        activity,
        ...(keepAliveMs !== undefined ? { keepAliveMs } : {}),
        now: this.now(),
      });
      // still a waiter after the scheduler saw it: queued (not refused, not dispatched at once)
      if (this.waiters.has(id)) onWait?.(new ModelWait(this.host, model));
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
        const proc = a.kind === "request" ? this.runtimes.get(a.model)?.proc : undefined;
        if (proc?.instance === a.instance) proc.served++;
        this.dispatch(a.id, a.instance, a.kind);
        break;
      }
      case "reject": {
        const w = this.waiters.get(a.id);
        this.waiters.delete(a.id);
        w?.reject(rejectionError(a));
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
        if (a.to === "stopping" && a.reason && STOP_REASONS.has(a.reason) && this.metrics)
          this.metrics.unloaded(a.model, a.reason);
        break;
      case "forgotten":
        this.runtimes.delete(a.model);
        break;
    }
  }

  private dispatch(id: string, instance: number, kind: "request" | "load"): void {
    if (id === this.syncId) {
      this.syncInstance = instance;
      return;
    }
    const w = this.waiters.get(id);
    this.waiters.delete(id);
    if (w) w.resolve({ instance });
    else if (kind === "request") this.requestDone(id);
  }

  // ---- the start sequence ----------------------------------------------------------------------------------

  /**
   * Starts a process for `model`: runner.start → (ready) the process is recorded as running → the post-ready
   * steps → loadSucceeded, which dispatches the waiting requests. Any failure feeds loadFailed.
   */
  private start(model: string, instance: number): void {
    const rt = this.runtimes.get(model);
    if (!rt) {
      queueMicrotask(() =>
        this.feed({ type: "loadFailed", model, instance, reason: "not in the catalog", now: this.now() }),
      );
      return;
    }
    const proc: ProcessRecord = {
      instance,
      phase: "starting",
      abort: new AbortController(),
      startedAt: this.now(),
      forwards: new Set(),
      memoryLines: [],
      served: 0,
      progress: { received: 0 },
    };
    rt.proc = proc;
    rt.progress = 0;
    rt.lastExit = undefined;
    // an RPC model's workers are checked first (a refusal fails the load with its words); then the pre-start step
    // (the context cache adds --slot-save-path) may change the launch config
    const pm = rt.model;
    const checked =
      pm.rpc && this.rpc
        ? this.rpc.preflight(pm).catch((e: unknown) => {
            throw new Error(isGglibError(e) && e.details.hint ? `${e.message} ${e.details.hint}` : errorMessage(e));
          })
        : Promise.resolve();
    this.launch(rt, proc, checked);
  }

  /** prepare → runner.start → onStarted (or onStartFailed). */
  private launch(rt: ModelRuntime, proc: ProcessRecord, checked: Promise<void> = Promise.resolve()): void {
    const pm = rt.model;
    const model = pm.name;
    const prepared = checked.then(() =>
      this.hooks.prepare ? this.hooks.prepare(pm).catch(() => pm.server) : pm.server,
    );
    prepared
      .then((server) =>
        this.runner.start(server, {
          signal: proc.abort.signal,
          readyTimeoutMs: this.opts.loadTimeoutMs,
          activity: () => proc.progress.received,
          onProgress: (p) => {
            rt.progress = p.value;
            this.emit({ type: "progress", model, value: p.value, stage: p.stage, at: this.now() });
          },
        }),
      )
      .then(
        (handle) => this.onStarted(rt, proc, handle),
        (e: unknown) => this.onStartFailed(rt, proc, e),
      );
  }

  private onStarted(rt: ModelRuntime, proc: ProcessRecord, handle: ServerHandle): void {
    const model = rt.model.name;
    this.metrics?.load(model, (this.now() - proc.startedAt) / 1000, true);
    proc.handle = handle;
    if (proc.abort.signal.aborted || rt.proc !== proc) {
      // stopped while loading, but the start won the race: stop the process now
      this.stopProcess(rt, proc, this.opts.stopGraceMs, true);
      return;
    }
    if (!this.hooks.afterReady) return this.onReady(rt, proc, handle);
    // the post-ready step (the context cache's restore), bounded by the hook: the process stays "starting", so
    // a stop aborts it and an exit is noticed below, and nothing is dispatched to it until loadSucceeded
    void this.hooks
      .afterReady(model, handle)
      .catch(() => undefined)
      .then((after) => {
        if (proc.abort.signal.aborted || rt.proc !== proc)
          return this.stopProcess(rt, proc, this.opts.stopGraceMs, true);
        if (after?.restart && !proc.restarted) return this.restartBeforeReady(rt, proc, handle, after.restart);
        if (!this.runner.isRunning(handle)) {
          this.hooks.exited?.(model);
          return this.onStartFailed(rt, proc, new Error("llama-server exited right after loading"));
        }
        this.onReady(rt, proc, handle);
      });
  }

  /**
   * The post-ready step found the process unfit to serve (a restore that never finished leaves llama-server's main
   * loop busy or blocked): kill it and start a fresh one for the same load; the waiters keep waiting.
   */
  private restartBeforeReady(rt: ModelRuntime, proc: ProcessRecord, handle: ServerHandle, why: string): void {
    const model = rt.model.name;
    proc.restarted = true;
    const line = `llama-server for '${model}' is restarted before its first request: ${why}`;
    this.opts.log(line);
    this.appendLog(rt, `[gglib] ${line}`);
    this.runner.stop(handle, { graceMs: HUNG_GRACE_MS }).then(
      () => {
        proc.handle = undefined;
        if (proc.abort.signal.aborted || rt.proc !== proc)
          return this.onStartFailed(rt, proc, new Error(`model '${model}' unloaded while loading`));
        this.launch(rt, proc);
      },
      (e: unknown) => this.onStartFailed(rt, proc, e),
    );
  }

  private onReady(rt: ModelRuntime, proc: ProcessRecord, handle: ServerHandle): void {
    const model = rt.model.name;
    proc.phase = "running";
    rt.progress = 1;
    this.feed({ type: "loadSucceeded", model, instance: proc.instance, now: this.now() });
    this.measure(model, proc.instance, handle, proc.memoryLines);
  }

  private onStartFailed(rt: ModelRuntime, proc: ProcessRecord, e: unknown): void {
    if (rt.proc === proc) rt.proc = undefined;
    this.hooks.exited?.(rt.model.name);
    if (!proc.abort.signal.aborted) this.metrics?.load(rt.model.name, (this.now() - proc.startedAt) / 1000, false);
    const reason = describeStartError(e);
    this.feed({ type: "loadFailed", model: rt.model.name, instance: proc.instance, reason, now: this.now() });
  }

  /**
   * What the running server really uses: its buffer-size log lines when it printed them (-lv 4), else on a
   * RAM budget its resident memory, on a VRAM budget its GPU memory as nvidia-smi reports it.
   */
  private measure(model: string, instance: number, handle: ServerHandle, lines: string[]): void {
    const report = (bytes: number | undefined) => {
      if (bytes !== undefined && bytes > 0)
        this.feed({ type: "memoryMeasured", model, instance, bytes, now: this.now() });
    };
    const fromLog = parseMemoryLog(lines);
    if (fromLog !== undefined) return report(fromLog);
    if (this.opts.measureRss) return report(processRss(handle.pid));
    processGpuBytes(handle.pid).then(report, () => {});
  }

  // ---- the stop sequence -----------------------------------------------------------------------------------

  /** The scheduler's stop: a running process is stopped; a starting one is aborted (its start reports the end). */
  private stop(model: string, instance: number, reason: StopReason, abortRequests: boolean): void {
    const rt = this.runtimes.get(model);
    const proc = rt?.proc;
    if (rt && proc && proc.instance === instance && proc.phase === "running") {
      if (abortRequests) {
        const why = new Error(`model '${model}' is being stopped (${reason})`);
        for (const f of proc.forwards) f.abort(why);
      }
      // the pre-stop step (the context cache saves the slots) runs while the process still answers
      const handle = proc.handle!;
      const before = this.hooks.beforeStop
        ? () => this.hooks.beforeStop!(model, handle, reason, proc.served)
        : undefined;
      this.stopProcess(rt, proc, this.opts.stopGraceMs, true, before);
      return;
    }
    if (proc && proc.instance === instance && proc.phase === "starting") {
      proc.abort.abort(new Error(`model '${model}' unloaded while loading`));
      return;
    }
    queueMicrotask(() => this.feed({ type: "stopped", model, instance, now: this.now() }));
  }

  /**
   * Stops a process: (pre-stop steps go first, while it still answers) → runner.stop → `stopped` when
   * `reportStopped`, or, when the stop failed (the process survived SIGKILL), `stopFailed`: the model stays
   * stuck with its room counted until the process is gone.
   */
  private stopProcess(
    rt: ModelRuntime,
    proc: ProcessRecord,
    graceMs: number,
    reportStopped: boolean,
    before?: () => Promise<void>,
  ): void {
    const handle = proc.handle!;
    if (rt.proc === proc) rt.proc = undefined;
    const model = rt.model.name;
    // a pre-stop step that fails or throws never blocks the stop
    const stopped = before
      ? before()
          .catch(() => {})
          .then(() => this.runner.stop(handle, { graceMs }))
      : this.runner.stop(handle, { graceMs });
    const p = stopped.then(
      () => {
        if (reportStopped) this.feed({ type: "stopped", model, instance: proc.instance, now: this.now() });
      },
      (e: unknown) => this.onStopFailed(rt, proc, e),
    );
    this.stopsInFlight.add(p);
    void p.finally(() => this.stopsInFlight.delete(p));
  }

  private onStopFailed(rt: ModelRuntime, proc: ProcessRecord, e: unknown): void {
    const model = rt.model.name;
    const reason = isGglibError(e) && e.details.hint ? `${e.message} ${e.details.hint}` : errorMessage(e);
    // the record stays, so the process's exit (if it ever comes) frees the room; a newer process wins
    if (!rt.proc) {
      proc.phase = "stuck";
      rt.proc = proc;
    }
    this.opts.log(`stop of ${model} failed; its memory stays counted until the process is gone: ${reason}`);
    this.appendLog(rt, `[gglib] stop failed: ${reason}`);
    this.feed({ type: "stopFailed", model, instance: proc.instance, reason, now: this.now() });
  }

  // ---- what the runner reports -----------------------------------------------------------------------------

  private onRunnerEvent(e: ServerEvent): void {
    switch (e.type) {
      case "log": {
        const rt = this.runtimes.get(e.handle.model);
        if (!rt) break;
        this.appendLog(rt, e.line);
        const proc = this.procOf(e.handle)?.proc;
        if (proc && proc.memoryLines.length < MAX_MEMORY_LINES && MEMORY_LINE.test(e.line))
          proc.memoryLines.push(e.line);
        if (proc && proc.fatal === undefined) {
          const abort = ggmlAbortMessage(e.line);
          if (abort) {
            proc.fatal = abort;
            this.tell(this.processNews);
          }
        }
        break;
      }
      case "health": {
        this.emit({ type: "health", model: e.handle.model, status: e.status.status, at: e.at });
        const found = this.procOf(e.handle);
        if (e.status.status === "unhealthy" && found?.proc.phase === "running")
          this.onHung(found.rt, found.proc, e.status.reason);
        break;
      }
      case "exited":
        this.onExited(e.handle, e.expected, e.signal ? `signal ${e.signal}` : `exit code ${e.exitCode}`, e.at);
        break;
      default:
        break;
    }
  }

  private onExited(handle: ServerHandle, expected: boolean, how: string, at: number): void {
    const found = this.procOf(handle);
    if (!found) return;
    this.tell(this.processNews);
    const { rt, proc } = found;
    const model = rt.model.name;
    if (proc.phase === "stuck") {
      // a process whose stop failed is gone after all: its room is free
      rt.proc = undefined;
      this.feed({ type: "stopped", model, instance: proc.instance, now: this.now() });
      return;
    }
    if (expected || proc.phase !== "running") return;
    // llama-server's own last words when it aborted (a lost RPC worker: "Remote RPC server crashed or …")
    const reason = `exited unexpectedly (${how})${proc.fatal ? `: ${proc.fatal}` : ""}`;
    this.died(rt, proc, reason, new Error(`llama-server exited (${how})`));
    this.emit({ type: "crash", model, reason: how, at });
    this.feed({ type: "crashed", model, instance: proc.instance, reason, now: this.now() });
  }

  /**
   * The runner's health monitor found a ready server not answering (hung, e.g. stopped or deadlocked): treat it
   * like a crash. Its requests end with an error (streams: SSE error + [DONE]), the process is killed (SIGTERM,
   * then SIGKILL after a short grace), and the next request starts the model again.
   */
  private onHung(rt: ModelRuntime, proc: ProcessRecord, why: string): void {
    const model = rt.model.name;
    const reason = `stopped answering its health checks (${why}); it was killed and restarts on the next request`;
    this.died(rt, proc, reason, new Error(`llama-server for '${model}' ${reason}`));
    this.emit({ type: "crash", model, reason: `hung: ${why}`, at: this.now() });
    // its room stays booked (the scheduler's `stopping`) until the kill is done: `stopped` frees it
    this.stopProcess(rt, proc, HUNG_GRACE_MS, true);
    this.feed({
      type: "crashed",
      model,
      instance: proc.instance,
      reason: `hung: ${why}`,
      alive: true,
      now: this.now(),
    });
  }

  /** A process is lost: remember why (for its broken requests), drop it, cut its open forwards. */
  private died(rt: ModelRuntime, proc: ProcessRecord, reason: string, cut: Error): void {
    rt.lastExit = { instance: proc.instance, reason };
    if (rt.proc === proc) rt.proc = undefined;
    for (const f of proc.forwards) f.abort(cut);
    this.metrics?.crashed(rt.model.name);
    this.hooks.exited?.(rt.model.name);
    this.tell(this.processNews);
    this.tell(this.releases); // its requests end now (shutdown's drain counts them no more)
  }

  // ---- logs, events, the timer -----------------------------------------------------------------------------

  private appendLog(rt: ModelRuntime, line: string): void {
    rt.logs.push(line);
    if (this.listeners.size > 0) this.emit({ type: "log", model: rt.model.name, line });
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
