/**
 * What the context cache saves before a stop (pure): the decisions of `ContextCache.beforeStop`, which then only
 * carries them out (the requests, the files, the clock, the metrics). Two steps, because the first spares a request:
 *   - `skipWholeSave`: nothing at all is worth saving, known without asking the server;
 *   - `planSave`: per slot, save it, drop what was saved for it before, or leave it alone.
 * The worth of a slot is worth.ts's rule (restoring it must cost less than prefilling it again), judged on the costs
 * known when the stop begins.
 */
import type { SlotUsage } from "./client.js";
import type { Manifest } from "./store.js";
import { slotWorthKeeping, type SlotCosts } from "./worth.js";

export interface SkipInput {
  /** The user's `contextCache.saveAll`: save every slot that ran a task, worth it or not. */
  saveAll: boolean;
  /** The requests the process was given (undefined: not known). */
  served: number | undefined;
  /** The requests whose usage was seen, and the most tokens one of them held. */
  seen: { requests: number; maxTokens: number };
  /** What is saved for the model now, if anything. */
  saved: Manifest | undefined;
  /** The model's identity key now. */
  key: string;
  costs: SlotCosts;
}

/**
 * True when the stop saves nothing and need not even read the slots: the usage of every request was seen, none
 * held enough tokens to be worth saving, and nothing saved for this identity needs replacing or dropping.
 */
export function skipWholeSave(i: SkipInput): boolean {
  if (i.saveAll || i.served === undefined || i.seen.requests < i.served) return false;
  const nothingSaved = !i.saved || i.saved.key !== i.key || Object.keys(i.saved.slots).length === 0;
  return nothingSaved && !slotWorthKeeping(i.seen.maxTokens, i.costs).keep;
}

/**
 * One slot's step. save: write its state now. drop: it is not worth saving (prefilled again faster than saved and
 * restored), so what was saved for it before (if anything) describes it no more and goes.
 */
export interface SlotStep {
  id: number;
  action: "save" | "drop";
}

export interface PlanInput {
  /** How many slots the server has. */
  count: number;
  /** GET /slots: which slots ran a task, and how many tokens each holds; undefined without it (--no-slots). */
  usage: Pick<SlotUsage, "used" | "tokens"> | undefined;
  costs: SlotCosts;
  saveAll: boolean;
}

/**
 * The steps, by slot id. A slot that never ran a task in this process has none: it holds nothing new, and what
 * was saved for it before still describes it. Without usage every slot is saved (the save says what it held).
 */
export function planSave(p: PlanInput): SlotStep[] {
  const steps: SlotStep[] = [];
  for (let id = 0; id < p.count; id++) {
    if (p.usage && !p.usage.used.has(id)) continue;
    const held = p.usage?.tokens.get(id);
    if (!p.saveAll && held !== undefined && held > 0 && !slotWorthKeeping(held, p.costs).keep) {
      steps.push({ id, action: "drop" });
      continue;
    }
    steps.push({ id, action: "save" });
  }
  return steps;
}
