/**
 * The Hugging Face hub cache (huggingface_hub, llama.cpp's `-hf`): `<root>/models--<org>--<repo>/` with
 * `refs/<branch>` (a commit hash), `snapshots/<commit>/<path in the repo>` (symlinks into `blobs/`) and `blobs/`
 * (content by hash; `*.incomplete` while downloading). Every snapshot is read, the commit `refs/main` names first;
 * a path present in several snapshots is taken from the first. Names: `org/repo:Q4_K_M` (repo-names.ts). A
 * snapshot link whose blob is gone is a warning. Read-only.
 */
import { readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { isDangling, isDir, list } from "./fs-read.js";
import { nameRepoModels } from "./repo-names.js";
import type { StoreModel, StoreName, StoreScan } from "./types.js";

/** `models--org--repo` → `org/repo`; undefined for other folders (datasets--, spaces--, .locks). */
export function repoOfCacheFolder(folder: string): string | undefined {
  if (!folder.startsWith("models--")) return undefined;
  const repo = folder.slice("models--".length).split("--").join("/");
  return /^[^/]+\/[^/]+$/.test(repo) ? repo : undefined;
}

/** Scans a hub cache folder; `store` says whose it is (the HF cache, or llama.cpp's cache in the same layout). */
export function scanHfCache(root: string, store: StoreName = "hf-cache"): StoreScan {
  const out: StoreScan = { models: [], watch: [], warnings: [] };
  if (!isDir(root)) return out;
  out.watch.push(root);
  for (const folder of list(root).dirs) {
    const repo = repoOfCacheFolder(folder);
    if (repo) scanRepo(join(root, folder), repo, root, store, out);
  }
  return out;
}

/** The folder of a repo in a hub cache: `org/repo` → `<root>/models--org--repo`. */
export function cacheFolderOf(root: string, repo: string): string {
  return join(root, `models--${repo.split("/").join("--")}`);
}

/** One repo of a hub cache (empty when it is not there). */
export function scanHfRepo(root: string, repo: string, store: StoreName = "hf-cache"): StoreScan {
  const out: StoreScan = { models: [], watch: [], warnings: [] };
  scanRepo(cacheFolderOf(root, repo), repo, root, store, out);
  return out;
}

function scanRepo(dir: string, repo: string, root: string, store: StoreName, out: StoreScan): void {
  const snapshots = join(dir, "snapshots");
  const revs = list(snapshots).dirs;
  if (revs.length === 0) return;
  const main = readRef(join(dir, "refs", "main"));
  revs.sort((a, b) => (a === main ? -1 : b === main ? 1 : a.localeCompare(b)));
  const fileRev = new Map<string, string>();
  for (const rev of revs) {
    walk(join(snapshots, rev), "", 0, (rel, dangling) => {
      if (!/\.gguf$/i.test(rel)) return;
      if (dangling) {
        out.warnings.push(
          `${store}: ${repo}: ${join(snapshots, rev, rel)} is a dangling symlink (its blob is gone); skipped`,
        );
        return;
      }
      if (!fileRev.has(rel)) fileRev.set(rel, rev);
    });
  }
  const named = nameRepoModels(repo, [...fileRev.keys()]);
  for (const w of named.incomplete) out.warnings.push(`${store}: ${repo}: ${w}; skipped`);
  const abs = (rel: string) => join(snapshots, fileRev.get(rel)!, ...rel.split("/"));
  for (const m of named.models) {
    const rev = fileRev.get(m.shards[0]!)!;
    const model: StoreModel = {
      name: m.name,
      aliases: m.aliases,
      path: abs(m.shards[0]!),
      shards: m.shards.map(abs),
      store,
      info: { root, ref: `${repo}@${rev}` },
    };
    if (m.mmproj) model.mmproj = abs(m.mmproj);
    out.models.push(model);
  }
}

function readRef(p: string): string | undefined {
  try {
    return readFileSync(p, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Files under a snapshot (repo paths with `/`), at most 4 folders deep. */
function walk(dir: string, rel: string, depth: number, visit: (rel: string, dangling: boolean) => void): void {
  const l = list(dir);
  for (const f of l.files) visit(rel ? posix.join(rel, f) : f, false);
  for (const f of l.dangling) visit(rel ? posix.join(rel, f) : f, isDangling(join(dir, f)));
  if (depth < 4) for (const d of l.dirs) walk(join(dir, d), rel ? posix.join(rel, d) : d, depth + 1, visit);
}
