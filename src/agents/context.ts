/**
 * The context an agent's model runs with (pure). The agent needs at least its floor (AgentInfo.floorTokens, or
 * more with --ctx); the model gives at most its trained context and what fits the memory budget. The model keeps
 * the context it is configured with when that is enough; otherwise it is loaded with the floor (or --ctx); when
 * even that is more than the model can hold, the launch is refused with the numbers.
 */

export interface ContextFacts {
  /** The agent's least context, tokens. */
  floor: number;
  /** --ctx: the context asked for (at least the floor). */
  requested?: number | undefined;
  /** The context the model is configured to run with (config, registry), when known. */
  configured?: number | undefined;
  /** The context the model was trained on (GGUF), when known. */
  trained?: number | undefined;
  /** The largest context that fits the memory budget, when known (undefined: no budget or no estimate). */
  fits?: number | undefined;
}

export type ContextPlan =
  | {
      ok: true;
      /** The context the agent is told about and the model runs with. */
      ctx: number;
      /** The model must be (re)loaded with `ctx`: its configured context is smaller (or unknown). */
      load: boolean;
      /** The most the model could hold (min of trained and fits), when known. */
      cap?: number;
    }
  | { ok: false; reason: "below_floor" | "too_small"; message: string; cap?: number };

export function planContext(f: ContextFacts): ContextPlan {
  const caps = [f.trained, f.fits].filter((n): n is number => n !== undefined && n > 0);
  const cap = caps.length > 0 ? Math.min(...caps) : undefined;
  const capPart = cap !== undefined ? { cap } : {};
  if (f.requested !== undefined && f.requested < f.floor) {
    return {
      ok: false,
      reason: "below_floor",
      message: `--ctx ${f.requested} is below the ${f.floor} tokens this agent needs (its system prompt and tools alone take a large share).`,
      ...capPart,
    };
  }
  const want = f.requested ?? f.floor;
  // what the model is configured with is kept when it is enough (and is what --ctx asks for, when given)
  if (f.configured !== undefined && (f.requested === undefined ? f.configured >= f.floor : f.configured === want)) {
    return { ok: true, ctx: f.configured, load: false, ...capPart };
  }
  if (cap !== undefined && cap < want) {
    const why = [
      f.trained !== undefined ? `trained on ${f.trained} tokens` : "",
      f.fits !== undefined ? `the memory budget holds at most ${f.fits} tokens of context` : "",
    ]
      .filter(Boolean)
      .join(", ");
    return {
      ok: false,
      reason: "too_small",
      message: `the model cannot hold ${want} tokens (${why}); the agent needs at least ${f.floor}.`,
      ...capPart,
    };
  }
  return { ok: true, ctx: want, load: true, ...capPart };
}

/**
 * The largest context in [lo, hi] (a multiple of `step`) whose memory need fits `budget` bytes, by bisection on
 * `bytesAt` (which grows with the context); undefined when even `lo` does not fit.
 */
export function largestFitting(
  bytesAt: (ctx: number) => number,
  budget: number,
  lo: number,
  hi: number,
  step = 256,
): number | undefined {
  if (bytesAt(lo) > budget) return undefined;
  if (bytesAt(hi) <= budget) return hi;
  let a = Math.ceil(lo / step);
  let b = Math.floor(hi / step);
  while (a < b) {
    const mid = Math.ceil((a + b) / 2);
    if (bytesAt(mid * step) <= budget) a = mid;
    else b = mid - 1;
  }
  return Math.max(lo, a * step);
}
