import { signalGroup } from "./signals.js";

/**
 * Ends a llama-server process group, in steps:
 *  1. ask: the child protocol's exit command when it is listening, otherwise SIGTERM to the group;
 *  2. if llama-server has begun its shutdown but waits for open streams (it does: fixtures 07f), a second SIGTERM,
 *     its own "terminate immediately" path, after `secondSignalMs`;
 *  3. SIGKILL to the group when `graceMs` has passed;
 *  4. wait at most `reapMs` more for the exit; past that, report failure (a process stuck in the kernel).
 * Never waits forever. The caller supplies how to observe the process; no timers leak after it resolves.
 */
export interface StopTarget {
  pid: number;
  /** Resolves when the process has exited (already-resolved when it has). */
  exited: Promise<unknown>;
  hasExited(): boolean;
  /** Writes the child-protocol exit command; false when not possible (not ready, stdin closed). */
  requestExit?(): boolean;
  /** True once llama-server logged that it is shutting down. */
  shutdownStarted?(): boolean;
}

export interface StopPlan {
  graceMs: number;
  secondSignalMs?: number;
  reapMs?: number;
}

export type StopOutcome = "already-exited" | "graceful" | "second-signal" | "killed" | "stuck";

export async function gracefulStop(target: StopTarget, plan: StopPlan): Promise<StopOutcome> {
  if (target.hasExited()) return "already-exited";
  const secondMs = plan.secondSignalMs ?? 500;
  const reapMs = plan.reapMs ?? 2000;
  const timers: NodeJS.Timeout[] = [];
  let outcome: StopOutcome = "graceful";
  const exited = target.exited.then(() => true);
  try {
    const asked = target.requestExit?.() ?? false;
    if (!asked) signalGroup(target.pid, "SIGTERM");

    const wait = (ms: number) =>
      new Promise<false>((r) => {
        timers.push(setTimeout(() => r(false), ms));
      });

    // step 2: until the grace period ends, check every `secondMs`; when llama-server took the request (it logged
    // its shutdown, or we used the exit command) but is still alive, it is waiting for open streams: SIGTERM again
    // (at most two SIGTERMs in all; the second one is llama-server's "terminate immediately").
    const graceEnd = Date.now() + plan.graceMs;
    let sigterms = asked ? 0 : 1;
    while (Date.now() < graceEnd) {
      const slice = Math.min(secondMs, Math.max(1, graceEnd - Date.now()));
      if (await Promise.race([exited, wait(slice)])) return outcome;
      if (sigterms < 2 && (asked || target.shutdownStarted?.())) {
        signalGroup(target.pid, "SIGTERM");
        sigterms++;
        outcome = "second-signal";
      }
    }
    if (target.hasExited()) return outcome;
    signalGroup(target.pid, "SIGKILL");
    outcome = "killed";
    if (await Promise.race([exited, wait(reapMs)])) return outcome;
    return "stuck";
  } finally {
    for (const t of timers) clearTimeout(t);
  }
}
