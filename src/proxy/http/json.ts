/**
 * JSON in and out: read a request body with a limit (refusing one nested deeper than llama-server can parse), parse
 * it as the JSON object the proxy routes by, reply.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { isUtf8 } from "node:buffer";
import { HttpError } from "../../core/errors.js";
import { MAX_JSON_DEPTH, nestingBeyond } from "./nesting.js";

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

/**
 * Reads a request body up to `limit` bytes; 413 beyond it (the rest is not read). Every body the proxy forwards
 * comes through here: one nested deeper than MAX_JSON_DEPTH is a 400 (llama-server's parser would overflow its
 * stack and crash the model for everyone); multipart/form-data bodies are not JSON (llama-server makes strings of
 * their fields) and are not scanned. `configurable`: the limit is the config's bodyLimit (the 413 says how to raise it).
 */
export async function readBody(req: IncomingMessage, limit: number, configurable = true): Promise<Buffer> {
  const body = await readBytes(req, limit, configurable);
  // exactly llama-server's test (cpp-httplib: a case-sensitive prefix): any other body it parses as JSON
  if (!String(req.headers["content-type"] ?? "").startsWith("multipart/form-data")) refuseDeepNesting(body);
  return body;
}

/** 400 when a JSON body nests deeper than llama-server can parse. */
export function refuseDeepNesting(body: Buffer): void {
  const at = nestingBeyond(body, MAX_JSON_DEPTH);
  if (at < 0) return;
  throw new HttpError(
    400,
    "json_too_deep",
    `The request body nests arrays/objects more than ${MAX_JSON_DEPTH} levels deep (at byte ${at}); llama-server's ` +
      `parser would overflow its stack on it, so the proxy refuses it. Send at most ${MAX_JSON_DEPTH} levels.`,
  );
}

function readBytes(req: IncomingMessage, limit: number, configurable: boolean): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(tooLarge(limit, configurable));
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
        reject(tooLarge(limit, configurable));
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

function tooLarge(limit: number, configurable: boolean): HttpError {
  return new HttpError(
    413,
    "request_too_large",
    `The request body is larger than the limit of ${sizeText(limit)}${configurable ? "" : " for this route"}. ` +
      (configurable ? "Send less, or raise bodyLimit in the config." : "Send less."),
  );
}

/** A limit in the unit that shows it: "64 KiB", "32 MiB", "1.5 MiB", "512 bytes". */
export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const [value, unit] = bytes < 1024 * 1024 ? [bytes / 1024, "KiB"] : [bytes / 1024 / 1024, "MiB"];
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
}

/** Parses a JSON request body; only `model` and `stream` are used. Malformed JSON → 400 (llama-server says 500). */
export function parseJsonBody(body: Buffer, contentType?: string): Record<string, unknown> {
  refuseMultipart(contentType);
  if (body.length === 0) throw new HttpError(400, "invalid_json", "The request body is empty; send a JSON object.");
  if (!isUtf8(body)) {
    throw new HttpError(400, "invalid_json", "The request body is not valid UTF-8; JSON must be sent as UTF-8 text.");
  }
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new HttpError(400, "invalid_json", `The request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new HttpError(400, "invalid_json", "The request body must be a JSON object.");
  }
  return v as Record<string, unknown>;
}

/** 400 for a multipart body sent to a route that takes JSON (form-urlencoded is read as JSON, like llama-server). */
export function refuseMultipart(contentType: string | undefined): void {
  if (contentType === undefined || !contentType.toLowerCase().startsWith("multipart/")) return;
  throw new HttpError(400, "unsupported_content_type", multipartMessage(contentType));
}

export function multipartMessage(contentType: string): string {
  return (
    `This endpoint takes a JSON object (Content-Type: application/json), not ${contentType.split(";")[0]!.trim()}; ` +
    "multipart bodies are for /v1/audio/transcriptions."
  );
}
