/**
 * llama.cpp's cache (locations.ts llamaCacheDir). Recent llama.cpp writes `-hf` downloads there in the hub cache
 * layout (`models--org--repo/…`, read by hf-cache.ts); older builds and `-mu` downloads left flat files
 * (`<org>_<repo>_<file>.gguf`), named here by their file stem (shard sets grouped, projectors never models).
 * Read-only.
 */
import { join } from "node:path";
import { groupGgufPaths } from "../../gguf/names.js";
import { isDir, list } from "./fs-read.js";
import { scanHfCache } from "./hf-cache.js";
import type { StoreScan } from "./types.js";

export function scanLlamaCache(root: string): StoreScan {
  const out = scanHfCache(root, "llama-cache");
  if (!isDir(root)) return out;
  const l = list(root);
  const g = groupGgufPaths(l.files, (f) => f);
  for (const s of g.incomplete)
    out.warnings.push(`llama-cache: ${join(root, s.stem)}: only ${s.present} of ${s.count} shards present; skipped`);
  for (const m of g.models) {
    const shards = m.files.map((f) => join(root, f));
    out.models.push({
      name: m.stem,
      aliases: [],
      path: shards[0]!,
      shards,
      store: "llama-cache",
      info: { root, ref: m.files[0]! },
    });
  }
  return out;
}
