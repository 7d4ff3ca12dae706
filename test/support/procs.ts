/** Process helpers for tests: liveness, waiting, and finding llama-servers started from a given binary. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { pidAlive, signalGroup } from "../../src/process/terminate/signals.js";

/** Liveness by `kill(pid, 0)` (the library's own check). */
export const alive = pidAlive;

/** Zombies count as dead. */
export function running(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  stepMs = 25,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** pids of live processes whose command line mentions `needle` (e.g. a temp folder of the test). */
export function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (cmd.includes(needle) && running(Number(d))) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Kill by SIGKILL, ignoring errors (test cleanup). */
export function killQuietly(pid: number | undefined, group = true): void {
  if (!pid) return;
  if (group) signalGroup(pid, "SIGKILL");
  else {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}
