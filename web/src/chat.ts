/**
 * One streamed chat answer from /v1/chat/completions, folded from its SSE data payloads (pure): the thinking
 * (llama-server's `reasoning_content` deltas, or `<think>…</think>` left inline in the content) kept apart from the
 * answer, and the stats llama-server sends in its last chunk (`timings`, `usage`).
 */
import { ThinkSplitter } from "../../src/chat/think-splitter.js";

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

interface Chunk {
  choices?: Array<{
    delta?: { content?: string | null; reasoning_content?: string | null };
    finish_reason?: string | null;
  }>;
  timings?: {
    prompt_n?: number;
    predicted_n?: number;
    predicted_per_second?: number;
    prompt_ms?: number;
    cache_n?: number;
  };
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  error?: { message?: string };
}

export class AnswerFolder {
  readonly answer: Answer = { thinking: "", content: "", stats: {}, done: false };
  private readonly splitter = new ThinkSplitter();
  private readonly t0: number;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.t0 = now();
  }

  /** One SSE `data:` payload. Returns true when something visible changed. */
  push(data: string): boolean {
    const a = this.answer;
    if (data === "[DONE]") {
      this.finish();
      return true;
    }
    let c: Chunk;
    try {
      c = JSON.parse(data) as Chunk;
    } catch {
      return false;
    }
    if (c.error) {
      a.error = c.error.message ?? "the server reported an error";
      return true;
    }
    let changed = false;
    for (const ch of c.choices ?? []) {
      const r = ch.delta?.reasoning_content;
      const t = ch.delta?.content;
      if ((r || t) && a.stats.firstTokenMs === undefined) a.stats.firstTokenMs = Math.round(this.now() - this.t0);
      if (r) {
        a.thinking += r;
        changed = true;
      }
      if (t) {
        for (const p of this.splitter.push(t)) {
          if (p.kind === "thinking") a.thinking += p.text;
          else a.content += p.text;
        }
        changed = true;
      }
      if (ch.finish_reason) a.stats.finishReason = ch.finish_reason;
    }
    const tm = c.timings;
    if (tm) {
      if (tm.prompt_n !== undefined) a.stats.promptTokens = tm.prompt_n;
      if (tm.predicted_n !== undefined) a.stats.generatedTokens = tm.predicted_n;
      if (tm.predicted_per_second !== undefined) a.stats.tokensPerSecond = tm.predicted_per_second;
      if (tm.prompt_ms !== undefined) a.stats.promptMs = tm.prompt_ms;
      if (tm.cache_n !== undefined) a.stats.cachedTokens = tm.cache_n;
      changed = true;
    }
    if (c.usage) {
      a.stats.promptTokens ??= c.usage.prompt_tokens;
      a.stats.generatedTokens ??= c.usage.completion_tokens;
      changed = true;
    }
    return changed;
  }

  finish(): void {
    const a = this.answer;
    if (a.done) return;
    for (const p of this.splitter.end()) {
      if (p.kind === "thinking") a.thinking += p.text;
      else a.content += p.text;
    }
    a.stats.totalMs = Math.round(this.now() - this.t0);
    a.done = true;
  }
}
