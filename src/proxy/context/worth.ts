/**
 * Whether a slot is worth saving before a stop (pure): its state is kept only when restoring it would cost less
 * than computing it again. A short conversation on a fast model is prefilled again in less time than the save
 * (before the stop) and the restore (after the next load) take, and both of those lie on a swap's path.
 *
 *   recompute ≈ tokens ÷ the model's measured prompt speed (llama-server's timings.prompt_per_second)
 *   keep      ≈ 2 × (the fixed cost of one slot action + tokens × its time per token), both measured on this
 *               model's saves and restores (small ones give the fixed cost, large ones the time per token)
 *
 * With no measured prompt speed the slot is always kept: a model never timed may be slow to prefill (seconds for a
 * few hundred tokens on a CPU), and a needless save costs milliseconds.
 */

/** What one save or restore of a slot costs whatever its size, until measured: a request and a file (ms). */
export const SLOT_ACTION_FIXED_MS = 2;

/** Actions on fewer tokens than this measure the fixed cost; on more, the time per token. */
export const SLOT_TIMING_TOKENS = 64;

export interface SlotCosts {
  /** The model's prompt processing speed, tokens/s (a running estimate from its requests). */
  promptTokensPerS?: number | undefined;
  /** The fixed cost of one save or restore, ms (a running estimate; default SLOT_ACTION_FIXED_MS). */
  actionFixedMs?: number | undefined;
  /** Time per token of a save or restore beyond the fixed cost, ms (a running estimate; default 0). */
  actionMsPerToken?: number | undefined;
}

export interface SlotVerdict {
  keep: boolean;
  /** Estimated time to prefill the slot's tokens again, ms (undefined: speed unknown). */
  recomputeMs?: number;
  /** Estimated time to save it now and restore it on the next load, ms. */
  keepMs: number;
}

export function slotWorthKeeping(tokens: number, costs: SlotCosts): SlotVerdict {
  const perToken = costs.actionMsPerToken !== undefined && costs.actionMsPerToken > 0 ? costs.actionMsPerToken : 0;
  const fixed =
    costs.actionFixedMs !== undefined && costs.actionFixedMs >= 0 ? costs.actionFixedMs : SLOT_ACTION_FIXED_MS;
  const keepMs = 2 * (fixed + tokens * perToken);
  const speed = costs.promptTokensPerS;
  if (speed === undefined || !(speed > 0) || !Number.isFinite(speed)) return { keep: true, keepMs };
  const recomputeMs = (tokens / speed) * 1000;
  return { keep: recomputeMs > keepMs, recomputeMs, keepMs };
}

/** A running estimate: the new sample weighs `weight` (first sample taken as it is). */
export function runningEstimate(previous: number | undefined, sample: number, weight = 0.3): number {
  return previous === undefined ? sample : previous + weight * (sample - previous);
}

/** The costs after one more timed save or restore of `tokens` tokens that took `ms`. */
export function timedAction(costs: SlotCosts, tokens: number, ms: number): SlotCosts {
  if (!(ms >= 0) || !(tokens >= 0)) return costs;
  if (tokens < SLOT_TIMING_TOKENS) return { ...costs, actionFixedMs: runningEstimate(costs.actionFixedMs, ms) };
  const fixed = costs.actionFixedMs ?? SLOT_ACTION_FIXED_MS;
  return { ...costs, actionMsPerToken: runningEstimate(costs.actionMsPerToken, Math.max(0, ms - fixed) / tokens) };
}
