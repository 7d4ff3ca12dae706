import { spawn, type SpawnOptions } from "node:child_process";
import { LineSplitter } from "./lines.js";
import { signalGroup } from "./terminate/signals.js";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** It ran past `timeoutMs` and was killed. */
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called for every line of stdout and stderr as it arrives. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Keep at most this many characters of each stream in the result (default 1 MiB). */
  maxCapture?: number;
}

/**
 * Runs a command to completion without a shell. Never throws for a non-zero exit (the caller decides);
 * throws only when the command cannot be started (ENOENT, EACCES). Its process group is killed on timeout/abort.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const max = opts.maxCapture ?? 1024 * 1024;
    const spawnOpts: SpawnOptions = {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: process.platform !== "win32",
    };
    const child = spawn(cmd, args, spawnOpts);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const killGroup = () => {
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
    };
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            killGroup();
          }, opts.timeoutMs)
        : undefined;
    const onAbort = () => killGroup();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const outLines = new LineSplitter((l) => opts.onLine?.(l, "stdout"));
    const errLines = new LineSplitter((l) => opts.onLine?.(l, "stderr"));
    child.stdout?.on("data", (d: Buffer) => {
      if (stdout.length < max) stdout += d.toString("utf8");
      if (opts.onLine) outLines.push(d);
    });
    child.stderr?.on("data", (d: Buffer) => {
      if (stderr.length < max) stderr += d.toString("utf8");
      if (opts.onLine) errLines.push(d);
    });
    child.once("error", (err) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      reject(err);
    });
    child.once("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (opts.onLine) {
        outLines.end();
        errLines.end();
      }
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
