/**
 * HTTP errors in OpenAI's shape, {"error":{"message","type","code"}}: the body, the reply (with Retry-After and
 * the Bearer challenge), and the wrapper that turns a handler's throw into that reply instead of a crash.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";
import { sendJson } from "./json.js";

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

export function errorBody(status: number, code: string, message: string): string {
  return JSON.stringify({ error: { message, type: errorType(status), code } });
}

export function sendError(res: ServerResponse, e: HttpError, headers: OutgoingHttpHeaders = {}): void {
  const h: OutgoingHttpHeaders = { ...headers };
  if (e.retryAfterS !== undefined) h["retry-after"] = String(e.retryAfterS);
  if (e.status === 401) h["www-authenticate"] = 'Bearer realm="gglib"';
  sendJson(res, e.status, errorBody(e.status, e.code, e.message), h);
}

/** Writes an error to the client; routes with another error shape (e.g. Ollama's) bring their own. */
export type ErrorWriter = (res: ServerResponse, e: HttpError) => void;

/** Any thrown value as the HttpError the client gets (an unexpected one is a 500). */
export function asHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  return new HttpError(500, "internal_error", `Internal proxy error: ${(e as Error)?.message ?? String(e)}`);
}

/** Wraps an async request handler so a throw becomes an error reply instead of killing the process. */
export function safeHandler(
  fn: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  onError: (e: unknown) => void,
  write: (res: ServerResponse, e: HttpError, req: IncomingMessage) => void = (res, e) => sendError(res, e),
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    fn(req, res).catch((e: unknown) => {
      if (!(e instanceof HttpError)) onError(e);
      try {
        if (e instanceof HttpError || !res.headersSent) write(res, asHttpError(e), req);
        else res.destroy();
      } catch {
        res.destroy();
      }
    });
  };
}

/** The raw reply to a request node could not parse (or that arrived too slowly), written on the socket. */
export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
  const body = timeout
    ? JSON.stringify({
        error: {
          message: "The request was not received in time (slow client).",
          type: "invalid_request_error",
          code: "request_timeout",
        },
      })
    : JSON.stringify({
        error: { message: `Bad request: ${err.message}`, type: "invalid_request_error", code: "bad_request" },
      });
  const status = timeout ? "408 Request Timeout" : "400 Bad Request";
  return `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
