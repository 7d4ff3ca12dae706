import { GglibError } from "../../../core/errors.js";
import { paths } from "../../../core/paths.js";
import type { InstallReporter, InstallResult } from "../../../llama/install/install.js";
import { colors } from "../../../term/color.js";
import { formatDuration } from "../../../term/format.js";
import { ProgressLine } from "../../../term/progress.js";

/** What `gglib llama install` and `update` draw on stderr: steps, a progress bar per step, the result. */
/** Draws steps, a progress bar per step, and messages on stderr. */
export class CliInstallReporter implements InstallReporter {
  private bar: ProgressLine | undefined;
  private label = "";
  private readonly c = colors(process.stderr);

  step(message: string): void {
    this.finishBar();
    this.label = message;
    process.stderr.write(`${this.c.cyan("→")} ${message}\n`);
  }

  progress(fraction: number, detail: string): void {
    if (!this.bar) this.bar = new ProgressLine(`  ${this.label}`, { stream: process.stderr, plainStepPercent: 10 });
    this.bar.update(fraction, detail);
  }

  info(message: string): void {
    this.finishBar();
    process.stderr.write(this.c.dim(message) + "\n");
  }

  warn(message: string): void {
    this.finishBar();
    process.stderr.write(this.c.yellow(`warning: ${message}`) + "\n");
  }

  finishBar(): void {
    this.bar?.done();
    this.bar = undefined;
  }
}

export function jobsOption(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new GglibError("invalid_config", `--jobs must be a positive integer (got "${v}").`, {
      hint: "Example: --jobs 4",
    });
  return Number(v);
}

export function printResult(r: InstallResult, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(
      JSON.stringify(
        { changed: r.changed, record: r.record, ...(r.versionText ? { versionText: r.versionText } : {}) },
        null,
        2,
      ) + "\n",
    );
    return;
  }
  if (!r.changed) return;
  const c = colors(process.stderr);
  const rec = r.record;
  process.stderr.write(
    [
      `${c.green("✓")} llama.cpp ${rec.version} (${rec.backend}) installed${rec.durationMs !== undefined ? ` in ${formatDuration(rec.durationMs)}` : ""}`,
      `  binary: ${rec.binaryPath}`,
      `  record: ${paths.llamaInstallRecord()}`,
      ...(rec.logFile ? [`  build log: ${rec.logFile}`] : []),
      "",
    ].join("\n"),
  );
}

/**
 * Runs an install or update with a reporter on stderr and Ctrl-C as a cancel (the build stops, nothing is
 * swapped in), then prints the result (JSON on stdout with --json).
 */
export async function runInstall(
  json: boolean | undefined,
  work: (reporter: CliInstallReporter, signal: AbortSignal) => Promise<InstallResult>,
): Promise<void> {
  const rep = new CliInstallReporter();
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once("SIGINT", onSig);
  try {
    const r = await work(rep, ac.signal);
    rep.finishBar();
    printResult(r, json);
  } finally {
    rep.finishBar();
    process.off("SIGINT", onSig);
  }
}
