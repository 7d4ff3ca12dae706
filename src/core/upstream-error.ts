/**
 * One reader of the error an upstream answer carries (llama-server, a peer, an OpenAI-compatible server):
 * `{"error":{"message","type","code"}}` (OpenAI, llama-server), `{"error":"…"}` (Ollama), `{"message":"…"}`, or
 * plain text. Pure.
 */

export interface UpstreamError {
  message: string;
  /** `error.type` (OpenAI's kind of error, e.g. "invalid_request_error"). */
  type?: string;
  /** `error.code` when it is a number (llama-server puts the HTTP status there). */
  code?: number;
}

const LIMIT = 2000;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The error a parsed JSON body carries in its `error` field; undefined when it has none (e.g. a stream chunk). */
export function errorOfJson(body: unknown): UpstreamError | undefined {
  if (!isObj(body) || body.error === undefined || body.error === null) return undefined;
  const e = body.error;
  if (typeof e === "string") return { message: e };
  if (!isObj(e)) return { message: JSON.stringify(e) };
  const out: UpstreamError = { message: typeof e.message === "string" ? e.message : JSON.stringify(e) };
  if (typeof e.type === "string" && e.type) out.type = e.type;
  if (typeof e.code === "number") out.code = e.code;
  return out;
}

/**
 * The error of an error answer's text: its JSON `error` (or top-level `message`), else the text itself (trimmed,
 * at most 2000 characters), else `fallback` when the body is empty.
 */
export function errorOfText(
  text: string,
  fallback = "the server answered with an error and no message",
): UpstreamError {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    j = undefined;
  }
  const e = errorOfJson(j);
  if (e) return e;
  if (isObj(j) && typeof j.message === "string") return { message: j.message };
  return { message: text.trim().slice(0, LIMIT) || fallback };
}
