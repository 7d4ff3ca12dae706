import { formatDuration } from "../term/format.js";
import type { ChatStreamEvent, StreamTimings, StreamUsage } from "./stream.js";

/**
 * One answer on the terminal: what every way of showing it shares. This class keeps the record (phase, texts,
 * timings, usage → `TurnResult` and its stats) and decides when the display changes (the first token clears the
 * loading line, the answer folds the thinking, the end prints what remains); each mode draws those changes its own
 * way: turn-live.ts (a TTY: live regions, markdown), turn-plain.ts (pipes and files), turn-json.ts (--json).
 */

export type ThinkMode = "show" | "hide";

export interface TermOut {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

export interface RendererOptions {
  out: TermOut;
  err: TermOut;
  /** Cursor control allowed on `out` (a TTY): live regions, folding. */
  live: boolean;
  /** ANSI colours. */
  color: boolean;
  /** Render the answer as markdown (needs live and color). */
  markdown: boolean;
  think: ThinkMode;
  json: boolean;
  /** Print the stats line (always shown in live mode unless false). */
  stats: boolean;
  now?: () => number;
}

/** The options as a turn sees them (every one set; the think mode may change between turns). */
export type TurnOptions = Required<Omit<RendererOptions, "now">> & { now: () => number };

export interface TurnStats {
  /** Request sent → first thinking or answer text. */
  ttftMs?: number;
  thinkingMs?: number;
  totalMs: number;
  promptTokens?: number;
  cachedTokens?: number;
  generatedTokens?: number;
  tokensPerSecond?: number;
}

export interface TurnResult {
  model: string;
  thinking: string;
  answer: string;
  finishReason?: string;
  cancelled: boolean;
  error?: string;
  stats: TurnStats;
}

export interface TurnOutcome {
  cancelled?: boolean;
  error?: string;
}

/** `first token 120 ms · 85.3 tok/s · prompt 34 tokens (33 cached) · generated 17 tokens` */
export function formatStats(s: TurnStats): string {
  const parts: string[] = [];
  if (s.ttftMs !== undefined) parts.push(`first token ${formatDuration(s.ttftMs)}`);
  if (s.tokensPerSecond !== undefined && Number.isFinite(s.tokensPerSecond))
    parts.push(`${s.tokensPerSecond.toFixed(1)} tok/s`);
  if (s.promptTokens !== undefined) {
    parts.push(`prompt ${s.promptTokens} tokens${s.cachedTokens ? ` (${s.cachedTokens} cached)` : ""}`);
  }
  if (s.generatedTokens !== undefined) parts.push(`generated ${s.generatedTokens} tokens`);
  if (parts.length === 0) parts.push(`took ${formatDuration(s.totalMs)}`);
  return parts.join(" · ");
}

export type Phase = "waiting" | "thinking" | "answer";

export abstract class TurnRenderer {
  protected phase: Phase = "waiting";
  protected readonly startedAt: number;
  protected firstTokenAt: number | undefined;
  protected thinkStartAt: number | undefined;
  protected answerStartAt: number | undefined;
  protected thinking = "";
  protected answer = "";
  protected finishReason: string | undefined;
  protected usage: StreamUsage = {};
  protected timings: StreamTimings | undefined;
  protected deltas = 0;
  protected error: string | undefined;
  private lastLoadingNote = "";
  private ended = false;

  constructor(
    readonly model: string,
    protected readonly o: TurnOptions,
  ) {
    this.startedAt = o.now();
  }

  // ---- what each mode draws -------------------------------------------------------------------------------------

  /** Load progress, 0..100, before the first token. */
  protected abstract showLoading(model: string, pct: number): void;
  /** A loading state without a percentage (shown once per distinct text). */
  protected abstract showLoadingNote(text: string): void;
  /** The first token came: the loading line goes. */
  protected abstract clearLoading(): void;
  /** More thinking before the answer (`text` is the new part; `this.thinking` holds it all). */
  protected abstract showThinking(text: string, now: number): void;
  /** The thinking ended (the answer starts, or the turn ends while thinking). */
  protected abstract foldThinking(now: number): void;
  /** More answer text. */
  protected abstract showAnswer(text: string): void;
  /** The end: print what remains (the loading line is cleared and the thinking folded already). */
  protected abstract finish(outcome: TurnOutcome, result: TurnResult): void;

  // ---- the record ----------------------------------------------------------------------------------------------

  event(ev: ChatStreamEvent): void {
    switch (ev.type) {
      case "loading":
        if (ev.waiting) this.loadingNote(`waiting for room to load ${ev.model}…`);
        else if (ev.fraction === undefined) this.loadingNote(`loading ${ev.model}…`);
        else this.loading(ev.model, ev.fraction);
        return;
      case "thinking":
        this.onThinking(ev.text);
        return;
      case "answer":
        this.onAnswer(ev.text);
        return;
      case "usage":
        this.usage = { ...this.usage, ...ev.usage };
        if (ev.timings) this.timings = ev.timings;
        return;
      case "finish":
        this.finishReason = ev.reason;
        return;
      case "error":
        this.error = ev.message;
        return;
      case "done":
        return;
    }
  }

  /** Model load progress (0..1) before the first token. */
  loading(model: string, fraction: number): void {
    if (this.phase !== "waiting" || this.ended) return;
    this.showLoading(model, Math.floor(Math.max(0, Math.min(1, fraction)) * 100));
  }

  /** A loading state without a percentage (the proxy is making room, or has no progress yet). */
  loadingNote(text: string): void {
    if (this.phase !== "waiting" || this.ended || text === this.lastLoadingNote) return;
    this.lastLoadingNote = text;
    this.showLoadingNote(text);
  }

  private onThinking(text: string): void {
    if (this.ended || text === "") return;
    const now = this.o.now();
    this.firstTokenAt ??= now;
    this.deltas++;
    if (this.phase === "waiting") {
      this.clearLoading();
      this.phase = "thinking";
      this.thinkStartAt = now;
    }
    this.thinking += text;
    // Thinking after the answer began (rare): kept for the record, the answer is not disturbed.
    if (this.phase === "thinking") this.showThinking(text, now);
  }

  private onAnswer(text: string): void {
    if (this.ended || text === "") return;
    const now = this.o.now();
    this.firstTokenAt ??= now;
    this.deltas++;
    if (this.phase !== "answer") {
      this.clearLoading();
      if (this.phase === "thinking") this.foldThinking(now);
      this.phase = "answer";
      this.answerStartAt = now;
    }
    this.answer += text;
    this.showAnswer(text);
  }

  /** The stream ended (normally, cancelled, or failed). Prints what remains and returns the record. */
  end(outcome: TurnOutcome = {}): TurnResult {
    if (!this.ended) {
      this.clearLoading();
      if (this.phase === "thinking") this.foldThinking(this.o.now());
      this.finish(outcome, this.result(outcome));
    }
    this.ended = true;
    return this.result(outcome);
  }

  private result(outcome: TurnOutcome): TurnResult {
    const error = outcome.error ?? this.error;
    return {
      model: this.model,
      thinking: this.thinking,
      answer: this.answer,
      ...(this.finishReason ? { finishReason: this.finishReason } : {}),
      cancelled: outcome.cancelled === true,
      ...(error ? { error } : {}),
      stats: this.computeStats(this.o.now()),
    };
  }

  private computeStats(now: number): TurnStats {
    const s: TurnStats = { totalMs: now - this.startedAt };
    if (this.firstTokenAt !== undefined) s.ttftMs = this.firstTokenAt - this.startedAt;
    if (this.thinkStartAt !== undefined) s.thinkingMs = (this.answerStartAt ?? now) - this.thinkStartAt;
    const t = this.timings;
    s.promptTokens = this.usage.promptTokens ?? (t?.promptN !== undefined ? t.promptN : undefined);
    if (this.usage.cachedTokens !== undefined) s.cachedTokens = this.usage.cachedTokens;
    s.generatedTokens = this.usage.completionTokens ?? t?.predictedN ?? (this.deltas > 0 ? this.deltas : undefined);
    if (t?.predictedPerSecond !== undefined) s.tokensPerSecond = t.predictedPerSecond;
    else if (
      this.firstTokenAt !== undefined &&
      s.generatedTokens !== undefined &&
      now - this.firstTokenAt > 0 &&
      s.generatedTokens > 1
    ) {
      s.tokensPerSecond = ((s.generatedTokens - 1) * 1000) / (now - this.firstTokenAt);
    }
    if (s.promptTokens === undefined) delete s.promptTokens;
    if (s.generatedTokens === undefined) delete s.generatedTokens;
    return s;
  }
}
