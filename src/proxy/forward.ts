/**
 * The hot path: one request to llama-server through undici's dispatcher, the response passed back byte for byte
 * as it arrives (no buffering, no compression), with backpressure (pause the upstream when the client is slow),
 * abort in both directions, and the usage/timings read from the tail of the response for metrics.
 */
import type { ServerResponse } from "node:http";
import { Client, Pool, type Dispatcher } from "undici";
import { errorOfText } from "../core/upstream-error.js";
import { errorBody } from "./http/errors.js";
import { downstreamResponseHeaders } from "./http/headers.js";
import { SSE_HEADERS, sseErrorEvent } from "./http/sse.js";

/** Connection options of every upstream pool: prompt processing of a long prompt can take minutes before the first
 * byte, so no header/body timeouts. Idle sockets: llama-server (cpp-httplib) answers `Keep-Alive: timeout=5,
 * max=100` and closes a socket idle 5 s; undici keeps one for that hint less keepAliveTimeoutThreshold (3 s), and
 * honours the `Connection: close` of the 100th answer, so the two do not disagree. A close can still cross a
 * request on the wire (an event loop late by seconds, a server stopping): Forward resends such a request once. */
const UPSTREAM_OPTIONS = {
  connect: { timeout: 10_000 },
  headersTimeout: 0,
  bodyTimeout: 0,
  keepAliveTimeout: 4_000,
  keepAliveTimeoutThreshold: 2_000,
  pipelining: 1,
} as const;

/** llama-server's slots when `--parallel` is not given (auto: 4, sharing one KV cache). */
export const DEFAULT_SLOTS = 4;
/** Connections to a llama-server beyond its slots: the next requests wait upstream, so a slot never idles. */
export const SPARE_CONNECTIONS = 2;

/**
 * Pure: the most connections the proxy opens to one llama-server, from its slots (`--parallel`, in the config or
 * in its extra args; llama-server's auto otherwise). Each kept-alive connection holds one of llama-server's HTTP
 * threads (cpp-httplib: max(slots + 4, cores - 1) of them); unbounded, a burst of requests takes them all and its
 * `/health` waits seconds for a thread (measured: 7 s behind 150 connections). Capped at slots + 2, every slot
 * stays busy, two threads stay free (the health check's connection and the relay's side connection for GETs:
 * /props, /slots, /metrics), and the rest of a burst waits in the proxy's pool, in order.
 */
export function upstreamConnections(config: { parallel?: number; extraArgs?: readonly string[] } | undefined): number {
  let slots = config?.parallel;
  const extra = config?.extraArgs ?? [];
  for (let i = 0; i < extra.length; i++) {
    const a = extra[i]!;
    const eq = a.indexOf("=");
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (flag !== "-np" && flag !== "--parallel") continue;
    const n = Number(eq > 0 ? a.slice(eq + 1) : extra[i + 1]);
    if (Number.isInteger(n) && n > 0) slots = n; // the last one wins, as in llama-server
  }
  return (slots !== undefined && slots > 0 ? slots : DEFAULT_SLOTS) + SPARE_CONNECTIONS;
}

/**
 * Connections to one llama-server process, at most `connections` of them (upstreamConnections()): requests beyond
 * them wait in the pool's queue, first in first out. A pool per process (not per origin): a new llama-server on the
 * port of one that stopped must never be sent a request over a kept-alive socket of the old one ("other side
 * closed").
 */
export function createUpstreamPool(origin: string, connections?: number): Pool {
  return new Pool(origin, connections !== undefined ? { ...UPSTREAM_OPTIONS, connections } : UPSTREAM_OPTIONS);
}

export interface UsageStats {
  promptTokens?: number;
  completionTokens?: number;
  /** Prompt tokens reused from the cache (timings.cache_n, usage.prompt_tokens_details.cached_tokens). */
  cachedTokens?: number;
  /** Generation speed reported by llama-server (tokens/s). */
  predictedPerSecond?: number;
  promptPerSecond?: number;
}

export interface ForwardResult {
  status: number;
  /** The response reached its end (false: aborted or failed midway). */
  completed: boolean;
  /** Bytes of response body passed on. */
  bytes: number;
  usage?: UsageStats;
  error?: Error;
  /** Time to the upstream's response headers, ms. */
  ttfbMs?: number;
  /** Nothing reached the upstream's answer and nothing was written to the client (`mayFailOver` said yes): the
   * request may go to another host. */
  notStarted?: boolean;
}

export interface ForwardOptions {
  origin: string;
  method: Dispatcher.HttpMethod;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
  /**
   * The client already got `200 text/event-stream` headers (the request waited for a load with keep-alive
   * comments): pass only the body on; an upstream error becomes an SSE error event.
   */
  sseCommitted: boolean;
  /** The path the client asked for (chooses the SSE error dialect). */
  clientPath: string;
  /** Collect usage/timings from the response tail. */
  collectUsage?: boolean;
  /** Time to the upstream's response headers, ms (default 0: none; prompt processing can take minutes). */
  headersTimeoutMs?: number;
}

const TAIL_BYTES = 8192;

/**
 * The error undici reports when llama-server closed the connection under a request: cpp-httplib closes a kept-alive
 * socket whose keep-alive wait ended (timeout or max count) even if a request is arriving on it.
 */
export function connectionClosed(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "UND_ERR_SOCKET" || code === "ECONNRESET" || code === "EPIPE";
}

/**
 * The resend rule, for every request the proxy sends to llama-server (forwarded here, or translated through
 * Relay.relayTranslated): one that llama-server's side closed before any byte of an answer came, and before
 * anything of it was written to the client, is sent once more on a fresh connection (`freshConnection`), unless it
 * was resent already, was aborted (by the proxy or because the client left), or `serving` says no (the model is
 * no longer ready on the process the request was meant for).
 */
export function mayResendRequest(
  err: Error,
  s: { resent: boolean; aborted: boolean; answered: boolean },
  serving: () => boolean,
): boolean {
  return !s.resent && !s.aborted && !s.answered && connectionClosed(err) && serving();
}

/** A connection of its own for a resend (the pool's other idle sockets may be as stale); close it after use. */
export function freshConnection(origin: string): Client {
  return new Client(origin, UPSTREAM_OPTIONS);
}

/** Ends one tick's corked writes (a module function: the hot path allocates no closure for it). */
function uncork(f: Forward): void {
  f.uncork();
}

/**
 * One request forwarded to llama-server: the undici dispatch handler for it, and the handle to abort it (the
 * proxy aborts a model's requests before a forced stop). `done` settles once the response is over, whatever
 * happened. Subclasses may override `explainFailure` to say why a connection broke.
 *
 * A request that llama-server's side closed before any byte of an answer came (and before anything of it was
 * written to the client) is sent once more, on a fresh connection: the body is the buffered one we hold, so the
 * resend is exact. Not when the client went away, the request was aborted, or `mayResend` says no (the model is
 * no longer ready).
 */
export class Forward implements Dispatcher.DispatchHandler {
  /** Settles when the response is over (completed, failed or aborted); never rejects. */
  readonly done: Promise<ForwardResult>;
  private resolveDone!: (r: ForwardResult) => void;
  private ctrl: Dispatcher.DispatchController | undefined;
  private pendingAbort: Error | undefined;
  private status = 0;
  private bytes = 0;
  private isSse: boolean;
  /** An upstream error response while our SSE headers are out: collected, then turned into an SSE error event. */
  private errChunks: Buffer[] | undefined;
  private readonly tail: Buffer[] = [];
  private tailLen = 0;
  /** The first chunk: a stream's first event may carry usage its end does not repeat (Anthropic's message_start). */
  private head: Buffer | undefined;
  private settled = false;
  private corked = false;
  private readonly started = performance.now();
  private ttfbMs: number | undefined;
  private agent: Dispatcher | undefined;
  /** Aborted by the proxy or because the client left: never resent. */
  private aborted = false;
  private resent = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly o: ForwardOptions,
  ) {
    this.isSse = o.sseCommitted;
    this.done = new Promise<ForwardResult>((r) => (this.resolveDone = r));
    res.on("close", this.onClientClose);
  }

  /** Sends the request on `agent`. Throws synchronously when undici refuses it (e.g. an invalid header). */
  start(agent: Dispatcher): this {
    this.agent = agent;
    this.dispatchOn(agent);
    return this;
  }

  private dispatchOn(agent: Dispatcher): void {
    const o = this.o;
    agent.dispatch(
      {
        origin: o.origin,
        method: o.method,
        path: o.path,
        headers: o.headers,
        body: o.body,
        headersTimeout: o.headersTimeoutMs ?? 0,
        bodyTimeout: 0,
      },
      this,
    );
  }

  abort(reason: Error): void {
    this.aborted = true;
    if (this.ctrl) this.ctrl.abort(reason);
    else this.pendingAbort = reason;
  }

  /** Why the connection to llama-server broke, for the client's error message. */
  protected explainFailure(err: Error): Promise<string> {
    return Promise.resolve(err.message);
  }

  /** Whether a request that got no answer may be sent once more (subclasses: the model is still ready). */
  protected mayResend(): boolean {
    return true;
  }

  /**
   * Whether a request that failed before any answer (nothing written to the client) ends here as `notStarted`,
   * for the caller to send elsewhere, instead of answering the failure (subclasses: a peer that is unreachable).
   */
  protected mayFailOver(_err: Error): boolean {
    return false;
  }

  /** Who the request went to, for the client's error message. */
  protected upstreamName(): string {
    return "llama-server";
  }

  uncork(): void {
    this.corked = false;
    this.res.uncork();
  }

  // ---- undici's dispatch handler ---------------------------------------------------------------------------

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.ctrl = c;
    if (this.pendingAbort) c.abort(this.pendingAbort);
  }

  onResponseStart(
    c: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // 1xx
    this.status = statusCode;
    this.ttfbMs = performance.now() - this.started;
    const ct = String(headers["content-type"] ?? "");
    if (this.o.sseCommitted) {
      if (statusCode >= 400 || !ct.startsWith("text/event-stream")) this.errChunks = [];
      return;
    }
    this.isSse = ct.startsWith("text/event-stream");
    const h = downstreamResponseHeaders(headers);
    if (this.isSse) {
      Object.assign(h, SSE_HEADERS);
      delete h["content-length"];
    }
    const res = this.res;
    if (res.destroyed) {
      c.abort(new Error("client closed the connection"));
      return;
    }
    res.writeHead(statusCode, h);
    if (this.isSse) res.flushHeaders();
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.errChunks) {
      this.errChunks.push(chunk);
      return;
    }
    this.bytes += chunk.length;
    if (this.o.collectUsage) {
      this.head ??= chunk;
      const tail = this.tail;
      tail.push(chunk);
      this.tailLen += chunk.length;
      while (tail.length > 1 && this.tailLen - tail[0]!.length >= TAIL_BYTES) this.tailLen -= tail.shift()!.length;
    }
    const res = this.res;
    // coalesce what arrives in one tick (status line, headers, body, end) into one write to the socket
    if (!this.corked) {
      this.corked = true;
      res.cork();
      process.nextTick(uncork, this);
    }
    if (!res.write(chunk)) {
      c.pause();
      res.once("drain", () => c.resume());
    }
  }

  onResponseEnd(): void {
    if (this.errChunks) {
      this.res.end(this.upstreamErrorEvent(Buffer.concat(this.errChunks).toString("utf8")));
      this.finish({ status: this.status, completed: true, bytes: this.bytes, ttfbMs: this.ttfbMs });
      return;
    }
    const r: ForwardResult = { status: this.status, completed: true, bytes: this.bytes, ttfbMs: this.ttfbMs };
    if (this.o.collectUsage && this.tailLen > 0) r.usage = parseUsage(usageText(this.head, this.tail));
    this.res.end();
    this.finish(r);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const res = this.res;
    if (res.destroyed || (res.writableEnded && !res.writableFinished)) {
      this.finish(this.failed(this.status || 499, err));
      return;
    }
    if (this.shouldResend(err)) {
      this.resend();
      return;
    }
    if (
      !this.aborted &&
      this.status === 0 &&
      this.bytes === 0 &&
      this.errChunks === undefined &&
      !res.headersSent &&
      this.mayFailOver(err)
    ) {
      this.finish({ status: 0, completed: false, bytes: 0, error: err, notStarted: true });
      return;
    }
    this.explainFailure(err).then(
      (why) => this.answerFailure(err, why),
      () => this.answerFailure(err, err.message),
    );
  }

  // ---- the one resend ------------------------------------------------------------------------------------

  private shouldResend(err: Error): boolean {
    const answered = this.status !== 0 || this.bytes !== 0 || this.errChunks !== undefined || this.agent === undefined;
    return mayResendRequest(err, { resent: this.resent, aborted: this.aborted, answered }, () => this.mayResend());
  }

  /** Sends the request again on a connection of its own (the pool's other idle sockets may be as stale). */
  private resend(): void {
    this.resent = true;
    this.ctrl = undefined;
    const client = freshConnection(this.o.origin);
    try {
      this.dispatchOn(client);
    } catch (e) {
      void client.destroy().catch(() => {});
      void this.explainFailure(e as Error).then(
        (why) => this.answerFailure(e as Error, why),
        () => this.answerFailure(e as Error, (e as Error).message),
      );
      return;
    }
    // closes once this one request is over
    void client.close().catch(() => {});
  }

  // ---- endings ---------------------------------------------------------------------------------------------

  /** The client went away before the response was over: abort the upstream request (the slot frees). */
  private readonly onClientClose = (): void => {
    if (!this.settled && !this.res.writableFinished) this.abort(new Error("client closed the connection"));
  };

  /** Tells the client the request failed midway: a 502, an SSE error event, or (a body cut midway) a close. */
  private answerFailure(err: Error, why: string): void {
    const res = this.res;
    if (res.destroyed) {
      this.finish(this.failed(this.status || 499, err));
      return;
    }
    const message = `The request to ${this.upstreamName()} failed: ${why}`;
    if (!res.headersSent) {
      const body = errorBody(502, "upstream_failed", message);
      res.writeHead(502, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    } else if (this.isSse) {
      res.end(sseErrorEvent(this.o.clientPath, 502, "upstream_failed", message));
    } else {
      // a non-streaming body cut midway cannot be repaired: close so the client sees the truncation
      res.destroy(err);
    }
    this.finish(this.failed(res.headersSent ? this.status || 502 : 502, err));
  }

  /** llama-server's error response as an SSE error event (our stream headers were already sent). */
  private upstreamErrorEvent(text: string): string {
    const e = errorOfText(text, `${this.upstreamName()} answered ${this.status} with no message`);
    return sseErrorEvent(this.o.clientPath, this.status, e.type ?? "upstream_error", e.message);
  }

  private failed(status: number, error: Error): ForwardResult {
    const r: ForwardResult = { status, completed: false, bytes: this.bytes, error, ttfbMs: this.ttfbMs };
    // a client that hangs up once it has read the answer's last event (Codex after `response.completed`) still
    // got the usage that event carries
    if (this.o.collectUsage && this.tailLen > 0) r.usage = parseUsage(usageText(this.head, this.tail));
    return r;
  }

  private finish(r: ForwardResult): void {
    if (this.settled) return;
    this.settled = true;
    this.res.off("close", this.onClientClose);
    this.resolveDone(r);
  }
}

const NUM = (key: string) => new RegExp(`"${key}"\\s*:\\s*(-?[\\d.eE+-]+)`, "g");
const RE = {
  promptN: NUM("prompt_n"),
  predictedN: NUM("predicted_n"),
  predictedPerSecond: NUM("predicted_per_second"),
  promptPerSecond: NUM("prompt_per_second"),
  promptTokens: NUM("prompt_tokens"),
  completionTokens: NUM("completion_tokens"),
  inputTokens: NUM("input_tokens"),
  outputTokens: NUM("output_tokens"),
  cacheN: NUM("cache_n"),
  cachedTokens: NUM("cached_tokens"),
  cacheReadInputTokens: NUM("cache_read_input_tokens"),
};

/** The text usage is read from: the tail, after the first chunk when that has left the tail (at most 16 KiB of it). */
function usageText(head: Buffer | undefined, tail: readonly Buffer[]): string {
  const end = Buffer.concat(tail).toString("utf8");
  return head && tail[0] !== head ? `${head.subarray(0, 16_384).toString("utf8")}\n${end}` : end;
}

function last(re: RegExp, text: string): number | undefined {
  re.lastIndex = 0;
  let v: number | undefined;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const n = Number(m[1]);
    if (Number.isFinite(n)) v = n;
  }
  return v;
}

/** usage/timings from the end of a llama-server response (JSON or SSE). Cheap: only the last few KiB. */
export function parseUsage(tail: string): UsageStats | undefined {
  const u: UsageStats = {};
  // one definition on every API: prompt tokens count the cached ones too (OpenAI's usage does; llama-server's
  // timings.prompt_n and Anthropic's input_tokens count only the tokens evaluated, the rest being cache_n /
  // cache_read_input_tokens)
  const cacheN = last(RE.cacheN, tail);
  const cacheRead = last(RE.cacheReadInputTokens, tail);
  const promptN = last(RE.promptN, tail);
  const input = last(RE.inputTokens, tail);
  const prompt =
    last(RE.promptTokens, tail) ??
    (promptN !== undefined ? promptN + (cacheN ?? 0) : undefined) ??
    (input !== undefined ? input + (cacheRead ?? 0) : undefined);
  const completion = last(RE.completionTokens, tail) ?? last(RE.predictedN, tail) ?? last(RE.outputTokens, tail);
  const pps = last(RE.predictedPerSecond, tail);
  const prps = last(RE.promptPerSecond, tail);
  const cached = cacheN ?? last(RE.cachedTokens, tail) ?? cacheRead;
  if (prompt !== undefined) u.promptTokens = prompt;
  if (completion !== undefined) u.completionTokens = completion;
  if (pps !== undefined) u.predictedPerSecond = pps;
  if (prps !== undefined) u.promptPerSecond = prps;
  if (cached !== undefined) u.cachedTokens = cached;
  return Object.keys(u).length > 0 ? u : undefined;
}
