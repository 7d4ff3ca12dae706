import { createParser, type EventSourceParser } from "eventsource-parser";
import { errorOfJson } from "../core/upstream-error.js";
import { ThinkSplitter, type SplitPiece } from "./think-splitter.js";

/**
 * Turns the bytes of an OpenAI `chat.completion.chunk` SSE stream (llama-server or the gglib proxy) into what a
 * chat shows: thinking text, answer text, usage and timings, errors, and model loading progress.
 *
 * Thinking comes either as `delta.reasoning_content` (llama-server `--reasoning-format deepseek|auto`; `reasoning`
 * on some other servers) or inline in `content` between `<think>` tags; both are handled, tags split across
 * chunks included. Pure: no I/O, no timers.
 */

export interface StreamUsage {
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
}

/** llama-server's `timings` object (the fields we use). */
export interface StreamTimings {
  promptN?: number;
  promptMs?: number;
  predictedN?: number;
  predictedMs?: number;
  predictedPerSecond?: number;
}

export type ChatStreamEvent =
  | { readonly type: "thinking"; readonly text: string }
  | { readonly type: "answer"; readonly text: string }
  | { readonly type: "usage"; readonly usage: StreamUsage; readonly timings?: StreamTimings }
  | { readonly type: "finish"; readonly reason: string }
  | { readonly type: "error"; readonly message: string; readonly code?: number; readonly errorType?: string }
  /**
   * `: loading <model> NN%` comments the gglib proxy sends while it loads the model (fraction in 0..1, absent when
   * not known yet), and `: waiting for room to load <model>` while it makes room (waiting: true).
   */
  | { readonly type: "loading"; readonly model: string; readonly fraction?: number; readonly waiting?: boolean }
  | { readonly type: "done" };

export interface ChatStreamParserOptions {
  /** The prompt already opened a `<think>` block (see promptOpensThinking). */
  forcedOpen?: boolean;
}

const LOADING_RE = /^\s*loading\s+(\S+)(?:\s+(\d+(?:\.\d+)?)\s*%)?\s*$/i;
const WAITING_RE = /^\s*waiting for room to load\s+(\S+)\s*$/i;

export class ChatStreamParser {
  private readonly sse: EventSourceParser;
  private readonly splitter: ThinkSplitter;
  private queue: ChatStreamEvent[] = [];
  private sawReasoningField = false;
  private sawDone = false;
  private answerStarted = false;

  constructor(opts: ChatStreamParserOptions = {}) {
    this.splitter = new ThinkSplitter({ forcedOpen: opts.forcedOpen === true });
    this.sse = createParser({
      onEvent: (ev) => this.onData(ev.data),
      onComment: (c) => this.onComment(c),
    });
  }

  /** Whether `[DONE]` was seen (a stream without it ended early or errored). */
  get done(): boolean {
    return this.sawDone;
  }

  feed(text: string): ChatStreamEvent[] {
    this.sse.feed(text);
    return this.take();
  }

  /** The byte stream ended: flush held-back text. */
  end(): ChatStreamEvent[] {
    this.sse.reset({ consume: true });
    this.pushPieces(this.splitter.end());
    return this.take();
  }

  private take(): ChatStreamEvent[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  private onComment(comment: string): void {
    const w = WAITING_RE.exec(comment);
    if (w) {
      this.queue.push({ type: "loading", model: w[1] ?? "", waiting: true });
      return;
    }
    const m = LOADING_RE.exec(comment);
    if (!m) return;
    if (m[2] === undefined) {
      this.queue.push({ type: "loading", model: m[1] ?? "" });
      return;
    }
    const pct = Number(m[2]);
    this.queue.push({ type: "loading", model: m[1] ?? "", fraction: Math.max(0, Math.min(1, pct / 100)) });
  }

  private onData(data: string): void {
    const trimmed = data.trim();
    if (trimmed === "") return;
    if (trimmed === "[DONE]") {
      this.pushPieces(this.splitter.end());
      this.sawDone = true;
      this.queue.push({ type: "done" });
      return;
    }
    let obj: unknown;
    try {
      obj = JSON.parse(trimmed);
    } catch {
      this.queue.push({
        type: "error",
        message: `the server sent an event that is not JSON: ${trimmed.slice(0, 200)}`,
      });
      return;
    }
    if (!isRecord(obj)) return;
    const err = parseErrorBody(obj);
    if (err) {
      this.queue.push(err);
      return;
    }
    const choices = Array.isArray(obj.choices) ? (obj.choices as unknown[]) : [];
    const choice = choices[0];
    if (isRecord(choice)) {
      const delta = isRecord(choice.delta) ? choice.delta : isRecord(choice.message) ? choice.message : undefined;
      if (delta) {
        const reasoning = str(delta.reasoning_content) ?? str(delta.reasoning);
        if (reasoning !== undefined && reasoning !== "") {
          if (!this.sawReasoningField) {
            this.sawReasoningField = true;
            this.pushPieces(this.splitter.answerOnly());
          }
          this.queue.push({ type: "thinking", text: reasoning });
        }
        let content = str(delta.content);
        if (content !== undefined && content !== "") {
          if (this.sawReasoningField) {
            // The answer after the thinking usually starts with the blank line that followed </think>.
            if (!this.answerStarted) content = content.replace(/^\s+/, "");
            if (content !== "") {
              this.answerStarted = true;
              this.queue.push({ type: "answer", text: content });
            }
          } else this.pushPieces(this.splitter.push(content));
        }
      }
      const finish = str(choice.finish_reason);
      if (finish) this.queue.push({ type: "finish", reason: finish });
    }
    const usage = parseUsage(obj.usage);
    const timings = parseTimings(obj.timings);
    if (usage || timings) this.queue.push({ type: "usage", usage: usage ?? {}, ...(timings ? { timings } : {}) });
  }

  private pushPieces(pieces: SplitPiece[]): void {
    for (const p of pieces) this.queue.push({ type: p.kind, text: p.text });
  }
}

/** `{"error":{"message","type","code"}}` (OpenAI, llama-server) or `{"error":"text"}`. */
export function parseErrorBody(obj: unknown): Extract<ChatStreamEvent, { type: "error" }> | undefined {
  const e = errorOfJson(obj);
  if (!e) return undefined;
  return {
    type: "error",
    message: e.message,
    ...(e.code !== undefined ? { code: e.code } : {}),
    ...(e.type ? { errorType: e.type } : {}),
  };
}

function parseUsage(u: unknown): StreamUsage | undefined {
  if (!isRecord(u)) return undefined;
  const out: StreamUsage = {};
  if (typeof u.prompt_tokens === "number") out.promptTokens = u.prompt_tokens;
  if (typeof u.completion_tokens === "number") out.completionTokens = u.completion_tokens;
  const details = u.prompt_tokens_details;
  if (isRecord(details) && typeof details.cached_tokens === "number") out.cachedTokens = details.cached_tokens;
  return out;
}

function parseTimings(t: unknown): StreamTimings | undefined {
  if (!isRecord(t)) return undefined;
  const out: StreamTimings = {};
  if (typeof t.prompt_n === "number") out.promptN = t.prompt_n;
  if (typeof t.prompt_ms === "number") out.promptMs = t.prompt_ms;
  if (typeof t.predicted_n === "number") out.predictedN = t.predicted_n;
  if (typeof t.predicted_ms === "number") out.predictedMs = t.predicted_ms;
  if (typeof t.predicted_per_second === "number") out.predictedPerSecond = t.predicted_per_second;
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
