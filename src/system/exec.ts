import { readFile } from "node:fs/promises";
import { run } from "../process/exec.js";
import type { ReadTextFile, RunCommand } from "./types.js";

/** A hung `nvidia-smi` (driver trouble) must not stall the caller: tools get this long, then SIGKILL. */
export const DEFAULT_TOOL_TIMEOUT_MS = 4000;

/**
 * Runs a machine tool (no shell, `LC_ALL=C`, a short timeout) through the one process runner, `run`. Never
 * rejects: a missing tool comes back with `notFound`, a slow one with `timedOut`, a failing one with its exit
 * code and whatever it printed.
 */
export const runCommand: RunCommand = async (cmd, args, options = {}) => {
  const timeout = options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  const env = { ...process.env, ...options.env, LC_ALL: "C" };
  try {
    const r = await run(cmd, args, { env, timeoutMs: timeout, maxCapture: 8 * 1024 * 1024 });
    if (r.code === 0 && !r.timedOut)
      return { ok: true, stdout: r.stdout, stderr: r.stderr, exitCode: 0, notFound: false, timedOut: false };
    const error = r.timedOut
      ? `${cmd} did not answer within ${timeout} ms`
      : `${cmd} exited with ${r.code ?? r.signal ?? "?"}${r.stderr.trim() ? ": " + firstLine(r.stderr) : ""}`;
    return {
      ok: false,
      stdout: r.stdout,
      stderr: r.stderr,
      exitCode: r.code,
      notFound: false,
      timedOut: r.timedOut,
      error,
    };
  } catch (e) {
    // the spawn itself failed: no such executable, not executable, or invalid arguments
    const code = (e as NodeJS.ErrnoException).code;
    const notFound = code === "ENOENT" || code === "EACCES";
    return {
      ok: false,
      stdout: "",
      stderr: "",
      exitCode: null,
      notFound,
      timedOut: false,
      error: notFound ? `${cmd} is not installed` : String(e),
    };
  }
};

export const readTextFile: ReadTextFile = async (path) => {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
};

function firstLine(s: string): string {
  return s.trim().split(/\r?\n/, 1)[0] ?? "";
}
