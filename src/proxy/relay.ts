/**
 * The one way a client's request reaches a model's llama-server, for every API: take a lease on the model (at once
 * when it is ready, else wait for it, telling a streaming OpenAI client with SSE comments that the load goes on),
 * then either forward the bytes on the pool of that process (`relay`: OpenAI, Anthropic, `/upstream`) or let the
 * route translate (`relayTranslated`: Ollama's API, whose sink calls llama-server through a LeaseUpstream and
 * writes its own answer); both resend by Forward's rule. At the end the same bookkeeping for all: the lease
 * released, the metrics, the usage to the controller's hooks (the context cache), the /api/activity entry.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { HttpError } from "../core/errors.js";
import type { ServerHandle } from "../core/handle.js";
import type { Lease, ModelController } from "./controller.js";
import { createUpstreamPool, Forward, upstreamConnections, type ForwardOptions, type UsageStats } from "./forward.js";
import { LeaseUpstream } from "./lease-upstream.js";
import { asHttpError, sendError } from "./http/errors.js";
import { upstreamRequestHeaders } from "./http/headers.js";
import { SSE_HEADERS, sseErrorEvent } from "./http/sse.js";
import type { ProxyMetrics } from "./metrics.js";
import type { ActivityLog } from "./activity.js";
import { describeNetError, notReached, type OpenRequest, type PeerClient } from "../peers/client.js";

/** The process a pool is for: its id (a new process gets a new pool), its address and its model's catalog name. */
export type UpstreamHandle = Pick<ServerHandle, "id" | "url" | "model">;

/** One request for a model, as the routes parsed it. */
export interface RelayRequest {
  /** The model's catalog name. */
  name: string;
  /** Path and query sent upstream. */
  path: string;
  /** The path the client asked for (chooses the SSE error dialect). */
  clientPath: string;
  method: string;
  body: Buffer | null;
  stream: boolean;
  /** Counts as use of the model for its idle TTL. */
  activity: boolean;
}

/** A request whose answer its route translates (Ollama's API): what the waiting and the bookkeeping need. */
export interface TranslatedRequest {
  /** The model's catalog name. */
  name: string;
  /** The client's method and path (/api/activity). */
  method: string;
  clientPath: string;
  /** The request's own TTL for the model (Ollama's keep_alive: the scheduler's `keepAliveMs`). */
  keepAliveMs?: number;
}

/**
 * The route's side of a translated request. `run` calls llama-server through `up` and writes the client's answer
 * (an NDJSON stream, or one buffered object); it throws HttpError for an error answer, which the relay counts and
 * rethrows for the route's error writer. `usage` is what llama-server reported, read once the request is over.
 */
export interface TranslatedSink {
  run(up: LeaseUpstream, waitedMs: number): Promise<void>;
  usage(): UsageStats | undefined;
}

export class Relay {
  /**
   * One connection pool per llama-server process, keyed by origin; replaced when another process takes the port.
   * `side`: one connection for GET/HEAD (monitoring: /props, /slots, /metrics), never queued behind a burst.
   */
  private readonly pools = new Map<string, { id: string; pool: Dispatcher; side?: Dispatcher }>();

  constructor(
    private readonly controller: ModelController,
    private readonly metrics: ProxyMetrics,
    /** Interval of `: loading …` comments while a stream waits, ms (≤ 5000). */
    private readonly keepAliveMs = 2_000,
    /** The record of recent requests (one ring-buffer write per request). */
    private readonly recent?: ActivityLog,
  ) {}

  async relay(req: IncomingMessage, res: ServerResponse, r: RelayRequest): Promise<void> {
    const t0 = performance.now();
    let sseCommitted = false;
    let lease: Lease | undefined = this.controller.tryAcquire(r.name, r.activity);
    if (!lease) {
      const waited = await this.waitForModel(res, r, t0);
      if (!waited) return;
      ({ lease, sseCommitted } = waited);
    }
    await this.send(req, res, r, lease, sseCommitted, t0);
  }

  /** Closes every upstream pool (the server is closing). */
  async close(): Promise<void> {
    await Promise.all(
      [...this.pools.values()].flatMap((p) =>
        [p.pool, ...(p.side ? [p.side] : [])].map((d) => d.close().catch(() => {})),
      ),
    );
    this.pools.clear();
  }

  /** The model is not ready: wait for it (SSE keep-alive comments for streams), or answer the error. */
  private async waitForModel(
    res: ServerResponse,
    r: RelayRequest,
    t0: number,
  ): Promise<{ lease: Lease; sseCommitted: boolean } | undefined> {
    let sseCommitted = false;
    let stopBeats: (() => void) | undefined;
    let lease: Lease;
    // A stream that really has to wait is told at once that we are alive, and kept told while the model loads. One
    // refused at once (queue full, backoff, stuck) is not committed: it gets the plain 503 + Retry-After.
    const onWait = r.stream
      ? () => {
          if (res.headersSent || res.destroyed) return;
          sseCommitted = true;
          stopBeats = this.loadingComments(res, r.name);
        }
      : undefined;
    try {
      try {
        lease = await this.waitLease(res, r.name, r.activity, undefined, onWait);
      } finally {
        stopBeats?.();
      }
    } catch (e) {
      const err = asHttpError(e);
      this.finish(r.name, r.method, r.clientPath, err.status, t0, undefined, undefined);
      if (err.status === 499) return undefined; // the client is gone
      if (sseCommitted) res.end(sseErrorEvent(r.clientPath, err.status, err.code, err.message));
      else sendError(res, err);
      return undefined;
    }
    return { lease, sseCommitted };
  }

  /** Waits until the model is ready and leases it; the client's leaving ends the wait. Rejects with HttpError. */
  private async waitLease(
    res: ServerResponse,
    name: string,
    activity: boolean,
    keepAliveMs: number | undefined,
    onWait?: () => void,
  ): Promise<Lease> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on("close", onClose);
    try {
      return await this.controller.acquire(name, {
        signal: abort.signal,
        activity,
        ...(keepAliveMs !== undefined ? { keepAliveMs } : {}),
        ...(onWait ? { onWait } : {}),
      });
    } finally {
      res.off("close", onClose);
    }
  }

  /**
   * A request its route translates (Ollama's API): the lease (at once, or after the wait; no SSE comments: the
   * route's answer has not begun), then the sink's exchange with llama-server, then the bookkeeping every request
   * gets. Rejects with the HttpError the route's error writer answers (after the sink's answer began, it ends
   * that answer); a client that left gets nothing more.
   */
  async relayTranslated(
    _req: IncomingMessage,
    res: ServerResponse,
    r: TranslatedRequest,
    sink: TranslatedSink,
  ): Promise<void> {
    const t0 = performance.now();
    let lease = this.controller.tryAcquire(r.name, true, r.keepAliveMs);
    if (!lease) {
      try {
        lease = await this.waitLease(res, r.name, true, r.keepAliveMs);
      } catch (e) {
        const err = asHttpError(e);
        this.finish(r.name, r.method, r.clientPath, err.status, t0, undefined, undefined);
        if (err.status === 499) return void res.destroy();
        throw err;
      }
    }
    if (res.destroyed) {
      // the client left while the model loaded: nothing is sent
      lease.release();
      this.finish(r.name, r.method, r.clientPath, 499, t0, undefined, undefined);
      return;
    }
    const up = new LeaseUpstream(this.controller, lease, res, this.dispatcherFor(lease.handle));
    let failure: HttpError | undefined;
    try {
      await sink.run(up, performance.now() - t0);
    } catch (e) {
      failure = await up.failure(e as Error);
    } finally {
      up.close();
      lease.release();
    }
    const gone = res.destroyed && !res.writableFinished;
    const status = gone ? 499 : (failure?.status ?? 200);
    const ttfbS = up.firstAnswerAt !== undefined ? (up.firstAnswerAt - t0) / 1000 : undefined;
    this.finish(r.name, r.method, r.clientPath, status, t0, ttfbS, sink.usage());
    if (!failure) return;
    if (gone || failure.status === 499) return void res.destroy();
    throw failure;
  }

  /** The end of every request: the metrics, the usage to the controller's hooks, the /api/activity entry. */
  private finish(
    name: string,
    method: string,
    clientPath: string,
    status: number,
    t0: number,
    ttfbS: number | undefined,
    usage: UsageStats | undefined,
  ): void {
    this.metrics.request(name, status, (performance.now() - t0) / 1000, ttfbS, usage);
    this.controller.observeUsage(name, usage);
    this.recent?.record(name, method, clientPath, status, t0, ttfbS, usage);
  }

  /** Commits `200 text/event-stream` and writes `: loading <model> N%` comments until the returned stop is called. */
  private loadingComments(res: ServerResponse, name: string): () => void {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    let lastPct = -1;
    const beat = () => {
      if (res.destroyed || res.writableEnded) return;
      const p = this.controller.loadProgress(name);
      // its files being fetched (a config hf: model's first use) is the load's first stage
      const st = this.controller.isDownloading(name) ? "loading" : (this.controller.state(name)?.status ?? "loading");
      const what =
        st === "pending" || st === "unloaded" || st === "draining" || st === "stopping"
          ? "waiting for room to load"
          : "loading";
      res.write(`: ${what} ${name}${p !== undefined && st === "loading" ? ` ${Math.round(p * 100)}%` : ""}\n\n`);
    };
    beat();
    const heartbeat = setInterval(beat, Math.min(this.keepAliveMs, 5_000));
    const unlisten = this.controller.on((e) => {
      if (e.type === "progress" && e.model === name && !res.destroyed && !res.writableEnded) {
        const pct = Math.round(e.value * 100);
        if (pct !== lastPct) {
          lastPct = pct;
          res.write(`: loading ${name} ${pct}%\n\n`);
        }
      }
    });
    return () => {
      clearInterval(heartbeat);
      unlisten();
    };
  }

  /** The pool of this llama-server process; a pool left by an earlier process on the same port is destroyed. */
  dispatcherFor(handle: UpstreamHandle): Dispatcher {
    return this.poolsFor(handle).pool;
  }

  /** The pools of this llama-server process (created on first use; an earlier process's are destroyed). */
  private poolsFor(handle: UpstreamHandle): { id: string; pool: Dispatcher; side?: Dispatcher } {
    const cur = this.pools.get(handle.url);
    if (cur?.id === handle.id) return cur;
    if (cur) for (const d of [cur.pool, cur.side]) void d?.destroy().catch(() => {});
    // bounded by the model's slots: the rest of a burst waits here, not on llama-server's HTTP threads
    const pool = createUpstreamPool(handle.url, upstreamConnections(this.controller.getModel(handle.model)?.server));
    const entry = { id: handle.id, pool };
    this.pools.set(handle.url, entry);
    return entry;
  }

  /** GET/HEAD requests (monitoring, cheap for llama-server) go on a side connection: not behind a queued burst. */
  private dispatcherOf(handle: UpstreamHandle, method: string): Dispatcher {
    const p = this.poolsFor(handle);
    if (method !== "GET" && method !== "HEAD") return p.pool;
    return (p.side ??= createUpstreamPool(handle.url, 1));
  }

  private async send(
    req: IncomingMessage,
    res: ServerResponse,
    r: RelayRequest,
    lease: Lease,
    sseCommitted: boolean,
    t0: number,
  ): Promise<void> {
    if (res.destroyed) {
      lease.release();
      return;
    }
    const tForward = performance.now();
    const f = new ModelForward(res, this.forwardOptions(req, r, lease, sseCommitted), this.controller, lease);
    try {
      f.start(this.dispatcherOf(lease.handle, r.method));
    } catch (e) {
      lease.release();
      throw new HttpError(400, "bad_request", `The request cannot be forwarded: ${(e as Error).message}`);
    }
    this.controller.trackUpstream(lease, f);
    const result = await f.done;
    this.controller.untrackUpstream(lease, f);
    lease.release();
    const status = result.completed ? result.status : res.headersSent ? result.status || 499 : 499;
    const ttfbS = result.ttfbMs !== undefined ? (tForward - t0 + result.ttfbMs) / 1000 : undefined;
    this.finish(r.name, r.method, r.clientPath, status, t0, ttfbS, result.usage);
  }

  /**
   * Forwards a request to a peer on its own pool, with its key (the client's credentials were dropped by
   * upstreamRequestHeaders). Resolves `notStarted` when the peer could not be reached (nothing was written to the
   * client): the caller tries the next host. Every other outcome is answered here, like a local request.
   */
  async sendToPeer(req: IncomingMessage, res: ServerResponse, r: PeerRelayRequest): Promise<PeerRelayOutcome> {
    const t0 = performance.now();
    const peer = r.peer;
    const headers = upstreamRequestHeaders(req.headers, r.body ? r.body.length : undefined);
    delete headers.cookie;
    const f = new PeerForward(
      res,
      {
        origin: peer.spec.origin,
        method: r.method,
        path: peer.pathOf(r.path),
        headers: peer.authHeaders(headers),
        body: r.body,
        sseCommitted: false,
        clientPath: r.clientPath,
        collectUsage: true,
        headersTimeoutMs: peer.spec.headersTimeoutMs,
      },
      peer,
    );
    try {
      f.start(peer.pool);
    } catch (e) {
      throw new HttpError(400, "bad_request", `The request cannot be forwarded: ${(e as Error).message}`);
    }
    peer.track(f);
    const result = await f.done;
    peer.untrack(f);
    if (result.notStarted) {
      const why = describeNetError(result.error!, peer.spec.origin);
      peer.markDown(why);
      peer.count("unreachable");
      return { notStarted: new Error(why) };
    }
    const status = result.completed ? result.status : res.headersSent ? result.status || 499 : 499;
    peer.count(String(status));
    if (result.completed && status < 400) peer.noteServed(r.model);
    const ttfbS = result.ttfbMs !== undefined ? result.ttfbMs / 1000 : undefined;
    this.metrics.request(r.name, status, (performance.now() - t0) / 1000, ttfbS, result.usage);
    this.recent?.record(r.name, r.method, r.clientPath, status, t0, ttfbS, result.usage);
    return {};
  }

  private forwardOptions(req: IncomingMessage, r: RelayRequest, lease: Lease, sseCommitted: boolean): ForwardOptions {
    return {
      origin: lease.handle.url,
      method: r.method,
      path: r.path,
      headers: upstreamRequestHeaders(req.headers, r.body ? r.body.length : undefined),
      body: r.body,
      sseCommitted,
      clientPath: r.clientPath,
      collectUsage: true,
    };
  }
}

/** A request for a peer's model: `name` is the qualified name (metrics, activity), `model` the peer's own. */
export interface PeerRelayRequest extends RelayRequest {
  peer: PeerClient;
  /** The peer's name for the model. */
  model: string;
}

export interface PeerRelayOutcome {
  /** The peer could not be reached before any answer: nothing was written, try another host. */
  notStarted?: Error;
}

/** A forward to a model's process: a broken connection is explained by what happened to that process. */
class ModelForward extends Forward {
  constructor(
    res: ServerResponse,
    o: ForwardOptions,
    private readonly controller: ModelController,
    private readonly lease: Lease,
  ) {
    super(res, o);
  }

  protected override explainFailure(err: Error): Promise<string> {
    return this.controller.explainFailure(this.lease.model, this.lease.instance, err);
  }

  // what arrives is the process's proof of progress for the hang rule (a busy server is not a hung one)
  override onResponseStart(
    c: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.lease.received(1);
    super.onResponseStart(c, statusCode, headers);
  }

  override onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.lease.received(chunk.length);
    super.onResponseData(c, chunk);
  }

  protected override mayResend(): boolean {
    return this.controller.isServing(this.lease.model, this.lease.instance);
  }
}

/** A forward to a peer: unreachable before any answer → `notStarted` (another host is tried); a peer that dies
 * midway is named in the client's error and checked again. */
class PeerForward extends Forward implements OpenRequest {
  private lastByteAt = performance.now();

  constructor(
    res: ServerResponse,
    o: ForwardOptions,
    private readonly peer: PeerClient,
  ) {
    super(res, o);
  }

  idleMs(): number {
    return performance.now() - this.lastByteAt;
  }

  override onResponseStart(
    c: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.lastByteAt = performance.now();
    super.onResponseStart(c, statusCode, headers);
  }

  override onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.lastByteAt = performance.now();
    super.onResponseData(c, chunk);
  }

  protected override mayFailOver(err: Error): boolean {
    return notReached(err);
  }

  protected override upstreamName(): string {
    return `peer '${this.peer.name}' (${this.peer.spec.origin})`;
  }

  protected override explainFailure(err: Error): Promise<string> {
    const why = describeNetError(err, this.peer.spec.origin, this.peer.spec.headersTimeoutMs);
    if (notReached(err)) this.peer.markDown(why);
    return Promise.resolve(why);
  }
}
