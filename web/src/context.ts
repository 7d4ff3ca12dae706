/** What a model card says about the model's saved KV context (`models[].context` of /api/status); pure. */
import { bytes, ms } from "./format.js";
import type { ContextStatus, ModelStatusReport } from "../../src/proxy/api-types.js";

const count = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;

/** The facts to show, in order: what is saved now, then the last save, restore and discard. */
export function contextFacts(c: ContextStatus): string[] {
  if (!c.enabled) return [c.reason ? `off: ${c.reason}` : "off"];
  const facts = [
    c.savedSlots > 0
      ? `${count(c.savedSlots, "slot")}, ${count(c.savedTokens, "token")}, ${bytes(c.bytesOnDisk)} on disk`
      : "nothing saved",
  ];
  const s = c.lastSave;
  if (s) {
    if (s.cheap) facts.push("last stop: nothing worth saving");
    else {
      let f = `last save: ${count(s.tokens, "token")} in ${ms(s.ms)}`;
      if (s.skipped) f += `, ${count(s.skipped, "slot")} not worth saving`;
      if (s.failures) f += `, ${count(s.failures, "failure")}`;
      facts.push(f);
    }
  }
  const r = c.lastRestore;
  if (r) {
    let f = `last restore: ${count(r.tokens, "token")} in ${ms(r.ms)}`;
    if (r.checkpoints) f += ` with ${count(r.checkpoints, "checkpoint")}`;
    if (r.reusedTokens !== undefined) f += `, ${r.reusedTokens.toLocaleString("en")} reused`;
    facts.push(f);
  }
  if (c.lastDiscard) facts.push(`discarded: ${c.lastDiscard.reason}`);
  return facts;
}

/**
 * What a sliding-window model's card says about `--swa-full` (`models[].swaFull`): on or off, what it costs (the
 * extra KV and compute memory, paid only when on) and why (src/models/swa-full.ts).
 */
export function swaFullFact(s: NonNullable<ModelStatusReport["swaFull"]>): string {
  const cost = s.on ? `+${bytes(s.extraBytes)}` : `would cost +${bytes(s.extraBytes)}`;
  return `${s.on ? "on" : "off"} (${cost}): ${s.reason}`;
}

/**
 * What a model card says about the architecture (`models[].arch`): its name and what its layers keep, in one line,
 * e.g. "gemma3 · 6 layers: 5 sliding-window (window 128) + 1 global" or "bert · encoder (no KV cache): a reranker".
 */
export function archLine(a: NonNullable<ModelStatusReport["arch"]>): string {
  const parts = [a.name];
  const n = a.layers;
  if (a.encoder) parts.push(`encoder (no KV cache): ${a.encoder === "rerank" ? "a reranker" : "embeddings"}`);
  else if (n !== undefined && a.recurrent !== undefined && a.recurrent >= n)
    parts.push(`recurrent: ${n} layers, a fixed-size state (no KV cache)`);
  else if (n !== undefined && a.recurrent !== undefined)
    parts.push(
      `hybrid: ${a.recurrent} recurrent layers (fixed-size state) + ${n - a.recurrent} attention layers (KV cache)`,
    );
  else if (n !== undefined && a.swa)
    parts.push(`${n} layers: ${a.swa.layers} sliding-window (window ${a.swa.window}) + ${n - a.swa.layers} global`);
  else if (n !== undefined) parts.push(`${n} layers`);
  return parts.join(" · ");
}
