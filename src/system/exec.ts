import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { CommandResult, ReadTextFile, RunCommand } from "./types.js";

/** A hung `nvidia-smi` (driver trouble) must not stall the caller: tools get this long, then SIGKILL. */
export const DEFAULT_TOOL_TIMEOUT_MS = 4000;

/**
 * Runs a tool with `execFile` (no shell) and a short timeout. Never rejects: a missing tool comes back with
 * `notFound`, a slow one with `timedOut`, a failing one with its exit code and whatever it printed.
 */
export const runCommand: RunCommand = (cmd, args, options = {}) => {
  const timeout = options.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  return new Promise<CommandResult>((resolve) => {
    try {
      execFile(
        cmd,
        [...args],
        {
          timeout,
          killSignal: "SIGKILL",
          maxBuffer: 8 * 1024 * 1024,
          windowsHide: true,
          encoding: "utf8",
          env: { ...process.env, LC_ALL: "C" },
        },
        (err, stdout, stderr) => {
          if (!err) {
            resolve({ ok: true, stdout, stderr, exitCode: 0, notFound: false, timedOut: false });
            return;
          }
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number; signal?: string | null };
          const notFound = e.code === "ENOENT" || e.code === "EACCES";
          const timedOut = Boolean(e.killed) && e.signal === "SIGKILL";
          const exitCode = typeof e.code === "number" ? e.code : null;
          const error = notFound
            ? `${cmd} is not installed`
            : timedOut
              ? `${cmd} did not answer within ${timeout} ms`
              : `${cmd} exited with ${exitCode ?? e.signal ?? String(e.code)}${stderr.trim() ? ": " + firstLine(stderr) : ""}`;
          resolve({ ok: false, stdout: stdout ?? "", stderr: stderr ?? "", exitCode, notFound, timedOut, error });
        },
      );
    } catch (e) {
      // execFile throws synchronously only for invalid arguments.
      resolve({
        ok: false,
        stdout: "",
        stderr: "",
        exitCode: null,
        notFound: false,
        timedOut: false,
        error: String(e),
      });
    }
  });
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
