/**
 * One peer, seen from this proxy: its connection pool (requests are forwarded on it by the proxy's relay), its
 * discovery (a gglib proxy's /api/status, else /v1/models, polled) and its health: up after a discovery that
 * worked, down after one that failed or a request that could not reach it; a down peer is checked again with a
 * backoff (the poll interval doubled each time, at most 30 s). The peer's key goes only to this peer's origin.
 */
import { Pool, type Dispatcher } from "undici";
import { SseDataReader } from "../core/sse.js";
import { offered, type PeerKind, type PeerSpec } from "./config.js";
import { parseGglibStatus, parseOpenAiModels, type HostModelState, type PeerSnapshot } from "./discovery.js";

/** Sent on every request forwarded to a peer: a gglib peer serves it with its own models only (no second hop). */
export const HOP_HEADER = "x-gglib-hop";

const MAX_BACKOFF_MS = 30_000;
/** Discoveries in a row that got no answer at all before the requests open on the peer are given up. */
const NO_ANSWER_LIMIT = 2;

/** The wait before the next discovery: the poll interval while up; doubled per failure (from ≥ 1 s) up to 30 s. */
export function nextCheckMs(pollIntervalMs: number, failures: number): number {
  if (failures === 0) return pollIntervalMs;
  return Math.min(MAX_BACKOFF_MS, Math.max(pollIntervalMs, 1_000) * 2 ** (failures - 1));
}

/** A request open on a peer, as its client sees it: how long since its last byte, and how to cut it. */
export interface OpenRequest {
  idleMs(): number;
  abort(reason: Error): void;
}

/** The peer gave no answer at all (no connection, a reset, a timeout): as opposed to an HTTP error answer. */
class NoAnswer extends Error {}
const DISCOVERY_BODY_LIMIT = 8 * 1024 * 1024;
/** A state change or a crash on a gglib peer's /api/events (an event's data): its status is read again at once. */
function changesState(data: string): boolean {
  // most events are progress and logs: only those that can name a state are parsed
  if (!data.includes('"state"') && !data.includes('"crash"')) return false;
  try {
    const type = (JSON.parse(data) as { type?: unknown } | null)?.type;
    return type === "state" || type === "crash";
  } catch {
    return false;
  }
}

export interface PeerState {
  up: boolean;
  /** Detected (or configured) kind; undefined until a discovery worked. */
  kind: PeerKind | undefined;
  snapshot: PeerSnapshot | undefined;
  lastError: string | undefined;
  /** Epoch ms of the last discovery that worked / was tried. */
  lastSeenAt: number | undefined;
  checkedAt: number | undefined;
  /** Bumped whenever what the peer offers (models, states) may have changed. */
  version: number;
}

export class PeerClient {
  readonly pool: Pool;
  readonly state: PeerState = {
    up: false,
    kind: undefined,
    snapshot: undefined,
    lastError: "not checked yet",
    lastSeenAt: undefined,
    checkedAt: undefined,
    version: 0,
  };
  /** Requests forwarded, by outcome: for /metrics. */
  readonly counts = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private inflight: Promise<void> | undefined;
  private closed = false;
  /** Discoveries in a row with no answer at all. */
  private noAnswer = 0;
  private readonly open = new Set<OpenRequest>();
  /** The gglib peer's /api/events stream, while one is open. */
  private events: AbortController | undefined;
  private eventsUnsupported = false;
  private lastFollowAt = 0;
  private soonTimer: NodeJS.Timeout | undefined;
  /** What the last change notice said (up, models and their states). */
  private shown = "";

  constructor(
    readonly spec: PeerSpec,
    private readonly log: (line: string) => void = () => {},
    /** Called when the peer goes up or down or its models or their states change (not on every poll). */
    private readonly onChange: (c: PeerClient) => void = () => {},
  ) {
    this.pool = new Pool(spec.origin, {
      connect: { timeout: spec.connectTimeoutMs },
      headersTimeout: spec.headersTimeoutMs,
      bodyTimeout: 0,
      keepAliveTimeout: 4_000,
      keepAliveTimeoutThreshold: 2_000,
      pipelining: 1,
    });
  }

  get name(): string {
    return this.spec.name;
  }

  /** Request headers that authenticate us to this peer (only ever sent on this peer's pool). */
  authHeaders(headers: Record<string, string>): Record<string, string> {
    if (this.spec.apiKey) headers.authorization = `Bearer ${this.spec.apiKey}`;
    headers[HOP_HEADER] = "1";
    return headers;
  }

  /** The peer's path for a client path. */
  pathOf(path: string): string {
    return this.spec.basePath + path;
  }

  /** The first discovery, then polling. Resolves once the first discovery is over (worked or not). */
  start(): Promise<void> {
    return this.refresh();
  }

  /** One discovery now (joins one in progress); reschedules the next. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.inflight ??= this.discover().finally(() => {
      this.inflight = undefined;
      this.schedule();
    });
    return this.inflight;
  }

  /** A request found the peer unreachable: down now, checked again soon. */
  markDown(why: string): void {
    if (this.state.up) this.log(`peer ${this.name}: down (${why})`);
    this.state.up = false;
    this.state.lastError = why;
    this.state.version++;
    this.failures = Math.max(this.failures, 1);
    this.changed();
    this.schedule();
  }

  /** A request was served there: the model is loaded there now (until the next discovery says otherwise). */
  noteServed(model: string): void {
    const m = this.state.snapshot?.models.find((x) => x.name === model);
    if (m && m.state !== "ready") {
      m.state = "ready";
      this.state.version++;
      this.changed();
    }
  }

  /** A request forwarded to this peer, until it ends: cut if the peer stops answering (a host gone, frozen). */
  track(r: OpenRequest): void {
    this.open.add(r);
  }

  untrack(r: OpenRequest): void {
    this.open.delete(r);
  }

  count(outcome: string): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
  }

  /** The models this proxy offers from the peer (filtered), with their states; none while down. */
  models(): PeerSnapshot["models"] {
    return this.state.up ? (this.state.snapshot?.models ?? []) : [];
  }

  stateOf(model: string): HostModelState {
    return this.state.snapshot?.models.find((m) => m.name === model)?.state ?? "unknown";
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    this.events?.abort();
    await this.pool.destroy().catch(() => {});
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    const wait = nextCheckMs(this.spec.pollIntervalMs, this.failures);
    this.timer = setTimeout(() => void this.refresh(), wait);
    this.timer.unref();
  }

  private async discover(): Promise<void> {
    const s = this.state;
    s.checkedAt = Date.now();
    try {
      const snap = await this.fetchSnapshot();
      snap.models = snap.models.filter((m) => offered(this.spec, m.name));
      const was = s.up;
      s.up = true;
      s.kind = snap.kind;
      s.snapshot = snap;
      s.lastError = undefined;
      s.lastSeenAt = Date.now();
      s.version++;
      this.failures = 0;
      this.noAnswer = 0;
      this.follow();
      if (!was) this.log(`peer ${this.name}: up (${snap.kind}, ${snap.models.length} model(s))`);
    } catch (e) {
      const why = (e as Error).message;
      if (s.up || s.lastError === "not checked yet") this.log(`peer ${this.name}: down (${why})`);
      s.up = false;
      s.lastError = why;
      s.version++;
      this.failures++;
      this.noAnswer = e instanceof NoAnswer ? this.noAnswer + 1 : 0;
      if (this.noAnswer >= NO_ANSWER_LIMIT) this.cutSilent(why);
    }
    this.changed();
  }

  /**
   * A gglib peer's /api/events, followed while it is up: a state change or a crash there is read (GET /api/status)
   * at once rather than at the next poll, and the stream's end (the peer stopped or died) is checked at once too.
   * At most one connect per poll interval; a peer without the endpoint is polled only.
   */
  private follow(): void {
    if (this.closed || this.events || this.eventsUnsupported || !this.spec.events) return;
    if (this.state.kind !== "gglib" || !this.state.up) return;
    const now = Date.now();
    if (now - this.lastFollowAt < this.spec.pollIntervalMs) return;
    this.lastFollowAt = now;
    const ac = new AbortController();
    this.events = ac;
    void this.followEvents(ac).finally(() => {
      if (this.events === ac) this.events = undefined;
      if (!this.closed && !ac.signal.aborted) void this.refresh();
    });
  }

  private async followEvents(ac: AbortController): Promise<void> {
    try {
      const res = await this.pool.request({
        method: "GET",
        path: this.pathOf("/api/events"),
        headers: this.authHeaders({ accept: "text/event-stream" }),
        headersTimeout: this.spec.healthTimeoutMs,
        bodyTimeout: 0,
        signal: ac.signal,
      });
      if (res.statusCode !== 200) {
        this.eventsUnsupported = true;
        await res.body.dump().catch(() => {});
        return;
      }
      const reader = new SseDataReader({ maxBufferChars: DISCOVERY_BODY_LIMIT });
      for await (const chunk of res.body) {
        for (const data of reader.push(chunk as Buffer)) if (changesState(data)) this.soon();
      }
    } catch {
      // closed, reset or aborted: the caller checks the peer again
    }
  }

  /** A discovery in a moment (events come in bursts: one read for them all). */
  private soon(): void {
    if (this.soonTimer || this.closed) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      void this.refresh();
    }, 50);
    this.soonTimer.unref();
  }

  /**
   * The peer answered none of the last discoveries: a host that vanished (power, network) sends no FIN, and a
   * frozen one keeps its sockets open, so its requests would wait forever. Those that got nothing for a health
   * timeout are cut with the reason (streams: an SSE error event and [DONE]); one still receiving bytes goes on.
   */
  private cutSilent(why: string): void {
    // its event stream is as silent (and sends nothing that would find the connection dead): open a new one later
    const events = this.events;
    this.events = undefined;
    events?.abort();
    for (const r of this.open) {
      if (r.idleMs() < this.spec.healthTimeoutMs) continue;
      this.open.delete(r);
      r.abort(new Error(`peer ${this.name} stopped answering (${NO_ANSWER_LIMIT} health checks in a row: ${why})`));
    }
  }

  private changed(): void {
    const s = this.state;
    const now = `${s.up}|${s.up ? (s.snapshot?.models ?? []).map((m) => `${m.name}:${m.state}`).join(",") : ""}`;
    if (now === this.shown) return;
    this.shown = now;
    this.onChange(this);
  }

  private async fetchSnapshot(): Promise<PeerSnapshot> {
    const kind = this.spec.kind === "auto" ? this.state.kind : this.spec.kind;
    if (kind !== "openai") {
      const r = await this.getJson("/api/status");
      const snap = r.status === 200 ? parseGglibStatus(r.body) : undefined;
      if (snap) return snap;
      if (kind === "gglib") throw new Error(`GET /api/status answered ${r.status}, not a gglib proxy's status`);
    }
    const r = await this.getJson("/v1/models");
    const snap = r.status === 200 ? parseOpenAiModels(r.body) : undefined;
    if (!snap) throw new Error(`GET /v1/models answered ${r.status}${r.status === 200 ? " without a model list" : ""}`);
    return snap;
  }

  private async getJson(path: string): Promise<{ status: number; body: unknown }> {
    const ms = this.spec.healthTimeoutMs;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method: "GET",
        path: this.pathOf(path),
        headers: this.authHeaders({ accept: "application/json" }),
        headersTimeout: ms,
        bodyTimeout: ms,
        signal: AbortSignal.timeout(ms),
      });
    } catch (e) {
      throw new NoAnswer(describeNetError(e as Error, this.spec.origin, ms));
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump().catch(() => {});
      throw new Error(
        `${this.spec.origin} refused our key (${res.statusCode} on GET ${path}): ${this.spec.apiKey ? "check the peer's apiKey" : "the peer needs an apiKey"}`,
      );
    }
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => {});
      return { status: res.statusCode, body: undefined };
    }
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const c of res.body) {
      size += (c as Buffer).length;
      if (size > DISCOVERY_BODY_LIMIT) {
        res.body.destroy();
        throw new Error(`GET ${path} answered more than ${DISCOVERY_BODY_LIMIT} bytes`);
      }
      chunks.push(c as Buffer);
    }
    try {
      return { status: 200, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown };
    } catch {
      return { status: 200, body: undefined };
    }
  }
}

/** A connection error in words: which address, what happened. */
export function describeNetError(e: Error, origin: string, timeoutMs?: number): string {
  const code = (e as NodeJS.ErrnoException).code ?? e.name;
  switch (code) {
    case "ECONNREFUSED":
      return `${origin} refused the connection (nothing listens there)`;
    case "UND_ERR_CONNECT_TIMEOUT":
      return `${origin} did not accept a connection in time`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${origin} is unreachable (${code})`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `${origin}: the host name does not resolve (${code})`;
    case "TimeoutError":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return `${origin} did not answer in ${timeoutMs ?? "?"} ms`;
    case "UND_ERR_SOCKET":
    case "ECONNRESET":
      return `${origin} closed the connection (${e.message})`;
    default:
      return `${origin}: ${e.message}`;
  }
}

/** A failure before the peer answered anything, where the request may go to another host. */
export function notReached(e: Error): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return (
    code === "ECONNREFUSED" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH" ||
    code === "ENOTFOUND" ||
    code === "EAI_AGAIN" ||
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "UND_ERR_SOCKET"
  );
}
