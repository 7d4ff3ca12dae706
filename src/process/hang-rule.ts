/**
 * When is a llama-server hung? Pure: the health monitor feeds it each probe's outcome with a progress counter read
 * at the same time, and acts on the verdict.
 *
 * A busy server is not a hung one. Under a burst, llama-server's HTTP threads are all serving requests and a fresh
 * `/health` may wait seconds for one (measured: 7 s behind 150 kept-alive clients), while every slot generates
 * tokens. So one failed probe proves nothing. A server is hung only when
 *  - `probes` probes in a row failed (no answer in time, or an error answer), each on a connection of its own, and
 *  - nothing progressed in between: the counter (bytes the proxy received from it on its open requests) did not
 *    move since the last probe. Any progress is proof of life and starts the count again.
 */

/** What the rule remembers between probes. */
export interface HangState {
  /** Failed probes in a row with no progress between them. */
  readonly failures: number;
  /** The progress counter at the last probe. */
  readonly progress: number;
}

/** One probe: did `/health` answer 200 in time, and the progress counter read when it ended. */
export interface HangProbe {
  readonly answered: boolean;
  readonly progress: number;
}

/**
 * healthy: the probe answered. busy: it failed, but the server made progress since the last probe. suspect: it
 * failed with no progress, not yet `probes` times in a row. hung: `probes` failures in a row without progress.
 */
export type HangVerdict = "healthy" | "busy" | "suspect" | "hung";

/** Failed probes in a row, with no progress in between, that declare a hang. */
export const HANG_PROBES = 3;

export function initialHangState(progress = 0): HangState {
  return { failures: 0, progress };
}

export function judgeHang(
  prev: HangState,
  probe: HangProbe,
  probes: number = HANG_PROBES,
): { state: HangState; verdict: HangVerdict } {
  const progressed = probe.progress !== prev.progress;
  if (probe.answered) return { state: { failures: 0, progress: probe.progress }, verdict: "healthy" };
  if (progressed) return { state: { failures: 0, progress: probe.progress }, verdict: "busy" };
  const failures = prev.failures + 1;
  return {
    state: { failures, progress: probe.progress },
    verdict: failures >= Math.max(1, probes) ? "hung" : "suspect",
  };
}
