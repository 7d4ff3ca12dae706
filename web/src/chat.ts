/**
 * One streamed chat answer from /v1/chat/completions as the playground shows it: the terminal chat's parser
 * (src/chat/stream.ts: thinking from `reasoning_content` or inline `<think>` kept apart from the answer, errors,
 * usage and timings) folded into one record, with the page's own first-token and total times.
 */
import { ChatStreamParser, type ChatStreamEvent } from "../../src/chat/stream.js";

export interface AnswerStats {
  promptTokens?: number;
  generatedTokens?: number;
  cachedTokens?: number;
  tokensPerSecond?: number;
  promptMs?: number;
  /** First token seen by the page, ms after sending. */
  firstTokenMs?: number;
  totalMs?: number;
  finishReason?: string;
}

export interface Answer {
  thinking: string;
  content: string;
  stats: AnswerStats;
  error?: string;
  done: boolean;
}

export class AnswerFolder {
  readonly answer: Answer = { thinking: "", content: "", stats: {}, done: false };
  private readonly parser = new ChatStreamParser();
  private readonly t0: number;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.t0 = now();
  }

  /** One SSE `data:` payload. Returns true when something visible changed. */
  push(data: string): boolean {
    let changed = false;
    for (const e of this.parser.data(data)) changed = this.fold(e) || changed;
    if (this.parser.done) this.finish();
    return changed;
  }

  finish(): void {
    const a = this.answer;
    if (a.done) return;
    for (const e of this.parser.end()) this.fold(e);
    a.stats.totalMs = Math.round(this.now() - this.t0);
    a.done = true;
  }

  private fold(e: ChatStreamEvent): boolean {
    const a = this.answer;
    switch (e.type) {
      case "thinking":
      case "answer":
        if (a.stats.firstTokenMs === undefined) a.stats.firstTokenMs = Math.round(this.now() - this.t0);
        if (e.type === "thinking") a.thinking += e.text;
        else a.content += e.text;
        return true;
      case "finish":
        a.stats.finishReason = e.reason;
        return false;
      case "error":
        a.error = e.message;
        return true;
      case "usage": {
        const s = a.stats;
        const t = e.timings;
        if (t?.promptN !== undefined) s.promptTokens = t.promptN;
        if (t?.predictedN !== undefined) s.generatedTokens = t.predictedN;
        if (t?.predictedPerSecond !== undefined) s.tokensPerSecond = t.predictedPerSecond;
        if (t?.promptMs !== undefined) s.promptMs = t.promptMs;
        if (t?.cacheN !== undefined) s.cachedTokens = t.cacheN;
        s.promptTokens ??= e.usage.promptTokens;
        s.generatedTokens ??= e.usage.completionTokens;
        s.cachedTokens ??= e.usage.cachedTokens;
        return true;
      }
      case "done":
        return true;
      case "loading":
        return false;
    }
  }
}
