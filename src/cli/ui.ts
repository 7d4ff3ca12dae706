import pc from "picocolors";

/**
 * Terminal output helpers shared by every command: colours only on a TTY and without NO_COLOR, and a progress
 * line that redraws in place on a TTY and prints sparse plain lines otherwise (logs stay readable in CI).
 */
export function colorEnabled(
  stream: NodeJS.WriteStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return Boolean(stream.isTTY);
}

export type Colors = ReturnType<typeof pc.createColors>;

export function colors(stream: NodeJS.WriteStream = process.stdout): Colors {
  return pc.createColors(colorEnabled(stream));
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Width of the bar in characters on a TTY. */
  width?: number;
  /** On a non-TTY, print a line every this many percent (default 25). */
  plainStepPercent?: number;
}

/** One progress line: `label [#####-----]  42% detail`. */
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
      const filled = Math.round(f * this.width);
      const c = colors(this.stream);
      const bar = c.cyan("█".repeat(filled)) + c.dim("░".repeat(this.width - filled));
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

/** Human-readable byte size: 1.5 GiB, 320 MiB, 12 KiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Duration: 850 ms, 3.4 s, 2 min 5 s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}
