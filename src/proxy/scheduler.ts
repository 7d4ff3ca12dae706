/**
 * The proxy's scheduler: a pure decision core. It holds the state of every model and every waiting request,
 * takes one event at a time (with the current time inside the event) and returns the actions to perform.
 * It never spawns, stops, forwards, replies or reads a clock: the controller (controller.ts) does those and feeds
 * the outcomes back as events. That makes every rule below testable without processes or real timers.
 *
 * Rules:
 * - single flight: requests for a model that is loading (or about to load) join that one load;
 * - a request for a resident (ready) model is dispatched at once, never behind another model's load/eviction/queue;
 * - capacity = at most `maxModels` models and at most `budgetBytes` of memory (estimated, replaced by measured);
 *   a model larger than the whole budget may still load when nothing else occupies memory;
 * - eviction picks idle, unpinned, ready models, least recently used first; when that is not enough, busy ones are
 *   drained: they take no new requests, their requests in flight finish, then they stop (never cut). The drain is
 *   bounded: past `drainTimeoutMs` the eviction is abandoned and the requests that needed the room get a 503;
 * - waiting requests are served first-in first-out; a model's waiters never take room reserved by an earlier one;
 * - TTL: a ready model idle (no request in flight) for its TTL since the end of its last request is stopped;
 *   a request may carry its own TTL for the model (`keepAliveMs`, Ollama's keep_alive: ms, 0 = stop as soon as
 *   idle, < 0 = never by TTL), which replaces the model's TTL until the model stops (pinned models ignore it);
 * - limits: `maxQueuePerModel` waiting requests per model, `queueTimeoutMs` per request → 503 with Retry-After;
 * - a failed load rejects its waiters with the reason and backs off (cooldown doubles per failure, bounded);
 * - a crash marks the model unloaded at once; the next request starts it again; a hang (the process lives on
 *   while it is killed) marks it stopping instead: its room stays booked until the process is gone (`stopped`), so
 *   no other model starts beside a process that still holds its memory;
 * - a stop that failed (the process survived SIGKILL) leaves the model "stuck": its room stays counted, its
 *   requests are refused, and only the process's exit frees it.
 *
 * Which models to evict is the policy in eviction.ts. Rejections carry a code and its data; the words a client
 * reads are written by the HTTP layer (http/rejections.ts).
 */
import type { ModelStatus } from "./api-types.js";
import { fits, isFreeing, planRoom } from "./eviction.js";

/** A model's state: one definition, shared with the dashboard (api-types.ts). */
export type { ModelStatus };

/** What the scheduler needs to know about a model (from the catalog). */
export interface ModelSpec {
  readonly name: string;
  /** Estimated memory need in bytes (0 when unknown). */
  readonly estimateBytes: number;
  readonly pinned?: boolean;
  /** Idle time before unload in ms; 0 or undefined = never (unless the global TTL applies). */
  readonly ttlMs?: number;
  /** Changes whenever a setting that needs a restart changes. */
  readonly fingerprint?: string;
  /**
   * RPC workers (`host:port`) it runs on. A worker serves one llama-server at a time, so two models that share a
   * worker never hold room together (eviction.ts). `estimateBytes` is then the share on this host only.
   */
  readonly rpc?: readonly string[];
}

export interface SchedulerOptions {
  /** At most this many models resident (loading or loaded). Default: unlimited. */
  maxModels?: number;
  /** Memory budget in bytes. Default: unlimited. */
  budgetBytes?: number;
  /** Global idle TTL in ms for models without their own (0 = never). */
  ttlMs?: number;
  /** Waiting requests per model before new ones get 503. Default 64. */
  maxQueuePerModel?: number;
  /** How long a request may wait for its model, ms. Default 300 000. */
  queueTimeoutMs?: number;
  /** How long an eviction waits for requests in flight, ms. Default 120 000. */
  drainTimeoutMs?: number;
  /** First cooldown after a failed load, ms (doubles per failure). Default 2 000. */
  backoffBaseMs?: number;
  /** Largest cooldown, ms. Default 60 000. */
  backoffMaxMs?: number;
}

export type StopReason = "evict" | "ttl" | "unload" | "reload" | "removed" | "shutdown";

export type WaiterKind = "request" | "load";

export type SchedulerEvent =
  /** A request (or a management load, kind "load") for a model. `activity: false` does not refresh the TTL. */
  | {
      type: "request";
      id: string;
      model: string;
      now: number;
      kind?: WaiterKind;
      activity?: boolean;
      /** This request's TTL for the model, set when it is dispatched (see the header). Undefined: unchanged. */
      keepAliveMs?: number;
    }
  /** Set a ready model's TTL now (Ollama's load idiom with keep_alive) and count it as used now. */
  | { type: "keepAlive"; model: string; keepAliveMs: number; now: number }
  /** A dispatched request finished (response ended, failed or was aborted). */
  | { type: "requestDone"; id: string; now: number }
  /** A waiting request's client went away. */
  | { type: "cancel"; id: string; now: number }
  | { type: "loadSucceeded"; model: string; instance: number; now: number }
  | { type: "loadFailed"; model: string; instance: number; reason: string; now: number }
  /** A stop we asked for has completed (the process is gone). */
  | { type: "stopped"; model: string; instance: number; now: number }
  /** A stop we asked for failed: the process did not exit (e.g. it survived SIGKILL). */
  | { type: "stopFailed"; model: string; instance: number; reason: string; now: number }
  /**
   * The process exited without being asked to, or (`alive`) it hung and is being killed: it still holds its room
   * until `stopped` (or `stopFailed`) reports it gone.
   */
  | { type: "crashed"; model: string; instance: number; reason: string; alive?: boolean; now: number }
  | { type: "memoryMeasured"; model: string; instance: number; bytes: number; now: number }
  /** Management unload. */
  | { type: "unload"; model: string; now: number }
  /** The catalog changed (hot reload): the full new list of models. */
  | { type: "catalog"; models: readonly ModelSpec[]; now: number }
  /** Time passed (the controller calls this at `nextWakeAt()`). */
  | { type: "tick"; now: number }
  /** Refuse new work, reject waiters, drain and stop everything. */
  | { type: "shutdown"; now: number };

export type SchedulerAction =
  | { type: "start"; model: string; instance: number }
  /** Stop the model's process. `abort`: cut its requests in flight first (only shutdown/forced unload). */
  | { type: "stop"; model: string; instance: number; reason: StopReason; abort: boolean }
  | { type: "dispatch"; id: string; model: string; instance: number; kind: WaiterKind }
  | RejectAction
  | { type: "state"; model: string; from: ModelStatus; to: ModelStatus; reason?: string }
  /** A model's spec was removed from the catalog and its process is gone. */
  | { type: "forgotten"; model: string };

/** Why a request was refused: a code and its data (the HTTP layer writes the words). */
export type Rejection =
  | { code: "model_not_found"; removed?: boolean }
  | { code: "shutting_down" }
  | { code: "queue_full"; queued: number }
  | { code: "queue_timeout"; timeoutS: number; waitingForRoom: boolean }
  /** `failures` is set while the model cools down after failed loads. */
  | { code: "model_load_failed"; reason: string; failures?: number }
  | { code: "model_unloaded" }
  | { code: "model_busy"; victim: string; drainS: number }
  | { code: "model_stop_failed"; reason: string };

export type RejectionCode = Rejection["code"];

/** A waiting request refused, with the HTTP status and Retry-After that go with it. */
export type RejectAction = {
  type: "reject";
  id: string;
  model: string;
  kind: WaiterKind;
  status: number;
  retryAfterS?: number;
} & Rejection;

export interface ModelState {
  spec: ModelSpec;
  status: ModelStatus;
  /** Number of the current (or last) process start; events for older instances are ignored. */
  instance: number;
  inFlight: number;
  /** End of the last request (or its start while one is in flight), ms. */
  lastUsed: number;
  measuredBytes?: number;
  failures: number;
  cooldownUntil: number;
  lastError?: string;
  /** Why it is draining. */
  drainReason?: StopReason;
  drainDeadline?: number;
  /** Removed from the catalog: forget it once stopped. */
  removed?: boolean;
  /** Spec to apply once the current process has stopped (a changed setting). */
  nextSpec?: ModelSpec;
  /** TTL set by the last request that carried one (ms; 0 = stop when idle; < 0 = never). Cleared on start. */
  keepAliveMs?: number;
  /** Counters for status/metrics. */
  loads: number;
  crashes: number;
}

export interface Waiter {
  readonly id: string;
  readonly model: string;
  readonly kind: WaiterKind;
  readonly enqueuedAt: number;
  readonly deadline: number;
  readonly activity: boolean;
  readonly keepAliveMs?: number;
}

interface Running {
  model: string;
  instance: number;
}

const DEFAULTS = {
  maxModels: Number.POSITIVE_INFINITY,
  budgetBytes: Number.POSITIVE_INFINITY,
  ttlMs: 0,
  maxQueuePerModel: 64,
  queueTimeoutMs: 300_000,
  drainTimeoutMs: 120_000,
  backoffBaseMs: 2_000,
  backoffMaxMs: 60_000,
};

/** States that occupy room (count and memory). */
const OCCUPYING: ReadonlySet<ModelStatus> = new Set(["pending", "loading", "ready", "draining", "stopping", "stuck"]);

/** How long a client is told to wait before retrying a model whose stop failed, s. */
const STUCK_RETRY_S = 30;

export class Scheduler {
  readonly options: Required<SchedulerOptions>;
  private readonly models = new Map<string, ModelState>();
  private queue: Waiter[] = [];
  private readonly running = new Map<string, Running>();
  private closing = false;
  private actions: SchedulerAction[] = [];

  constructor(specs: readonly ModelSpec[], options: SchedulerOptions = {}) {
    const o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options) as [keyof SchedulerOptions, number | undefined][]) {
      if (v !== undefined) o[k] = v;
    }
    this.options = o;
    for (const spec of specs) this.models.set(spec.name, newModelState(spec));
  }

  /** Apply one event; returns the actions to perform, in order. */
  handle(event: SchedulerEvent): SchedulerAction[] {
    this.actions = [];
    switch (event.type) {
      case "request":
        this.onRequest(
          event.id,
          event.model,
          event.now,
          event.kind ?? "request",
          event.activity ?? true,
          event.keepAliveMs,
        );
        break;
      case "keepAlive": {
        const m = this.models.get(event.model);
        if (m && !m.spec.pinned && (m.status === "ready" || m.status === "loading" || m.status === "pending")) {
          m.keepAliveMs = event.keepAliveMs;
          m.lastUsed = Math.max(m.lastUsed, event.now);
        }
        break;
      }
      case "requestDone":
        this.onRequestDone(event.id, event.now);
        break;
      case "cancel":
        this.queue = this.queue.filter((w) => w.id !== event.id);
        this.releaseAbandoned(event.now);
        break;
      case "loadSucceeded":
        this.onLoadSucceeded(event.model, event.instance, event.now);
        break;
      case "loadFailed":
        this.onLoadFailed(event.model, event.instance, event.reason, event.now);
        break;
      case "stopped":
        this.onStopped(event.model, event.instance, event.now);
        break;
      case "stopFailed":
        this.onStopFailed(event.model, event.instance, event.reason);
        break;
      case "crashed":
        this.onCrashed(event.model, event.instance, event.reason, event.alive === true, event.now);
        break;
      case "memoryMeasured": {
        const m = this.models.get(event.model);
        if (m && m.instance === event.instance && event.bytes > 0) m.measuredBytes = event.bytes;
        break;
      }
      case "unload":
        this.onUnload(event.model, event.now);
        break;
      case "catalog":
        this.onCatalog(event.models, event.now);
        break;
      case "tick":
        this.onTick(event.now);
        break;
      case "shutdown":
        this.onShutdown(event.now);
        break;
    }
    this.schedule(event.now);
    return this.actions;
  }

  // ---- queries -------------------------------------------------------------------------------------------

  model(name: string): Readonly<ModelState> | undefined {
    return this.models.get(name);
  }

  modelNames(): string[] {
    return [...this.models.keys()];
  }

  waiting(model?: string): readonly Waiter[] {
    return model === undefined ? this.queue : this.queue.filter((w) => w.model === model);
  }

  isClosing(): boolean {
    return this.closing;
  }

  /** Bytes a model counts for: measured when known, else the estimate. */
  need(name: string): number {
    const m = this.models.get(name);
    return m ? this.needOf(m) : 0;
  }

  /** TTL in ms that applies to a model (0 = none; a request's keep-alive of 0 also reads 0: see stopsWhenIdle). */
  ttlOf(name: string): number {
    const m = this.models.get(name);
    if (!m || m.spec.pinned) return 0;
    if (m.keepAliveMs !== undefined) return m.keepAliveMs > 0 ? m.keepAliveMs : 0;
    return m.spec.ttlMs !== undefined && m.spec.ttlMs > 0 ? m.spec.ttlMs : this.options.ttlMs;
  }

  /** A request asked for the model to stop as soon as it is idle (keep-alive 0). */
  stopsWhenIdle(name: string): boolean {
    const m = this.models.get(name);
    return m !== undefined && !m.spec.pinned && m.keepAliveMs === 0;
  }

  /** Memory counted as used now (all models holding room). */
  usedBytes(): number {
    let sum = 0;
    for (const m of this.models.values()) if (OCCUPYING.has(m.status)) sum += this.need(m.spec.name);
    return sum;
  }

  /** The earliest time a `tick` can change something, or undefined. */
  nextWakeAt(): number | undefined {
    let t = Number.POSITIVE_INFINITY;
    for (const w of this.queue) t = Math.min(t, w.deadline);
    for (const m of this.models.values()) {
      if (m.status === "draining" && m.drainDeadline !== undefined) t = Math.min(t, m.drainDeadline);
      if (m.status === "ready" && m.inFlight === 0) {
        const ttl = this.ttlOf(m.spec.name);
        if (ttl > 0) t = Math.min(t, m.lastUsed + ttl);
        if (this.stopsWhenIdle(m.spec.name)) t = Math.min(t, m.lastUsed);
      }
      if (m.status === "failed" && this.queue.some((w) => w.model === m.spec.name)) t = Math.min(t, m.cooldownUntil);
    }
    return Number.isFinite(t) ? t : undefined;
  }

  // ---- events --------------------------------------------------------------------------------------------

  private onRequest(
    id: string,
    name: string,
    now: number,
    kind: WaiterKind,
    activity: boolean,
    keepAliveMs: number | undefined,
  ): void {
    const ka = keepAliveMs !== undefined ? { keepAliveMs } : {};
    const m = this.models.get(name);
    if (!m) {
      this.reject({ id, model: name, kind }, 404, { code: "model_not_found" });
      return;
    }
    if (this.closing) {
      this.reject({ id, model: name, kind }, 503, { code: "shutting_down" }, 5);
      return;
    }
    if (m.status === "stuck") {
      this.reject({ id, model: name, kind }, 503, this.stuckRejection(m), STUCK_RETRY_S);
      return;
    }
    if (m.status === "ready") {
      // Fast path: a resident model is served now, whatever else is queued or loading.
      this.dispatchNow({ id, model: name, kind, enqueuedAt: now, deadline: now, activity, ...ka }, m, now);
      return;
    }
    if (m.status === "failed" && now < m.cooldownUntil) {
      this.rejectCooldown({ id, model: name, kind }, m, now);
      return;
    }
    const queued = this.queue.reduce((n, w) => (w.model === name ? n + 1 : n), 0);
    if (queued >= this.options.maxQueuePerModel) {
      this.reject(
        { id, model: name, kind },
        503,
        { code: "queue_full", queued },
        retryAfter(this.options.queueTimeoutMs / 10),
      );
      return;
    }
    this.queue.push({
      id,
      model: name,
      kind,
      enqueuedAt: now,
      deadline: now + this.options.queueTimeoutMs,
      activity,
      ...ka,
    });
  }

  private onRequestDone(id: string, now: number): void {
    const r = this.running.get(id);
    if (!r) return;
    this.running.delete(id);
    const m = this.models.get(r.model);
    if (!m || m.instance !== r.instance) return;
    if (m.inFlight > 0) m.inFlight--;
    m.lastUsed = Math.max(m.lastUsed, now);
    if (m.status === "draining" && m.inFlight === 0) this.stop(m, m.drainReason ?? "evict", false);
    else if (m.status === "ready" && m.inFlight === 0 && this.stopsWhenIdle(m.spec.name)) this.stop(m, "ttl", false);
  }

  private onLoadSucceeded(name: string, instance: number, now: number): void {
    const m = this.models.get(name);
    if (!m || m.instance !== instance || m.status !== "loading") return;
    m.failures = 0;
    m.cooldownUntil = 0;
    m.lastError = undefined;
    m.lastUsed = now;
    m.loads++;
    this.setStatus(m, "ready");
  }

  private onLoadFailed(name: string, instance: number, reason: string, now: number): void {
    const m = this.models.get(name);
    if (!m || m.instance !== instance) return;
    if (m.status !== "loading") {
      // A stop during loading (unload/shutdown) ends the same way: the process is gone.
      if (m.status === "stopping") this.onStopped(name, instance, now);
      return;
    }
    m.failures++;
    const cooldown = Math.min(this.options.backoffBaseMs * 2 ** (m.failures - 1), this.options.backoffMaxMs);
    m.cooldownUntil = now + cooldown;
    m.lastError = reason;
    m.measuredBytes = undefined;
    this.setStatus(m, "failed", reason);
    for (const w of this.takeWaiters(name)) {
      this.reject(w, 502, { code: "model_load_failed", reason }, retryAfter(cooldown));
    }
    this.afterGone(m);
  }

  private onStopped(name: string, instance: number, now: number): void {
    void now;
    const m = this.models.get(name);
    if (!m || m.instance !== instance) return;
    if (m.status === "unloaded" || m.status === "failed") return;
    this.clearRunning(m);
    this.setStatus(m, "unloaded");
    this.afterGone(m);
  }

  private onStopFailed(name: string, instance: number, reason: string): void {
    const m = this.models.get(name);
    if (!m || m.instance !== instance) return;
    // a hung server being killed is stopping too: a kill that fails leaves it stuck all the same
    if (m.status !== "stopping" && m.status !== "unloaded") return;
    this.clearRunning(m);
    m.lastError = reason;
    this.setStatus(m, "stuck", reason);
    for (const w of this.takeWaiters(name)) this.reject(w, 503, this.stuckRejection(m), STUCK_RETRY_S);
  }

  private onCrashed(name: string, instance: number, reason: string, alive: boolean, now: number): void {
    const m = this.models.get(name);
    if (!m || m.instance !== instance) return;
    if (m.status === "loading") return; // the start fails and reports loadFailed with the reason
    if (m.status === "unloaded" || m.status === "failed") return;
    const wasStopping = m.status === "stopping";
    this.clearRunning(m);
    if (!wasStopping) {
      m.crashes++;
      m.lastError = reason;
    }
    m.lastUsed = Math.max(m.lastUsed, now);
    if (alive) {
      // its requests are over, its room is not: the process is still there until the runner reports it gone
      this.setStatus(m, "stopping", reason);
      return;
    }
    this.setStatus(m, "unloaded", wasStopping ? undefined : reason);
    this.afterGone(m);
  }

  private onUnload(name: string, now: number): void {
    const m = this.models.get(name);
    if (!m) return;
    for (const w of this.takeWaiters(name)) {
      this.reject(w, 503, { code: "model_unloaded" }, 1);
    }
    this.unloadModel(m, "unload", now);
  }

  private unloadModel(m: ModelState, reason: StopReason, now: number): void {
    switch (m.status) {
      case "pending":
        this.setStatus(m, "unloaded", reason);
        break;
      case "loading":
        this.stop(m, reason, true);
        break;
      case "ready":
        if (m.inFlight === 0) this.stop(m, reason, false);
        else this.drain(m, reason, now);
        break;
      case "draining":
        // An explicit unload (or removal/reload) takes over an eviction's drain: it is no longer abandoned at
        // the deadline, the process stops when its requests are done (or at the deadline, cutting them).
        m.drainReason = reason;
        break;
      case "failed":
        if (m.removed) this.forget(m);
        break;
      default:
        if (m.removed && m.status === "unloaded") this.forget(m);
    }
  }

  private onCatalog(specs: readonly ModelSpec[], now: number): void {
    const next = new Map(specs.map((s) => [s.name, s]));
    for (const m of [...this.models.values()]) {
      const spec = next.get(m.spec.name);
      if (!spec) {
        m.removed = true;
        for (const w of this.takeWaiters(m.spec.name)) {
          this.reject(w, 404, { code: "model_not_found", removed: true });
        }
        this.unloadModel(m, "removed", now);
        continue;
      }
      const changed = (spec.fingerprint ?? "") !== (m.spec.fingerprint ?? "");
      if (!changed) {
        // Settings that need no restart (pin, TTL, estimate) apply at once.
        m.spec = spec;
        continue;
      }
      if (m.status === "unloaded" || m.status === "failed") {
        m.spec = spec;
        m.failures = 0;
        m.cooldownUntil = 0;
        if (m.status === "failed") this.setStatus(m, "unloaded", "configuration changed");
        continue;
      }
      // Running with changed settings: restart it with the new ones once its requests are done.
      m.nextSpec = spec;
      this.unloadModel(m, "reload", now);
    }
    for (const spec of specs) if (!this.models.has(spec.name)) this.models.set(spec.name, newModelState(spec));
  }

  private onTick(now: number): void {
    // Queue deadlines.
    const expired = this.queue.filter((w) => w.deadline <= now);
    if (expired.length > 0) {
      this.queue = this.queue.filter((w) => w.deadline > now);
      for (const w of expired) {
        const m = this.models.get(w.model);
        this.reject(
          w,
          503,
          {
            code: "queue_timeout",
            timeoutS: Math.round(this.options.queueTimeoutMs / 1000),
            waitingForRoom: m?.status === "pending",
          },
          retryAfter(this.options.queueTimeoutMs / 10),
        );
      }
      this.releaseAbandoned(now);
    }
    for (const m of this.models.values()) {
      // Drain deadlines.
      if (m.status === "draining" && m.drainDeadline !== undefined && m.drainDeadline <= now) {
        const reason = m.drainReason ?? "evict";
        if (reason === "evict") {
          // Never cut requests to make room: give up this eviction; whoever needed the room gets a 503.
          this.setStatus(m, "ready", "eviction abandoned: requests still running after the drain timeout");
          m.drainReason = undefined;
          m.drainDeadline = undefined;
          this.abandonPending(m.spec.name, now);
        } else {
          this.stop(m, reason, true);
        }
      }
      // Idle TTL.
      if (m.status === "ready" && m.inFlight === 0) {
        const ttl = this.ttlOf(m.spec.name);
        if ((ttl > 0 && now - m.lastUsed >= ttl) || this.stopsWhenIdle(m.spec.name)) this.stop(m, "ttl", false);
      }
    }
  }

  private onShutdown(now: number): void {
    this.closing = true;
    for (const w of this.queue) this.reject(w, 503, { code: "shutting_down" }, 5);
    this.queue = [];
    for (const m of this.models.values()) {
      if (m.status === "pending") this.setStatus(m, "unloaded", "shutdown");
      else if (m.status === "loading") this.stop(m, "shutdown", true);
      else if (m.status === "ready" || m.status === "draining") {
        if (m.inFlight === 0) this.stop(m, "shutdown", false);
        else {
          m.drainReason = "shutdown";
          if (m.status === "ready") this.drain(m, "shutdown", now);
        }
      }
    }
  }

  // ---- the scheduling pass -------------------------------------------------------------------------------

  private schedule(now: number): void {
    if (this.closing || this.queue.length === 0) return;
    // Everyone waiting for a model that is now ready joins it (single flight), before anything else is decided.
    this.queue = this.queue.filter((w) => {
      const m = this.models.get(w.model);
      if (m?.status !== "ready") return true;
      this.dispatchNow(w, m, now);
      return false;
    });
    const remaining: Waiter[] = [];
    const tried = new Set<string>();
    for (const w of this.queue) {
      const m = this.models.get(w.model);
      if (!m) {
        this.reject(w, 404, { code: "model_not_found" });
        continue;
      }
      if (m.status === "failed") {
        if (now < m.cooldownUntil) {
          this.rejectCooldown(w, m, now);
          continue;
        }
        this.setStatus(m, "unloaded", "cooldown over");
      }
      remaining.push(w);
      if ((m.status === "unloaded" || m.status === "pending") && !tried.has(w.model)) {
        tried.add(w.model);
        this.makeRoom(m, now);
      }
    }
    this.queue = remaining;
  }

  /** Try to start an unloaded/pending model: start now, keep waiting for room, or evict what the policy chose. */
  private makeRoom(m: ModelState, now: number): void {
    const holding = [...this.models.values()].filter((o) => o !== m && OCCUPYING.has(o.status));
    const plan = planRoom(m, holding, this.options, this.needOf);
    if (plan.kind === "start") {
      this.start(m);
      return;
    }
    if (plan.kind === "noRoom") {
      // Cannot fit even with every evictable model gone (pinned/loading/stuck models hold the room): wait without
      // evicting anything; the room may free up (TTL, unload, a load finishing) before the deadline.
      if (m.status === "pending") this.setStatus(m, "unloaded", "no room");
      return;
    }
    for (const v of plan.victims) {
      if (v.inFlight === 0) this.stop(v, "evict", false);
      else this.drain(v, "evict", now);
    }
    // The victims' stops are under way (or they drain first); the model starts when they report stopped.
    if (m.status !== "pending") this.setStatus(m, "pending", "waiting for room");
  }

  private readonly needOf = (m: ModelState): number => m.measuredBytes ?? m.spec.estimateBytes;

  // ---- helpers -------------------------------------------------------------------------------------------

  private start(m: ModelState): void {
    m.instance++;
    m.measuredBytes = undefined;
    m.keepAliveMs = undefined;
    m.drainReason = undefined;
    m.drainDeadline = undefined;
    this.setStatus(m, "loading");
    this.actions.push({ type: "start", model: m.spec.name, instance: m.instance });
  }

  private stop(m: ModelState, reason: StopReason, abort: boolean): void {
    m.drainDeadline = undefined;
    this.setStatus(m, "stopping", reason);
    this.actions.push({ type: "stop", model: m.spec.name, instance: m.instance, reason, abort });
  }

  private drain(m: ModelState, reason: StopReason, now: number): void {
    m.drainReason = reason;
    m.drainDeadline = now + this.options.drainTimeoutMs;
    this.setStatus(m, "draining", reason);
  }

  private dispatchNow(w: Waiter, m: ModelState, now: number): void {
    if (w.keepAliveMs !== undefined && !m.spec.pinned) m.keepAliveMs = w.keepAliveMs;
    if (w.kind === "request") {
      m.inFlight++;
      this.running.set(w.id, { model: m.spec.name, instance: m.instance });
      if (w.activity) m.lastUsed = Math.max(m.lastUsed, now);
    }
    this.actions.push({ type: "dispatch", id: w.id, model: m.spec.name, instance: m.instance, kind: w.kind });
  }

  private reject(w: Pick<Waiter, "id" | "model" | "kind">, status: number, why: Rejection, retryAfterS?: number): void {
    const a: RejectAction = { type: "reject", id: w.id, model: w.model, kind: w.kind, status, ...why };
    if (retryAfterS !== undefined) a.retryAfterS = retryAfterS;
    this.actions.push(a);
  }

  private rejectCooldown(w: Pick<Waiter, "id" | "model" | "kind">, m: ModelState, now: number): void {
    this.reject(
      w,
      503,
      { code: "model_load_failed", reason: m.lastError ?? "unknown", failures: m.failures },
      retryAfter(m.cooldownUntil - now),
    );
  }

  private stuckRejection(m: ModelState): Rejection {
    return { code: "model_stop_failed", reason: m.lastError ?? "its process did not exit" };
  }

  private takeWaiters(name: string): Waiter[] {
    const taken = this.queue.filter((w) => w.model === name);
    if (taken.length > 0) this.queue = this.queue.filter((w) => w.model !== name);
    return taken;
  }

  private setStatus(m: ModelState, to: ModelStatus, reason?: string): void {
    const from = m.status;
    if (from === to) return;
    m.status = to;
    const a: SchedulerAction = { type: "state", model: m.spec.name, from, to };
    if (reason !== undefined) a.reason = reason;
    this.actions.push(a);
  }

  /** Forget the request records of a process that is gone (a crash: its requests end with errors). */
  private clearRunning(m: ModelState): void {
    m.inFlight = 0;
    for (const [id, r] of this.running)
      if (r.model === m.spec.name && r.instance === m.instance) this.running.delete(id);
    m.drainReason = undefined;
    m.drainDeadline = undefined;
  }

  /** After a process is gone: apply a pending spec change or forget a removed model. */
  private afterGone(m: ModelState): void {
    if (m.removed) {
      this.forget(m);
      return;
    }
    if (m.nextSpec) {
      m.spec = m.nextSpec;
      m.nextSpec = undefined;
      m.measuredBytes = undefined;
    }
  }

  private forget(m: ModelState): void {
    this.models.delete(m.spec.name);
    this.actions.push({ type: "forgotten", model: m.spec.name });
  }

  /** Pending models without waiters give their room back; their eviction victims keep running. */
  private releaseAbandoned(now: number): void {
    void now;
    for (const m of this.models.values()) {
      if (m.status !== "pending" || this.queue.some((w) => w.model === m.spec.name)) continue;
      this.setStatus(m, "unloaded", "no more requests waiting");
      this.cancelEvictions();
    }
  }

  /** A drain was abandoned: requests for pending models that can no longer get room get a 503. */
  private abandonPending(victim: string, now: number): void {
    for (const m of this.models.values()) {
      if (m.status !== "pending") continue;
      const others = [...this.models.values()].filter((o) => o !== m && OCCUPYING.has(o.status) && !isFreeing(o));
      if (fits([...others, m], m, this.options, this.needOf)) continue;
      for (const w of this.takeWaiters(m.spec.name)) {
        this.reject(
          w,
          503,
          { code: "model_busy", victim, drainS: Math.round(this.options.drainTimeoutMs / 1000) },
          retryAfter(this.options.drainTimeoutMs / 10),
        );
      }
      this.setStatus(m, "unloaded", "eviction abandoned");
    }
    void now;
  }

  /** Evictions that no pending model needs any more are called off (draining → ready). */
  private cancelEvictions(): void {
    if ([...this.models.values()].some((m) => m.status === "pending")) return;
    for (const m of this.models.values()) {
      if (m.status !== "draining" || m.drainReason !== "evict") continue;
      m.drainReason = undefined;
      m.drainDeadline = undefined;
      this.setStatus(m, "ready", "eviction called off");
    }
  }
}

function newModelState(spec: ModelSpec): ModelState {
  return {
    spec,
    status: "unloaded",
    instance: 0,
    inFlight: 0,
    lastUsed: 0,
    failures: 0,
    cooldownUntil: 0,
    loads: 0,
    crashes: 0,
  };
}

function retryAfter(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
