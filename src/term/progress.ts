import { colors, type Colors } from "./color.js";

/** The bar itself: `width` cells, the done part in cyan, the rest dim. `fraction` is clamped to 0..1. */
export function progressBar(fraction: number, width: number, c: Colors): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.round(f * width);
  return c.cyan("█".repeat(filled)) + c.dim("░".repeat(width - filled));
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Width of the bar in characters on a TTY. */
  width?: number;
  /** On a non-TTY, print a line every this many percent (default 25). */
  plainStepPercent?: number;
}

/**
 * One progress line: `label [#####-----]  42% detail`, redrawn in place on a TTY; on anything else sparse plain
 * lines (logs stay readable in CI).
 */
export class ProgressLine {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly width: number;
  private readonly step: number;
  private lastPlain = -1;
  private lastDraw = "";
  private active = false;

  constructor(
    private label: string,
    opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.width = opts.width ?? 30;
    this.step = opts.plainStepPercent ?? 25;
  }

  /** fraction in 0..1 */
  update(fraction: number, detail = ""): void {
    const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
    const pct = Math.floor(f * 100);
    if (this.tty) {
      const bar = progressBar(f, this.width, colors(this.stream));
      const line = `${this.label} ${bar} ${String(pct).padStart(3)}%${detail ? " " + detail : ""}`;
      if (line === this.lastDraw) return;
      this.lastDraw = line;
      this.stream.write("\r\x1b[2K" + line);
      this.active = true;
    } else {
      const bucket = Math.floor(pct / this.step) * this.step;
      if (bucket <= this.lastPlain) return;
      this.lastPlain = bucket;
      this.stream.write(`${this.label} ${pct}%${detail ? " " + detail : ""}\n`);
    }
  }

  /** Clear the line (TTY) and optionally print a final message. */
  done(message?: string): void {
    if (this.tty && this.active) this.stream.write("\r\x1b[2K");
    this.active = false;
    if (message) this.stream.write(message + "\n");
  }
}
