/**
 * Presets on the request path (the definitions and the pure rewrite are src/models/presets.ts): finding the preset
 * a request names, and the body it is forwarded with. Only a request whose model is not a catalog name reaches
 * here, so other requests pay nothing.
 */
import { applyPreset, promptShapeOf, type Preset } from "../models/presets.js";
import { findModel } from "../models/sources.js";
import type { ProxyModel } from "./catalog.js";

/** The preset `requested` names (exact, case-insensitive, or with Ollama's `:latest`), if any. */
export function findPreset(models: readonly Pick<ProxyModel, "presets">[], requested: string): Preset | undefined {
  const all: { name: string; aliases: readonly string[]; preset: Preset }[] = [];
  for (const m of models) for (const preset of m.presets ?? []) all.push({ name: preset.name, aliases: [], preset });
  return all.length > 0 ? findModel(all, requested)?.preset : undefined;
}

/** Every preset of the catalog, each with its model. */
export function presetsOf(models: readonly ProxyModel[]): { preset: Preset; model: ProxyModel }[] {
  return models.flatMap((model) => (model.presets ?? []).map((preset) => ({ preset, model })));
}

/** A JSON request for `preset`: the rewritten body and its bytes (the client path chooses where a system prompt goes). */
export function presetRequest(
  json: Record<string, unknown>,
  preset: Preset,
  clientPath: string,
): { json: Record<string, unknown>; body: Buffer } {
  const out = applyPreset(json, preset, preset.model, promptShapeOf(clientPath));
  return { json: out, body: Buffer.from(JSON.stringify(out)) };
}
