/**
 * A llama-server stream (SSE of OpenAI chat chunks or `/completion` chunks) → Ollama's NDJSON lines, chunk by
 * chunk (pure; the clock is passed in). An error event ends the stream with Ollama's `{"error":"…"}` line; the
 * closing frames (tool calls, the final stats) come from the translator's `end()` once the caller has what it
 * needs for them (the `context` of /api/generate).
 */
import { SseDataReader } from "../core/sse.js";
import { errorOfJson, errorOfText } from "../core/upstream-error.js";
import type { OllamaTranslator } from "./response.js";
import { ndjsonLine } from "./wire.js";

export class NdjsonFromSse {
  private readonly reader = new SseDataReader();
  /** An error event came: its line was the last; nothing more is to be written. */
  failed = false;

  constructor(private readonly tr: OllamaTranslator) {}

  /** The NDJSON text for the events this chunk completes ("" when none). */
  push(chunk: Uint8Array, now: () => number): string {
    return this.failed ? "" : this.lines(this.reader.push(chunk), now);
  }

  /** The NDJSON text of an event the body left unterminated. */
  flush(now: () => number): string {
    return this.failed ? "" : this.lines(this.reader.end(), now);
  }

  private lines(datas: readonly string[], now: () => number): string {
    let out = "";
    for (const d of datas) {
      if (d === "[DONE]") continue;
      let c: unknown;
      try {
        c = JSON.parse(d);
      } catch {
        continue;
      }
      if (typeof c !== "object" || c === null || Array.isArray(c)) continue;
      const o = c as Record<string, unknown>;
      if (errorOfJson(o)) {
        this.failed = true;
        return out + ndjsonLine({ error: errorOfText(d).message });
      }
      for (const f of this.tr.chunk(o, now())) out += ndjsonLine(f);
    }
    return out;
  }
}
