/**
 * Ollama's model names (`[namespace/]model[:tag]`, tag `latest` by default) → gglib's model names.
 *
 * Listing: every model is listed under its gglib name plus `:latest` (a name that already has a `:tag` is listed
 * as is). Resolving a requested name, first match wins:
 *   1. a leading `hf.co/` or `huggingface.co/` is dropped (Ollama's way of naming Hugging Face repos);
 *   2. the whole name as a gglib name or alias (exact, then case-insensitive): `llama3:8b` in the config is itself;
 *   3. `model` or `model:latest` → the gglib model `model`;
 *   4. `model:tag` → the gglib model `model-tag`, `model.tag` or `model_tag` (case-insensitive), so
 *      `qwen3-4b:q4_k_m` finds `Qwen3-4B-Q4_K_M.gguf`;
 *   5. `model:tag` → among the models of the group `model` (the files in a folder, or a folder's subfolders, whose
 *      path ends with `model`, e.g. `unsloth/Qwen3-4B-GGUF` as `gglib pull` lays it out, or whose name starts with
 *      `model-`), the one whose quantization (from the
 *      GGUF, else the file name) or file name is `tag`: `unsloth/Qwen3-4B-GGUF:Q8_0`; `:latest` picks the group's
 *      only model.
 * No match, or several: an error that lists the names that would work.
 */
import { basename, dirname, sep } from "node:path";
import { quantOf } from "../gguf/names.js";
import { findModel } from "../models/sources.js";

export interface NamedModel {
  name: string;
  aliases: readonly string[];
  /** First file of the model. */
  path: string;
  /** "Q4_K_M" (from the GGUF), when known. */
  quantization?: string;
}

export type NameResolution =
  { ok: true; name: string } | { ok: false; reason: "not_found" | "ambiguous"; candidates: string[] };

/** The name a model is listed under in /api/tags and /api/ps. */
export function ollamaListName(name: string): string {
  return /:[^/:]+$/.test(name) ? name : `${name}:latest`;
}

function exact(models: readonly NamedModel[], s: string): string | undefined {
  return findModel(models, s)?.name;
}

/** Whether a model belongs to the group `base` (its folder path ends with base, or its name starts with base-). */
function inGroup(m: NamedModel, base: string): boolean {
  const b = base.toLowerCase().replace(/\/+$/, "");
  // the model's folder, or its parent (gglib pull puts files in <models>/<user>/<repo>/<name>/)
  const folder = dirname(m.path).split(sep).join("/").toLowerCase();
  const parent = dirname(folder);
  if (folder === b || folder.endsWith(`/${b}`) || parent === b || parent.endsWith(`/${b}`)) return true;
  const n = m.name.toLowerCase();
  return n.startsWith(`${b}-`) || n.startsWith(`${b}.`) || n.startsWith(`${b}_`);
}

function tagMatches(m: NamedModel, tag: string): boolean {
  const t = tag.toLowerCase();
  const q = (m.quantization ?? quantOf(m.path))?.toLowerCase();
  if (q && (q === t || q === `ud-${t}`)) return true;
  const file = basename(m.path).toLowerCase();
  return file === t || file.replace(/\.gguf$/, "") === t;
}

export function resolveOllamaName(models: readonly NamedModel[], requested: string): NameResolution {
  const req = requested.trim().replace(/^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i, "");
  const whole = exact(models, req);
  if (whole) return { ok: true, name: whole };
  const colon = req.lastIndexOf(":");
  const hasTag = colon > 0 && !req.slice(colon + 1).includes("/");
  const base = hasTag ? req.slice(0, colon) : req;
  const tag = hasTag ? req.slice(colon + 1) : "latest";
  const isLatest = tag.toLowerCase() === "latest";
  if (isLatest) {
    const n = exact(models, base);
    if (n) return { ok: true, name: n };
  } else {
    for (const s of ["-", ".", "_"]) {
      const n = exact(models, `${base}${s}${tag}`);
      if (n) return { ok: true, name: n };
    }
  }
  const group = models.filter((m) => inGroup(m, base));
  const hits = isLatest ? group : group.filter((m) => tagMatches(m, tag));
  if (hits.length === 1) return { ok: true, name: hits[0]!.name };
  if (hits.length > 1) return { ok: false, reason: "ambiguous", candidates: hits.map((m) => groupName(m, base)) };
  return {
    ok: false,
    reason: "not_found",
    candidates: group.length > 0 ? group.map((m) => groupName(m, base)) : models.map((m) => ollamaListName(m.name)),
  };
}

/** `base:QUANT` for a model of a group (what to ask for instead). */
function groupName(m: NamedModel, base: string): string {
  const q = m.quantization ?? quantOf(m.path);
  return q ? `${base}:${q}` : ollamaListName(m.name);
}
