import type pc from "picocolors";
import { formatDuration } from "../term/format.js";
import { progressBar } from "../term/progress.js";
import { sanitize, wrapRows } from "../term/text.js";
import { BlockBoundaries } from "./blocks.js";
import type { TerminalMarkdown } from "./markdown.js";
import { formatStats, TurnRenderer, type TurnOptions, type TurnOutcome, type TurnResult } from "./turn.js";

/** Live regions are redrawn at most this often (tokens can arrive thousands a second). */
const REDRAW_MS = 40;

/**
 * Live (stdout is a TTY): the thinking is drawn dim under a "thinking" label in a small region that keeps the last
 * rows, and folds to one line `thought for 3.4 s` when the answer starts (`hide`: only a ticking `thinking… 2 s`
 * line, folded the same way). The answer streams as markdown when `md` is given: finished blocks are rendered, the
 * block still being written is shown raw and redrawn in place. Then a stats line.
 */
export class LiveTurn extends TurnRenderer {
  private lastLoadingPct = -1;
  private loadingShown = false;
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

  constructor(
    model: string,
    o: TurnOptions,
    private readonly c: ReturnType<typeof pc.createColors>,
    private readonly md: TerminalMarkdown | undefined,
  ) {
    super(model, o);
  }

  protected showLoading(model: string, pct: number): void {
    if (pct === this.lastLoadingPct) return;
    this.lastLoadingPct = pct;
    const bar = progressBar(pct / 100, 24, this.c);
    this.drawLive([`${this.c.dim("loading")} ${model} ${bar} ${String(pct).padStart(3)}%`]);
    this.loadingShown = true;
  }

  protected showLoadingNote(text: string): void {
    if (this.lastLoadingPct >= 0) return; // a progress bar is already showing
    this.drawLive([this.c.dim(text)]);
    this.loadingShown = true;
  }

  protected clearLoading(): void {
    if (!this.loadingShown) return;
    this.loadingShown = false;
    this.clearLive();
  }

  protected showThinking(text: string, now: number): void {
    this.thinkTail += text;
    if (this.thinkTail.length > 16_384) this.thinkTail = this.thinkTail.slice(-8_192);
    this.drawThinking(now);
  }

  protected foldThinking(now: number): void {
    if (this.thinkStartAt === undefined) return;
    this.clearLive();
    this.o.out.write(this.c.dim(this.c.italic(`thought for ${formatDuration(now - this.thinkStartAt)}`)) + "\n");
  }

  protected showAnswer(text: string): void {
    if (this.md) this.drawAnswerMarkdown(false, text);
    else this.o.out.write(text);
  }

  protected finish(outcome: TurnOutcome, result: TurnResult): void {
    const out = this.o.out;
    if (this.md && this.phase === "answer") this.drawAnswerMarkdown(true);
    else if (this.answer !== "" && !this.answer.endsWith("\n")) out.write("\n");
    if (this.phase !== "answer" && this.thinking !== "" && !outcome.cancelled && !result.error) {
      const why =
        this.finishReason === "length"
          ? " (the length limit was reached while it was still thinking: raise --max-tokens or the context size)"
          : "";
      out.write(this.c.dim(`no answer${why}`) + "\n");
    }
    if (outcome.cancelled) out.write(this.c.yellow("cancelled") + "\n");
    if (result.error) out.write(this.c.red(`error: ${result.error}`) + "\n");
    if (this.o.stats && !result.error && (this.deltas > 0 || !outcome.cancelled))
      out.write(this.c.dim(formatStats(result.stats)) + "\n");
  }

  // ---- drawing -------------------------------------------------------------------------------------------------

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
