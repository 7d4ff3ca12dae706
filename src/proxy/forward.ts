/**
 * The hot path: one request to llama-server through undici's dispatcher, the response passed back byte for byte
 * as it arrives (no buffering, no compression), with backpressure (pause the upstream when the client is slow),
 * abort in both directions, and the usage/timings read from the tail of the response for metrics.
 */
import type { ServerResponse } from "node:http";
import { Pool, type Dispatcher } from "undici";
import { downstreamResponseHeaders, errorBody, SSE_HEADERS, sseErrorEvent } from "./http-util.js";

/** Connection options of every upstream pool: prompt processing of a long prompt can take minutes before the first
 * byte, so no header/body timeouts. */
const UPSTREAM_OPTIONS = {
  connect: { timeout: 10_000 },
  headersTimeout: 0,
  bodyTimeout: 0,
  keepAliveTimeout: 4_000,
  pipelining: 1,
} as const;

/**
 * Connections to one llama-server process. A pool per process (not per origin): a new llama-server on the port of
 * one that stopped must never be sent a request over a kept-alive socket of the old one ("other side closed").
 */
export function createUpstreamPool(origin: string): Pool {
  return new Pool(origin, UPSTREAM_OPTIONS);
}

export interface UsageStats {
  promptTokens?: number;
  completionTokens?: number;
  /** Generation speed reported by llama-server (tokens/s). */
  predictedPerSecond?: number;
  promptPerSecond?: number;
  /** Prompt tokens taken from llama-server's cache (`timings.cache_n`, else `cached_tokens`). */
  cachedTokens?: number;
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
  /** Explains a lost connection (e.g. "llama-server exited with signal SIGKILL"); may wait briefly for the cause. */
  explainFailure?: (err: Error) => Promise<string>;
  /** Collect usage/timings from the response tail. */
  collectUsage?: boolean;
}

/** A handle to abort a forward in flight (the proxy aborts a model's requests before a forced stop). */
export interface ForwardHandle {
  abort(reason: Error): void;
  done: Promise<ForwardResult>;
}

const TAIL_BYTES = 8192;

export function forward(agent: Dispatcher, res: ServerResponse, o: ForwardOptions): ForwardHandle {
  let ctrl: Dispatcher.DispatchController | undefined;
  let pendingAbort: Error | undefined;
  let status = 0;
  let bytes = 0;
  let isSse = o.sseCommitted;
  let errorStatus = false; // an upstream error response while our SSE headers are out: turn it into an event
  const errChunks: Buffer[] = [];
  const tail: Buffer[] = [];
  let tailLen = 0;
  let settled = false;
  let corked = false;
  const uncork = () => {
    corked = false;
    res.uncork();
  };
  const started = performance.now();
  let ttfbMs: number | undefined;
  let resolveDone!: (r: ForwardResult) => void;
  const done = new Promise<ForwardResult>((r) => (resolveDone = r));

  const finish = (r: ForwardResult) => {
    if (settled) return;
    settled = true;
    res.off("close", onClientClose);
    resolveDone(r);
  };
  const onClientClose = () => {
    if (!settled && !res.writableFinished) {
      const err = new Error("client closed the connection");
      if (ctrl) ctrl.abort(err);
      else pendingAbort = err;
    }
  };
  res.on("close", onClientClose);

  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(c) {
      ctrl = c;
      if (pendingAbort) c.abort(pendingAbort);
    },
    onResponseStart(c, statusCode, headers) {
      if (statusCode < 200) return; // 1xx
      status = statusCode;
      ttfbMs = performance.now() - started;
      const ct = String(headers["content-type"] ?? "");
      if (o.sseCommitted) {
        if (statusCode >= 400 || !ct.startsWith("text/event-stream")) errorStatus = true;
        return;
      }
      isSse = ct.startsWith("text/event-stream");
      const h = downstreamResponseHeaders(headers);
      if (isSse) {
        Object.assign(h, SSE_HEADERS);
        delete h["content-length"];
      }
      if (res.destroyed) {
        c.abort(new Error("client closed the connection"));
        return;
      }
      res.writeHead(statusCode, h);
      if (isSse) res.flushHeaders();
    },
    onResponseData(c, chunk) {
      if (errorStatus) {
        errChunks.push(chunk);
        return;
      }
      bytes += chunk.length;
      if (o.collectUsage) {
        tail.push(chunk);
        tailLen += chunk.length;
        while (tail.length > 1 && tailLen - tail[0]!.length >= TAIL_BYTES) tailLen -= tail.shift()!.length;
      }
      // coalesce what arrives in one tick (status line, headers, body, end) into one write to the socket
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(uncork);
      }
      if (!res.write(chunk)) {
        c.pause();
        res.once("drain", () => c.resume());
      }
    },
    onResponseEnd() {
      if (errorStatus) {
        const text = Buffer.concat(errChunks).toString("utf8");
        let message = text.slice(0, 2000);
        let code = "upstream_error";
        try {
          const j = JSON.parse(text) as { error?: { message?: string; type?: string } };
          if (j.error?.message) message = j.error.message;
          if (j.error?.type) code = j.error.type;
        } catch {
          // not JSON: keep the text
        }
        res.end(sseErrorEvent(o.clientPath, status, code, message));
        finish({ status, completed: true, bytes, ttfbMs });
        return;
      }
      const r: ForwardResult = { status, completed: true, bytes, ttfbMs };
      if (o.collectUsage && tailLen > 0) r.usage = parseUsage(Buffer.concat(tail).toString("utf8"));
      res.end();
      finish(r);
    },
    onResponseError(_c, err) {
      if (res.destroyed || (res.writableEnded && !res.writableFinished)) {
        finish({ status: status || 499, completed: false, bytes, error: err, ttfbMs });
        return;
      }
      void (async () => {
        const why = o.explainFailure ? await o.explainFailure(err) : err.message;
        if (res.destroyed) {
          finish({ status: status || 499, completed: false, bytes, error: err, ttfbMs });
          return;
        }
        const message = `The request to llama-server failed: ${why}`;
        if (!res.headersSent) {
          const body = errorBody(502, "upstream_failed", message);
          res.writeHead(502, {
            "content-type": "application/json; charset=utf-8",
            "content-length": Buffer.byteLength(body),
          });
          res.end(body);
        } else if (isSse) {
          res.end(sseErrorEvent(o.clientPath, 502, "upstream_failed", message));
        } else {
          // a non-streaming body cut midway cannot be repaired: close so the client sees the truncation
          res.destroy(err);
        }
        finish({ status: res.headersSent ? status || 502 : 502, completed: false, bytes, error: err, ttfbMs });
      })();
    },
  };

  agent.dispatch(
    {
      origin: o.origin,
      method: o.method,
      path: o.path,
      headers: o.headers,
      body: o.body,
      headersTimeout: 0,
      bodyTimeout: 0,
    },
    handler,
  );

  return {
    abort(reason: Error) {
      if (ctrl) ctrl.abort(reason);
      else pendingAbort = reason;
    },
    done,
  };
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
};

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
  const prompt = last(RE.promptTokens, tail) ?? last(RE.promptN, tail) ?? last(RE.inputTokens, tail);
  const completion = last(RE.completionTokens, tail) ?? last(RE.predictedN, tail) ?? last(RE.outputTokens, tail);
  const pps = last(RE.predictedPerSecond, tail);
  const prps = last(RE.promptPerSecond, tail);
  if (prompt !== undefined) u.promptTokens = prompt;
  if (completion !== undefined) u.completionTokens = completion;
  if (pps !== undefined) u.predictedPerSecond = pps;
  if (prps !== undefined) u.promptPerSecond = prps;
  const cached = last(RE.cacheN, tail) ?? last(RE.cachedTokens, tail);
  if (cached !== undefined) u.cachedTokens = cached;
  return Object.keys(u).length > 0 ? u : undefined;
}
