import { formatStats, TurnRenderer, type TermOut, type TurnOutcome, type TurnResult } from "./turn.js";

/** A renderer whose loading progress is one line on stderr (plain and --json: stdout holds only the answer). */
export abstract class StderrLoadingTurn extends TurnRenderer {
  private readonly loadingLine = new StderrLoading(this.o.err);

  protected showLoading(model: string, pct: number): void {
    this.loadingLine.progress(model, pct);
  }

  protected showLoadingNote(text: string): void {
    this.loadingLine.note(text);
  }

  protected clearLoading(): void {
    this.loadingLine.clear();
  }
}

/**
 * Plain (stdout is a pipe or a file): the answer goes to stdout as it arrives, nothing else; thinking goes to stderr
 * only with `think: "show"`, stats to stderr only with `stats: true`, loading to stderr (StderrLoading).
 */
export class PlainTurn extends StderrLoadingTurn {
  private thinkingOpen = false;

  protected showThinking(text: string): void {
    if (this.o.think !== "show") return;
    this.o.err.write(text);
    this.thinkingOpen = true;
  }

  protected foldThinking(): void {
    if (!this.thinkingOpen) return;
    if (!this.thinking.endsWith("\n")) this.o.err.write("\n");
    this.thinkingOpen = false;
  }

  protected showAnswer(text: string): void {
    this.o.out.write(text);
  }

  protected finish(outcome: TurnOutcome, result: TurnResult): void {
    if (this.answer !== "" && !this.answer.endsWith("\n")) this.o.out.write("\n");
    if (outcome.cancelled) this.o.err.write("cancelled\n");
    if (this.o.stats && !result.error) this.o.err.write(formatStats(result.stats) + "\n");
  }
}

/**
 * Load progress on stderr, in steps of 25 %: one line redrawn in place on a TTY, else a line per step. Used by the
 * plain and the JSON turns (stdout keeps only the answer).
 */
export class StderrLoading {
  private lastPct = -1;
  private shown = false;

  constructor(private readonly err: TermOut) {}

  progress(model: string, pct: number): void {
    const bucket = Math.floor(pct / 25) * 25;
    if (bucket <= this.lastPct) return;
    this.lastPct = bucket;
    if (this.err.isTTY) {
      this.err.write(`\r\x1b[2Kloading ${model} ${pct}%`);
      this.shown = true;
    } else {
      this.err.write(`loading ${model} ${pct}%\n`);
    }
  }

  note(text: string): void {
    if (this.err.isTTY) {
      this.err.write(`\r\x1b[2K${text}`);
      this.shown = true;
    } else {
      this.err.write(text + "\n");
    }
  }

  clear(): void {
    if (!this.shown) return;
    this.shown = false;
    if (this.err.isTTY) this.err.write("\r\x1b[2K");
  }
}
