import pc from "picocolors";
import { formatDuration } from "../term/format.js";
import type { ChatStreamEvent, StreamTimings, StreamUsage } from "./stream.js";
import { TerminalMarkdown } from "./markdown.js";
import { BlockBoundaries } from "./blocks.js";
import { progressBar } from "../term/progress.js";
import { sanitize, wrapRows } from "../term/text.js";

/** Live regions are redrawn at most this often (tokens can arrive thousands a second). */
const REDRAW_MS = 40;

/**
 * Decides what a chat answer looks like on the terminal, from the stream's events:
 *
 *  - live (stdout is a TTY): the thinking is drawn dim under a "thinking" label in a small region that keeps the
 *    last rows, and folds to one line `thought for 3.4 s` when the answer starts (`hide`: only a ticking
 *    `thinking… 2 s` line, folded the same way). The answer streams as markdown: finished blocks are rendered,
 *    the block still being written is shown raw and redrawn in place. Then a stats line.
 *  - plain (pipe, file): the answer goes to stdout as it arrives, nothing else; thinking goes to stderr only
 *    with `think: "show"`, stats to stderr only with `stats: true`.
 *  - json: one JSON object per answer on stdout.
 *
 * Writes only through the given streams, so tests drive it with fake writables.
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

export class ChatRenderer {
  private readonly o: Required<Omit<RendererOptions, "now">> & { now: () => number };
  private readonly c: ReturnType<typeof pc.createColors>;
  private md: TerminalMarkdown | undefined;

  constructor(opts: RendererOptions) {
    this.o = { ...opts, now: opts.now ?? (() => performance.now()) };
    this.c = pc.createColors(opts.color);
  }

  get thinkMode(): ThinkMode {
    return this.o.think;
  }

  set thinkMode(mode: ThinkMode) {
    this.o.think = mode;
  }

  /** Start showing one answer. */
  startTurn(model: string): TurnRenderer {
    if (this.o.markdown && this.o.live && this.o.color && !this.md) this.md = new TerminalMarkdown(this.width());
    return new TurnRenderer(model, this.o, this.c, this.o.markdown && this.o.live ? this.md : undefined);
  }

  private width(): number {
    return Math.max(20, this.o.out.columns ?? 80);
  }
}

type Phase = "waiting" | "thinking" | "answer";

export class TurnRenderer {
  private phase: Phase = "waiting";
  private readonly startedAt: number;
  private firstTokenAt: number | undefined;
  private thinkStartAt: number | undefined;
  private answerStartAt: number | undefined;
  private thinking = "";
  private answer = "";
  private finishReason: string | undefined;
  private usage: StreamUsage = {};
  private timings: StreamTimings | undefined;
  private deltas = 0;
  private error: string | undefined;
  private loadingShown = false;
  private lastLoadingPct = -1;
  private lastLoadingNote = "";

  /** Rows of the live region drawn so far; the cursor sits at the end of its last row. */
  private liveRows = 0;
  private lastThinkLabel = "";
  /** The block being written outgrew the screen: it is printed raw as it comes. */
  private frozen = false;
  /** The answer text not yet printed for good (the block being written), and its offset in the answer. */
  private buf = "";
  private bufStart = 0;
  /** The last text written raw in a frozen block (to know whether it ended a line). */
  private lastRaw = "";
  /** The end of the thinking, enough to fill the live region. */
  private thinkTail = "";
  private readonly blocks = new BlockBoundaries();
  /** When the live region was last redrawn (redraws are throttled; the final draw is not). */
  private lastDraw = -Infinity;
  private plainThinkingOpen = false;
  private ended = false;

  constructor(
    readonly model: string,
    private readonly o: Required<Omit<RendererOptions, "now">> & { now: () => number },
    private readonly c: ReturnType<typeof pc.createColors>,
    private readonly md: TerminalMarkdown | undefined,
  ) {
    this.startedAt = o.now();
  }

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
    const pct = Math.floor(Math.max(0, Math.min(1, fraction)) * 100);
    if (this.o.live) {
      if (pct === this.lastLoadingPct) return;
      this.lastLoadingPct = pct;
      const bar = progressBar(pct / 100, 24, this.c);
      this.drawLive([`${this.c.dim("loading")} ${model} ${bar} ${String(pct).padStart(3)}%`]);
      this.loadingShown = true;
      return;
    }
    const bucket = Math.floor(pct / 25) * 25;
    if (bucket <= this.lastLoadingPct) return;
    this.lastLoadingPct = bucket;
    if (this.o.err.isTTY) {
      this.o.err.write(`\r\x1b[2Kloading ${model} ${pct}%`);
      this.loadingShown = true;
    } else {
      this.o.err.write(`loading ${model} ${pct}%\n`);
    }
  }

  /** A loading state without a percentage (the proxy is making room, or has no progress yet). */
  loadingNote(text: string): void {
    if (this.phase !== "waiting" || this.ended || text === this.lastLoadingNote) return;
    this.lastLoadingNote = text;
    if (this.o.live) {
      if (this.lastLoadingPct >= 0) return; // a progress bar is already showing
      this.drawLive([this.c.dim(text)]);
      this.loadingShown = true;
    } else if (this.o.err.isTTY) {
      this.o.err.write(`\r\x1b[2K${text}`);
      this.loadingShown = true;
    } else {
      this.o.err.write(text + "\n");
    }
  }

  private clearLoading(): void {
    if (!this.loadingShown) return;
    this.loadingShown = false;
    if (this.o.live) this.clearLive();
    else if (this.o.err.isTTY) this.o.err.write("\r\x1b[2K");
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
    if (this.phase === "answer") {
      // Thinking after the answer began (rare): keep it for the record, do not disturb the answer.
      this.thinking += text;
      return;
    }
    this.thinking += text;
    this.thinkTail += text;
    if (this.thinkTail.length > 16_384) this.thinkTail = this.thinkTail.slice(-8_192);
    if (this.o.json) return;
    if (this.o.live) this.drawThinking(now);
    else if (this.o.think === "show") {
      this.o.err.write(text);
      this.plainThinkingOpen = true;
    }
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
    if (this.o.json) return;
    if (!this.o.live) {
      this.o.out.write(text);
      return;
    }
    if (this.md) this.drawAnswerMarkdown(false, text);
    else this.o.out.write(text);
  }

  /** The stream ended (normally, cancelled, or failed). Prints what remains and returns the record. */
  end(outcome: { cancelled?: boolean; error?: string } = {}): TurnResult {
    if (!this.ended) this.finishDisplay(outcome);
    this.ended = true;
    return this.result(outcome);
  }

  private finishDisplay(outcome: { cancelled?: boolean; error?: string }): void {
    const now = this.o.now();
    const error = outcome.error ?? this.error;
    this.clearLoading();
    if (this.phase === "thinking") this.foldThinking(now);
    const result = this.result(outcome);
    const stats = result.stats;
    if (this.o.json) {
      this.o.out.write(JSON.stringify(jsonRecord(result)) + "\n");
      return;
    }
    if (this.o.live) {
      if (this.md && this.phase === "answer") this.drawAnswerMarkdown(true);
      else if (this.answer !== "" && !this.answer.endsWith("\n")) this.o.out.write("\n");
      if (this.phase !== "answer" && this.thinking !== "" && !outcome.cancelled && !error) {
        const why =
          this.finishReason === "length"
            ? " (the length limit was reached while it was still thinking: raise --max-tokens or the context size)"
            : "";
        this.o.out.write(this.c.dim(`no answer${why}`) + "\n");
      }
      if (outcome.cancelled) this.o.out.write(this.c.yellow("cancelled") + "\n");
      if (error) this.o.out.write(this.c.red(`error: ${error}`) + "\n");
      if (this.o.stats && !error && (this.deltas > 0 || !outcome.cancelled))
        this.o.out.write(this.c.dim(formatStats(stats)) + "\n");
      return;
    }
    if (this.plainThinkingOpen && !this.thinking.endsWith("\n")) this.o.err.write("\n");
    if (this.answer !== "" && !this.answer.endsWith("\n")) this.o.out.write("\n");
    if (outcome.cancelled) this.o.err.write("cancelled\n");
    if (this.o.stats && !error) this.o.err.write(formatStats(stats) + "\n");
  }

  private result(outcome: { cancelled?: boolean; error?: string }): TurnResult {
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

  // ---- live drawing -------------------------------------------------------------------------------------------

  private cols(): number {
    return Math.max(20, this.o.out.columns ?? 80);
  }

  private maxLiveRows(): number {
    return Math.max(3, (this.o.out.rows ?? 24) - 2);
  }

  private clearLive(): void {
    if (this.liveRows === 0) return;
    this.o.out.write("\r" + (this.liveRows > 1 ? `\x1b[${this.liveRows - 1}A` : "") + "\x1b[J");
    this.liveRows = 0;
  }

  /** Replace the live region with these rows (each shorter than the terminal width). */
  private drawLive(rows: string[]): void {
    this.clearLive();
    this.o.out.write(rows.join("\n"));
    this.liveRows = rows.length;
  }

  private drawThinking(now: number): void {
    const secs = ((now - (this.thinkStartAt ?? now)) / 1000).toFixed(0);
    if (this.o.think === "hide") {
      const label = this.c.dim(this.c.italic(`thinking… ${secs} s`));
      if (label === this.lastThinkLabel) return;
      this.lastThinkLabel = label;
      this.drawLive([label]);
      return;
    }
    if (now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    const keep = Math.min(8, this.maxLiveRows() - 1);
    const width = this.cols() - 1;
    // Only the end of the thinking is shown: wrap just enough of it to fill the rows.
    const span = Math.min(keep * width * 2, 8_192);
    const window = this.thinkTail.length > span ? this.thinkTail.slice(-span) : this.thinkTail;
    const rows = wrapRows(sanitize(window.replace(/^\s+/, "")), width);
    const tail = rows.slice(-keep);
    const label =
      this.c.dim(this.c.italic(`thinking… ${secs} s`)) +
      (this.thinking.length > window.length || rows.length > keep ? this.c.dim("  (last lines)") : "");
    this.drawLive([label, ...tail.map((r) => this.c.dim(r))]);
  }

  private foldThinking(now: number): void {
    if (this.o.json || this.thinkStartAt === undefined) return;
    const ms = now - this.thinkStartAt;
    if (this.o.live) {
      this.clearLive();
      this.o.out.write(this.c.dim(this.c.italic(`thought for ${formatDuration(ms)}`)) + "\n");
    } else if (this.plainThinkingOpen) {
      if (!this.thinking.endsWith("\n")) this.o.err.write("\n");
      this.plainThinkingOpen = false;
    }
  }

  /**
   * Print finished markdown blocks rendered; show the unfinished one raw in the live region. Works on `buf` (the
   * answer since the last committed or raw-printed character) only, so a long answer costs linear time.
   */
  private drawAnswerMarkdown(final: boolean, delta = ""): void {
    const md = this.md;
    if (!md) return;
    const out = this.o.out;
    if (final) {
      if (this.frozen) {
        out.write(this.buf);
        const last = this.buf !== "" ? this.buf : this.lastRaw;
        if (!last.endsWith("\n")) out.write("\n");
        out.write("\n");
        this.frozen = false;
      } else {
        this.clearLive();
        const rendered = md.render(this.buf);
        if (rendered.trim() !== "") out.write(rendered + "\n\n");
      }
      this.bufStart += this.buf.length;
      this.buf = "";
      return;
    }
    this.blocks.append(delta);
    this.buf += delta;
    const boundary = this.blocks.boundary;
    if (boundary > this.bufStart) {
      const done = this.buf.slice(0, boundary - this.bufStart);
      if (this.frozen) {
        out.write(done);
        if (!done.endsWith("\n")) out.write("\n");
        out.write("\n");
        this.frozen = false;
      } else {
        this.clearLive();
        const rendered = md.render(done);
        if (rendered.trim() !== "") out.write(rendered + "\n\n");
      }
      this.buf = this.buf.slice(done.length);
      this.bufStart = boundary;
      this.lastDraw = -Infinity;
    }
    if (this.frozen) {
      if (this.buf !== "") {
        out.write(this.buf);
        this.lastRaw = this.buf;
      }
      this.bufStart += this.buf.length;
      this.buf = "";
      return;
    }
    const now = this.o.now();
    if (now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    const rows = wrapRows(sanitize(this.buf), this.cols() - 1);
    if (rows.length > this.maxLiveRows()) {
      // Too tall to redraw in place: from here this block is printed raw as it comes.
      this.clearLive();
      out.write(this.buf);
      this.lastRaw = this.buf;
      this.frozen = true;
      this.bufStart += this.buf.length;
      this.buf = "";
      return;
    }
    if (this.buf === "") this.clearLive();
    else this.drawLive(rows);
  }
}

function jsonRecord(r: TurnResult): Record<string, unknown> {
  return {
    model: r.model,
    answer: r.answer,
    thinking: r.thinking,
    finish_reason: r.finishReason ?? null,
    cancelled: r.cancelled,
    ...(r.error ? { error: r.error } : {}),
    stats: {
      ttft_ms: round(r.stats.ttftMs),
      thinking_ms: round(r.stats.thinkingMs),
      total_ms: round(r.stats.totalMs),
      prompt_tokens: r.stats.promptTokens ?? null,
      cached_tokens: r.stats.cachedTokens ?? null,
      generated_tokens: r.stats.generatedTokens ?? null,
      tokens_per_second: r.stats.tokensPerSecond !== undefined ? Math.round(r.stats.tokensPerSecond * 100) / 100 : null,
    },
  };
}

function round(n: number | undefined): number | null {
  return n === undefined ? null : Math.round(n);
}
