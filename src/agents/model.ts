/**
 * Which model an agent gets (pure): the one named with --model (by the one name rule, findModel), else the first
 * model that can hold the agent's floor: one whose template takes tools (the agents work by tool calls) before one
 * that does not, then a loaded one before the others (no swap), in the proxy's order otherwise.
 * None: an error that lists each model with the context it can hold.
 */
import { findModel } from "../models/sources.js";

export interface ModelCandidate {
  name: string;
  aliases: readonly string[];
  /** Trained context, tokens (GGUF), when known. */
  trained?: number | undefined;
  /** Loaded (or loading) now. */
  loaded?: boolean;
  /** Its chat template takes tools (undefined: not known). */
  tools?: boolean | undefined;
}

export type ModelPick = { ok: true; name: string } | { ok: false; message: string };

export function pickModel(models: readonly ModelCandidate[], floor: number, requested?: string): ModelPick {
  if (models.length === 0) {
    return {
      ok: false,
      message:
        "the proxy has no models: put a GGUF in the models folder (or `gglib pull <user>/<repo>`, `gglib models add FILE`)",
    };
  }
  if (requested !== undefined) {
    const m = findModel(models, requested);
    return m
      ? { ok: true, name: m.name }
      : { ok: false, message: `no model '${requested}'; available: ${models.map((x) => x.name).join(", ")}` };
  }
  const holds = (m: ModelCandidate) => m.trained === undefined || m.trained >= floor;
  // known to hold the floor before unknown; with tools before without; loaded before not
  const tiers = [
    (m: ModelCandidate) => m.trained !== undefined && m.tools !== false,
    (m: ModelCandidate) => m.trained !== undefined,
    () => true,
  ];
  let best: ModelCandidate | undefined;
  for (const tier of tiers) {
    const group = models.filter((m) => holds(m) && tier(m));
    best = group.find((m) => m.loaded) ?? group[0];
    if (best) break;
  }
  if (best) return { ok: true, name: best.name };
  const list = models.map((m) => `${m.name} (${m.trained} tokens)`).join(", ");
  return {
    ok: false,
    message: `no model can hold the ${floor} tokens of context this agent needs: ${list}. Use a model trained on a longer context (--model NAME).`,
  };
}
