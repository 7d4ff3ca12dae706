/** Server-sent events: the headers of a stream and the error event that ends one that cannot continue. */
import type { OutgoingHttpHeaders } from "node:http";
import { errorBody } from "./errors.js";

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
