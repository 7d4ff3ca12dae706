/**
 * Ollama's store: `<root>/manifests/<registry>/<namespace>/<model>/<tag>` (JSON manifests, one per tag) naming
 * content-addressed layers in `<root>/blobs/sha256-<hex>`. The layer of media type
 * `application/vnd.ollama.image.model` is the GGUF; `…image.projector` is the multimodal projector (--mmproj);
 * `…image.params` (JSON) and `…image.template` / `…image.system` (text) are read and shown, never forced on the
 * launch (llama-server uses the GGUF's own chat template). Names are Ollama's short ones: `qwen3:8b`,
 * `user/model:tag`, `hf.co/org/repo:Q4_K_M`; the `latest` tag is left off (`qwen3`), as Ollama's clients may send
 * either. Read-only: nothing here writes, moves or deletes.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isDir, isFile, list } from "./fs-read.js";
import type { StoreModel, StoreScan } from "./types.js";

export const OLLAMA_MEDIA = {
  model: "application/vnd.ollama.image.model",
  projector: "application/vnd.ollama.image.projector",
  params: "application/vnd.ollama.image.params",
  template: "application/vnd.ollama.image.template",
  system: "application/vnd.ollama.image.system",
  adapter: "application/vnd.ollama.image.adapter",
} as const;

const DIGEST_RE = /^sha256[:-]([0-9a-f]{64})$/;
const DEFAULT_REGISTRY = "registry.ollama.ai";

/** What one manifest names (digests as `sha256:<hex>`). */
export interface OllamaManifest {
  model: string;
  projector?: string;
  params?: string;
  template?: string;
  system?: string;
  /** LoRA adapters the model applies in Ollama (gglib runs the base model without them). */
  adapters: number;
}

/** A manifest's text → its layers, or why it cannot be used. Pure. */
export function parseOllamaManifest(
  text: string,
): { ok: true; manifest: OllamaManifest } | { ok: false; reason: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `not JSON (${(e as Error).message})` };
  }
  const layers = raw && typeof raw === "object" ? (raw as { layers?: unknown }).layers : undefined;
  if (!Array.isArray(layers)) return { ok: false, reason: "no layers list" };
  const found: Partial<Record<keyof typeof OLLAMA_MEDIA, string>> = {};
  let adapters = 0;
  for (const l of layers as unknown[]) {
    if (!l || typeof l !== "object") continue;
    const { mediaType, digest } = l as { mediaType?: unknown; digest?: unknown };
    if (typeof mediaType !== "string" || typeof digest !== "string") continue;
    if (!DIGEST_RE.test(digest)) return { ok: false, reason: `layer ${mediaType} has a malformed digest "${digest}"` };
    if (mediaType === OLLAMA_MEDIA.adapter) adapters++;
    for (const [k, mt] of Object.entries(OLLAMA_MEDIA) as [keyof typeof OLLAMA_MEDIA, string][])
      if (mediaType === mt && found[k] === undefined) found[k] = digest;
  }
  if (!found.model) return { ok: false, reason: `no ${OLLAMA_MEDIA.model} layer (not a GGUF model)` };
  const m: OllamaManifest = { model: found.model, adapters };
  if (found.projector) m.projector = found.projector;
  if (found.params) m.params = found.params;
  if (found.template) m.template = found.template;
  if (found.system) m.system = found.system;
  return { ok: true, manifest: m };
}

/** `sha256:<hex>` → `<root>/blobs/sha256-<hex>`. */
export function ollamaBlobPath(root: string, digest: string): string {
  const m = DIGEST_RE.exec(digest);
  return join(root, "blobs", `sha256-${m ? m[1] : digest}`);
}

/** The short name Ollama shows for a manifest's place: `qwen3:8b`, `user/m:tag`, `hf.co/org/repo:Q4_K_M`. */
export function ollamaModelName(registry: string, namespace: string, model: string, tag: string): string {
  const base =
    registry === DEFAULT_REGISTRY
      ? namespace === "library"
        ? model
        : `${namespace}/${model}`
      : `${registry}/${namespace}/${model}`;
  return tag === "latest" ? base : `${base}:${tag}`;
}

/** Scans one Ollama models folder. A missing folder is an empty store; a broken manifest is a warning. */
export function scanOllama(root: string): StoreScan {
  const manifests = join(root, "manifests");
  const out: StoreScan = { models: [], watch: [], warnings: [] };
  if (!isDir(manifests)) return out;
  out.watch.push(manifests);
  for (const registry of list(manifests).dirs)
    for (const namespace of list(join(manifests, registry)).dirs)
      for (const model of list(join(manifests, registry, namespace)).dirs)
        for (const tag of list(join(manifests, registry, namespace, model)).files) {
          const file = join(manifests, registry, namespace, model, tag);
          const name = ollamaModelName(registry, namespace, model, tag);
          const m = modelOf(root, file, name, out.warnings);
          if (m) out.models.push(m);
        }
  return out;
}

function modelOf(root: string, file: string, name: string, warnings: string[]): StoreModel | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    warnings.push(`ollama: cannot read the manifest of ${name} (${file}): ${(e as Error).message}; skipped`);
    return undefined;
  }
  const parsed = parseOllamaManifest(text);
  if (!parsed.ok) {
    warnings.push(`ollama: the manifest of ${name} (${file}) is unusable: ${parsed.reason}; skipped`);
    return undefined;
  }
  const mf = parsed.manifest;
  const path = ollamaBlobPath(root, mf.model);
  if (!isFile(path)) {
    warnings.push(`ollama: ${name}'s model blob ${path} is missing (an interrupted pull or a prune?); skipped`);
    return undefined;
  }
  const model: StoreModel = {
    name,
    aliases: [],
    path,
    shards: [path],
    store: "ollama",
    info: { root, ref: file },
  };
  if (mf.projector) {
    const p = ollamaBlobPath(root, mf.projector);
    if (isFile(p)) model.mmproj = p;
    else warnings.push(`ollama: ${name}'s projector blob ${p} is missing; the model is served without vision`);
  }
  if (mf.params) {
    const t = readSmall(ollamaBlobPath(root, mf.params));
    try {
      const v = t !== undefined ? (JSON.parse(t) as unknown) : undefined;
      if (v && typeof v === "object" && !Array.isArray(v)) model.info.params = v as Record<string, unknown>;
    } catch {
      warnings.push(`ollama: ${name}'s params layer is not JSON; not shown`);
    }
  }
  if (mf.template) {
    const t = readSmall(ollamaBlobPath(root, mf.template));
    if (t !== undefined) model.info.template = t;
  }
  if (mf.system) {
    const t = readSmall(ollamaBlobPath(root, mf.system));
    if (t !== undefined) model.info.system = t;
  }
  if (mf.adapters > 0)
    warnings.push(`ollama: ${name} applies ${mf.adapters} LoRA adapter(s) in Ollama; gglib serves the base model`);
  return model;
}

/** Text layers by path: blobs are content-addressed, so a blob's text never changes (a rescan reads none again). */
const textLayers = new Map<string, string | undefined>();

/** Text layers are small (a template, a few params); anything past 1 MiB is not read. */
function readSmall(path: string): string | undefined {
  if (textLayers.has(path)) return textLayers.get(path);
  let text: string | undefined;
  try {
    if (statSync(path).size <= 1024 * 1024) text = readFileSync(path, "utf8");
  } catch {
    return undefined; // missing now, maybe there later: not remembered
  }
  if (textLayers.size > 4096) textLayers.clear();
  textLayers.set(path, text);
  return text;
}
