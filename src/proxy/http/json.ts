/** JSON in and out: read a request body with a limit, parse it as the JSON object the proxy routes by, reply. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";

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
      reject(new HttpError(400, "bad_request", `Could not read the request body: ${e.message}`));
    });
    req.on("aborted", () => {
      if (done) return;
      done = true;
      reject(new HttpError(400, "client_closed", "The client closed the connection while sending the body."));
    });
  });
}

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    "request_too_large",
    `The request body is larger than the limit of ${Math.round(limit / 1024 / 1024)} MiB. Send less, or raise bodyLimit in the config.`,
  );
}

/** Parses a JSON request body; only `model` and `stream` are used. Malformed JSON → 400 (llama-server says 500). */
export function parseJsonBody(body: Buffer): { model?: unknown; stream?: unknown } {
  if (body.length === 0) throw new HttpError(400, "invalid_json", "The request body is empty; send a JSON object.");
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new HttpError(400, "invalid_json", `The request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new HttpError(400, "invalid_json", "The request body must be a JSON object.");
  }
  return v;
}
