/**
 * Whether a restore was reused, judged from llama-server's own `timings.cache_n` of the first requests after it.
 * Pure.
 */

export type ReuseVerdict =
  /** The prompt reused cached tokens. */
  | { kind: "reused"; tokens: number }
  /** A prompt at least as long as the restored cache reused nothing: the restore does not work for this model. */
  | { kind: "missed"; promptTokens: number }
  /** Too little to judge (no timings, or a short prompt of another conversation). */
  | { kind: "unknown" };

export function judgeReuse(restoredTokens: number, cacheN: number | undefined, promptTokens: number | undefined) {
  if (cacheN === undefined) return { kind: "unknown" } satisfies ReuseVerdict;
  if (cacheN > 0) return { kind: "reused", tokens: cacheN } satisfies ReuseVerdict;
  if (promptTokens !== undefined && restoredTokens > 0 && promptTokens >= restoredTokens)
    return { kind: "missed", promptTokens } satisfies ReuseVerdict;
  return { kind: "unknown" } satisfies ReuseVerdict;
}
