/**
 * One reader of Server-Sent Events for every stream the code reads (llama-server's answers, a peer's /api/events):
 * bytes in, each event's `data` out, on `eventsource-parser` (fields, CRLF, multi-line data, a UTF-8 character or a
 * line split across chunks). Comments are handed to `onComment` when given; `event:`/`id:` fields are ignored.
 */
import { createParser, type EventSourceParser } from "eventsource-parser";

export class SseDataReader {
  private readonly parser: EventSourceParser;
  private readonly decoder = new TextDecoder();
  private out: string[] = [];

  /**
   * `maxBufferChars`: the most of one unfinished event kept; beyond it `push` throws (a stream that never ends its
   * events is not buffered without bound).
   */
  constructor(o: { onComment?: (comment: string) => void; maxBufferChars?: number } = {}) {
    this.parser = createParser({
      onEvent: (e) => this.out.push(e.data),
      ...(o.onComment ? { onComment: o.onComment } : {}),
      ...(o.maxBufferChars !== undefined
        ? {
            maxBufferSize: o.maxBufferChars,
            onError: (e) => {
              throw e;
            },
          }
        : {}),
    });
  }

  /** The data of every event this chunk completes, in order. */
  push(chunk: Uint8Array): string[] {
    this.parser.feed(this.decoder.decode(chunk, { stream: true }));
    return this.take();
  }

  /** The stream ended: the data of a last event that had no blank line after it. */
  end(): string[] {
    // a last line or event the server did not close with a blank line still counts (as it always did here)
    this.parser.feed(this.decoder.decode() + "\n\n");
    this.parser.reset();
    return this.take();
  }

  private take(): string[] {
    if (this.out.length === 0) return EMPTY;
    const events = this.out;
    this.out = [];
    return events;
  }
}

const EMPTY: string[] = [];
