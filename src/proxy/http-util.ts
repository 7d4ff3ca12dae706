/** Small HTTP helpers for the proxy: OpenAI-shaped errors, JSON replies, body reading with a limit, SSE bits. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/** An error answered to the client in OpenAI's shape: {"error":{"message","type","code"}}. */
export class ProxyHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterS?: number,
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ProxyHttpError";
  }
}

export function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 413) return "invalid_request_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "unavailable_error";
  if (status >= 400 && status < 500) return "invalid_request_error";
  return "server_error";
}

export function errorBody(status: number, code: string, message: string, extra?: Record<string, unknown>): string {
  return JSON.stringify({ error: { message, type: errorType(status), code, ...(extra ?? {}) } });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, e: ProxyHttpError, headers: OutgoingHttpHeaders = {}): void {
  const h: OutgoingHttpHeaders = { ...headers };
  if (e.retryAfterS !== undefined) h["retry-after"] = String(e.retryAfterS);
  if (e.status === 401) h["www-authenticate"] = 'Bearer realm="gglib"';
  sendJson(res, e.status, errorBody(e.status, e.code, e.message, e.extra), h);
}

/** Reads a request body up to `limit` bytes; 413 beyond it (the rest is not read). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on("error", (e) => {
      if (done) return;
      done = true;
      reject(new ProxyHttpError(400, "bad_request", `Could not read the request body: ${e.message}`));
    });
    req.on("aborted", () => {
      if (done) return;
      done = true;
      reject(new ProxyHttpError(400, "client_closed", "The client closed the connection while sending the body."));
    });
  });
}

function tooLarge(limit: number): ProxyHttpError {
  return new ProxyHttpError(
    413,
    "request_too_large",
    `The request body is larger than the limit of ${Math.round(limit / 1024 / 1024)} MiB. Send less, or raise bodyLimit in the config.`,
  );
}

/** Request headers never sent upstream: hop-by-hop ones, the client's credentials, and what we recompute. */
const DROP_REQUEST = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "authorization",
  "x-api-key",
  "expect",
  // no compression between the proxy and llama-server: bytes pass through as they come
  "accept-encoding",
]);

/** Response headers not passed back: hop-by-hop ones and llama-server's own CORS (the proxy decides CORS). */
const DROP_RESPONSE = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
  "access-control-allow-origin",
  "access-control-allow-credentials",
  "access-control-allow-methods",
  "access-control-allow-headers",
]);

export function upstreamRequestHeaders(
  h: IncomingMessage["headers"],
  bodyLength: number | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  const connectionTokens = tokens(h.connection);
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || DROP_REQUEST.has(k) || connectionTokens.has(k)) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  if (bodyLength !== undefined) out["content-length"] = String(bodyLength);
  return out;
}

export function downstreamResponseHeaders(h: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionTokens = tokens(h.connection);
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || DROP_RESPONSE.has(k) || connectionTokens.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function tokens(v: string | string[] | undefined): Set<string> {
  if (!v) return new Set();
  const s = Array.isArray(v) ? v.join(",") : v;
  return new Set(
    s
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t && t !== "close" && t !== "keep-alive"),
  );
}

export const SSE_HEADERS: OutgoingHttpHeaders = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/** The SSE error event (and end marker) for a stream that cannot continue, in the dialect of the endpoint. */
export function sseErrorEvent(path: string, status: number, code: string, message: string): string {
  if (path.startsWith("/v1/messages")) {
    // Anthropic's stream error event
    return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: status === 503 ? "overloaded_error" : "api_error", message } })}\n\n`;
  }
  return `data: ${errorBody(status, code, message)}\n\ndata: [DONE]\n\n`;
}

/** Wraps an async request handler so a throw becomes a 500 instead of killing the process. */
export function safeHandler(
  fn: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  onError: (e: unknown) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    fn(req, res).catch((e: unknown) => {
      if (!(e instanceof ProxyHttpError)) onError(e);
      try {
        if (e instanceof ProxyHttpError) sendError(res, e);
        else if (!res.headersSent)
          sendError(
            res,
            new ProxyHttpError(500, "internal_error", `Internal proxy error: ${(e as Error)?.message ?? String(e)}`),
          );
        else res.destroy();
      } catch {
        res.destroy();
      }
    });
  };
}
