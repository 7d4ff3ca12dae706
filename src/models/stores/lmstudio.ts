/**
 * LM Studio's models folder: `<models>/<publisher>/<repo>/<file>.gguf` (LM Studio itself finds models exactly two
 * folders deep), with a repo's projector (`mmproj-*.gguf`) beside its models. Names: `publisher/repo:Q4_K_M`
 * (repo-names.ts). A dangling link is a warning. Read-only.
 */
import { join } from "node:path";
import { isDir, list } from "./fs-read.js";
import { nameRepoModels } from "./repo-names.js";
import type { StoreScan } from "./types.js";

export function scanLmStudio(root: string): StoreScan {
  const out: StoreScan = { models: [], watch: [], warnings: [] };
  if (!isDir(root)) return out;
  out.watch.push(root);
  for (const publisher of list(root).dirs) {
    for (const repoDir of list(join(root, publisher)).dirs) {
      const dir = join(root, publisher, repoDir);
      const l = list(dir);
      for (const d of l.dangling)
        if (/\.gguf$/i.test(d)) out.warnings.push(`lmstudio: ${join(dir, d)} is a dangling symlink; skipped`);
      const repo = `${publisher}/${repoDir}`;
      const named = nameRepoModels(repo, l.files);
      for (const w of named.incomplete) out.warnings.push(`lmstudio: ${repo}: ${w}; skipped`);
      for (const m of named.models) {
        const shards = m.shards.map((f) => join(dir, f));
        out.models.push({
          name: m.name,
          aliases: m.aliases,
          path: shards[0]!,
          shards,
          ...(m.mmproj ? { mmproj: join(dir, m.mmproj) } : {}),
          store: "lmstudio",
          info: { root, ref: repo },
        });
      }
    }
  }
  return out;
}
