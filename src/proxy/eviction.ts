/**
 * The eviction policy: given the models that hold room and one that wants to load, decide whether it fits now,
 * which resident models to stop for it, or that it cannot fit. Pure: no state of its own, no clock, no actions;
 * the scheduler (scheduler.ts) applies the plan.
 *
 * Rules:
 * - room = at most `maxModels` models and at most `budgetBytes` of memory; a model larger than the whole budget
 *   may still run when nothing else holds room;
 * - models already on their way out (draining, stopping) will free their room: they are not chosen again;
 * - victims are ready, unpinned models: idle ones first, then the least recently used; busy ones are drained by
 *   the scheduler, never cut;
 * - when even every possible victim gone would not make room, nothing is evicted;
 * - an RPC worker (llama.cpp's rpc-server) serves one llama-server at a time: models that share a worker never
 *   hold room together, so loading one evicts (or waits for) the other like a lack of memory would.
 */

/** What the policy reads of a model (the scheduler's ModelState fits it). */
export interface Occupant {
  readonly spec: {
    readonly name: string;
    readonly pinned?: boolean | undefined;
    /** RPC workers (`host:port`) its process holds. */
    readonly rpc?: readonly string[] | undefined;
  };
  readonly status: string;
  readonly inFlight: number;
  readonly lastUsed: number;
}

export interface RoomLimits {
  readonly maxModels: number;
  readonly budgetBytes: number;
}

/** Memory a model counts for (measured when known, else its estimate). */
export type NeedOf<T extends Occupant> = (m: T) => number;

export type RoomPlan<T extends Occupant> =
  /** It fits beside everything that holds room now. */
  | { readonly kind: "start" }
  /** It fits once `victims` (possibly none: models already freeing their room) are gone. */
  | { readonly kind: "evict"; readonly victims: readonly T[] }
  /** It does not fit even with every evictable model gone (pinned, loading or stuck models hold the room). */
  | { readonly kind: "noRoom" };

/** Whether `set` (which includes `target`) fits the limits. */
export function fits<T extends Occupant>(set: readonly T[], target: T, limits: RoomLimits, need: NeedOf<T>): boolean {
  if (set.length > limits.maxModels) return false;
  if (sharesWorker(set)) return false;
  let bytes = 0;
  for (const o of set) bytes += need(o);
  if (bytes <= limits.budgetBytes) return true;
  // A model bigger than the budget may still run alone.
  return set.length === 1 && set[0] === target;
}

/** Two models of the set use the same RPC worker. */
function sharesWorker(set: readonly Occupant[]): boolean {
  const seen = new Set<string>();
  for (const o of set)
    for (const w of o.spec.rpc ?? []) {
      if (seen.has(w)) return true;
      seen.add(w);
    }
  return false;
}

/** Models already on their way out: their room is being freed. */
export function isFreeing(o: Occupant): boolean {
  return o.status === "stopping" || o.status === "draining";
}

/** Idle before busy, then least recently used first. */
function evictionOrder(a: Occupant, b: Occupant): number {
  return (a.inFlight === 0 ? 0 : 1) - (b.inFlight === 0 ? 0 : 1) || a.lastUsed - b.lastUsed;
}

/** The plan for `target` given the other models that hold room (`holding`, target excluded). */
export function planRoom<T extends Occupant>(
  target: T,
  holding: readonly T[],
  limits: RoomLimits,
  need: NeedOf<T>,
): RoomPlan<T> {
  if (fits([...holding, target], target, limits, need)) return { kind: "start" };
  let stay = holding.filter((o) => !isFreeing(o));
  if (fits([...stay, target], target, limits, need)) return { kind: "evict", victims: [] };
  const candidates = stay.filter((o) => o.status === "ready" && !o.spec.pinned).sort(evictionOrder);
  const victims: T[] = [];
  for (const c of candidates) {
    if (fits([...stay, target], target, limits, need)) break;
    victims.push(c);
    stay = stay.filter((o) => o !== c);
  }
  if (!fits([...stay, target], target, limits, need)) return { kind: "noRoom" };
  return { kind: "evict", victims };
}
