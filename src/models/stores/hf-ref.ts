/**
 * `path: hf:<org>/<repo>[:<quant or file>]` in the config file: a model of the Hugging Face cache (or of llama.cpp's
 * cache, which has the same layout) named by its repo, served in place with the entry's own settings. The tag is
 * a quantization label (any case: `q4_k_m`), a file stem or a file path in the repo; without one, the repo's only
 * model. A repo not in the cache is a warning that says how to fetch it; the proxy fetches it on first use
 * (src/proxy/hf-fetch.ts, through gglib pull's downloader into the cache layout).
 */
import { basename } from "node:path";
import { scanHfRepo } from "./hf-cache.js";
import type { StoreModel } from "./types.js";

const HF_REF = /^hf:(?:\/\/)?(?:hf\.co\/|huggingface\.co\/)?([A-Za-z0-9][\w.-]*\/[\w.-]+)(?::(.+))?$/;

export function isHfRef(path: string): boolean {
  return path.startsWith("hf:");
}

/** `hf:org/repo:Q4_K_M` → its repo and tag. Pure. */
export function parseHfRef(ref: string): { repo: string; tag?: string } | undefined {
  const m = HF_REF.exec(ref.trim());
  if (!m) return undefined;
  return m[2] ? { repo: m[1]!, tag: m[2] } : { repo: m[1]! };
}

/** The model a `hf:` reference names among the caches' folders (the first that has the repo), or why none. */
export function resolveHfRef(
  ref: string,
  roots: readonly string[],
): { ok: true; model: StoreModel } | { ok: false; reason: string } {
  const r = parseHfRef(ref);
  if (!r) return { ok: false, reason: `"${ref}" is not hf:<org>/<repo>[:<quant or file>]` };
  const fetch = `gglib proxy fetches it into the cache on first use, or run \`gglib pull --hf-cache ${r.repo}${r.tag ? `:${r.tag}` : ""}\``;
  if (roots.length === 0)
    return { ok: false, reason: `${ref}: the Hugging Face cache is not read (stores: hfCache is off)` };
  for (const root of roots) {
    const models = scanHfRepo(root, r.repo).models;
    if (models.length === 0) continue;
    if (r.tag === undefined) {
      if (models.length === 1) return { ok: true, model: models[0]! };
      return {
        ok: false,
        reason: `${ref}: ${r.repo} holds ${models.length} models in ${root}; name one: ${models.map((m) => `hf:${m.name}`).join(", ")}`,
      };
    }
    const tag = r.tag.toLowerCase().replace(/\.gguf$/, "");
    const hit = models.find(
      (m) =>
        m.name.toLowerCase() === `${r.repo}:${tag}`.toLowerCase() ||
        basename(m.path)
          .toLowerCase()
          .replace(/\.gguf$/, "") === basename(tag) ||
        m.path
          .toLowerCase()
          .replace(/\.gguf$/, "")
          .endsWith(`/${tag}`),
    );
    if (hit) return { ok: true, model: hit };
    return {
      ok: false,
      reason: `${ref}: ${r.repo} in ${root} has no "${r.tag}" (it has ${models.map((m) => m.name.slice(r.repo.length + 1)).join(", ")}); ${fetch}`,
    };
  }
  return { ok: false, reason: `${ref}: ${r.repo} is not in the Hugging Face cache (${roots.join(", ")}); ${fetch}` };
}
