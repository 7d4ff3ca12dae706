/**
 * Where the proxy's models come from, merged into one list.
 *
 * These sources, in this order of precedence (a higher one wins a name):
 *   1. "config"     — entries of the config file (read by src/models/config-file.ts, passed in here);
 *   2. "registry"   — models added with `gglib models add/scan` (src/models/registry.ts, SQLite);
 *   3. "models-dir" — files found in `--models-dir` (no settings; named by file stem or folder);
 *   4. the other tools' stores, read in place and never changed (src/models/stores/): "ollama", "lmstudio",
 *      "hf-cache", "llama-cache" (no settings; named the store's way: `qwen3:8b`, `org/repo:Q4_K_M`). A store
 *      model whose file an earlier entry already has (a link, a hard link, one blob behind two tags) is folded
 *      into that entry: its names become aliases, and it is reported as a duplicate (a Clash with samePath).
 * Names and aliases share one namespace. When two entries claim the same name:
 *   - the claim of the higher-precedence source wins (within a source, the first entry in its order wins);
 *   - if a model's own name is taken, the whole model is left out; if only an alias is taken, just that alias is;
 *   - each such conflict is reported as a Clash. A clash between two entries that point at the same file (the same
 *     model registered and also lying in the models dir) is harmless: it is still reported, with `samePath: true`,
 *     so `gglib models list` can show it as a duplicate rather than a conflict.
 *
 * Models-dir layout (scanned to depth 3):
 *   - `<dir>/foo.gguf` (also in subfolders)          → model "foo" (the file stem);
 *   - `<dir>/foo-00001-of-00003.gguf` (+ the rest)   → model "foo" with 3 shards;
 *   - `<dir>/bar/` holding one model that is a shard set, or one model plus a projector → model "bar";
 *   - a subfolder holding several models → each named by its file stem, each with the folder's mmproj (if one).
 *   Projectors (`mmproj` as a word part of the name, src/gguf/names.ts) are never models. Incomplete shard sets
 *   and unreadable entries are skipped with a warning.
 * A path given directly (a config entry, a command's argument) resolves the same way: a file is that model (a
 * shard: its whole set), with no projector unless one is set; a folder is the one model it holds, with its
 * projector.
 *
 * This module is a stable contract for the proxy: ModelEntry, ModelSettings, Clash and loadModelSources().
 */
import { readdirSync, realpathSync, statSync, type Dirent } from "node:fs";
import { basename, isAbsolute, join, resolve } from "node:path";
import { groupGgufPaths, modelStem, parseShardName } from "../gguf/names.js";
import type { ModelSettings } from "./settings.js";
import {
  foldSameFiles,
  isHfRef,
  isStoreName,
  resolveHfRef,
  scanStores,
  STORE_NAMES,
  type StoreInfo,
  type StoreName,
  type StoreSelection,
  type StoresScan,
} from "./stores/index.js";

export type ModelSource = "config" | "registry" | "models-dir" | StoreName;

/** Precedence: lower index wins. */
export const SOURCE_PRECEDENCE: readonly ModelSource[] = ["config", "registry", "models-dir", ...STORE_NAMES];

export interface ModelEntry {
  /** The name clients use. */
  name: string;
  /** Other names that resolve to this model (after clash resolution). */
  aliases: string[];
  /** Absolute path of the .gguf (the first shard for split models). */
  path: string;
  /** Every file of the model in order; `[path]` for a single-file model. */
  shards: string[];
  /** Multimodal projector (`--mmproj`), absolute path. */
  mmproj?: string;
  source: ModelSource;
  settings: ModelSettings;
  /** A store model (source ollama, lmstudio, hf-cache, llama-cache): where it lives and what its store says. */
  store?: StoreInfo;
}

/** One config entry as the proxy's config parser hands it over. Relative paths resolve against `baseDir`. */
export interface ConfigModel {
  name: string;
  /** A .gguf file (first shard) or a folder laid out like a models-dir folder. */
  path: string;
  aliases?: readonly string[];
  mmproj?: string;
  settings?: ModelSettings;
}

export interface ModelsConfig {
  models: readonly ConfigModel[];
  /** Folder that relative paths are resolved against (the config file's folder). Default: process.cwd(). */
  baseDir?: string;
}

export interface ClashParty {
  source: ModelSource;
  /** The model's own name. */
  model: string;
  path: string;
}

export interface Clash {
  /** The contested name. */
  name: string;
  /** Whether the loser claimed it as its own name (it is then left out entirely) or as an alias (the alias is dropped). */
  claimedAs: "name" | "alias";
  winner: ClashParty;
  loser: ClashParty;
  /** Both point at the same file: a harmless duplicate. */
  samePath: boolean;
  /** One line for a terminal. */
  message: string;
}

export interface ModelSources {
  models: ModelEntry[];
  clashes: Clash[];
  /** Things skipped while scanning (incomplete shard sets, unreadable folders, missing config files). */
  warnings: string[];
  /** The stores read: the folders found and the folders worth watching (absent when no store was selected). */
  stores?: Pick<StoresScan, "found" | "watch">;
}

/** The models of the registry (`Registry.open()` is one; the type is structural to keep the layers one way). */
export interface RegisteredModels {
  list(): readonly Pick<ModelEntry, "name" | "aliases" | "path" | "shards" | "mmproj" | "settings">[];
}

export interface LoadModelSourcesOptions {
  registry?: RegisteredModels;
  modelsDir?: string;
  config?: ModelsConfig;
  /** The other tools' stores to read (src/models/stores selectStores); none when absent. */
  stores?: StoreSelection;
}

/** Loads and merges all sources. Synchronous (stat/readdir only); never throws for a missing models dir. */
export function loadModelSources(opts: LoadModelSourcesOptions): ModelSources {
  const warnings: string[] = [];
  const candidates: ModelEntry[] = [];
  if (opts.config) {
    const base = opts.config.baseDir ?? process.cwd();
    for (const c of opts.config.models) {
      const hf = isHfRef(c.path);
      const p = hf || isAbsolute(c.path) ? c.path : resolve(base, c.path);
      const found = hf ? hfModelFiles(c.path, opts.stores) : resolveModelPath(p);
      if (!found.ok) {
        warnings.push(`config model "${c.name}": ${found.reason}`);
        // keep it: the proxy reports a clear 404/500 when the model is requested, and the name stays reserved
        candidates.push({
          name: c.name,
          aliases: [...(c.aliases ?? [])],
          path: p,
          shards: [p],
          ...(c.mmproj ? { mmproj: resolve(base, c.mmproj) } : {}),
          source: "config",
          settings: { ...(c.settings ?? {}) },
        });
        continue;
      }
      const mmproj = c.mmproj ? resolve(base, c.mmproj) : found.files.mmproj;
      candidates.push({
        name: c.name,
        aliases: [...(c.aliases ?? [])],
        path: found.files.path,
        shards: found.files.shards,
        ...(mmproj ? { mmproj } : {}),
        source: "config",
        settings: { ...(c.settings ?? {}) },
      });
    }
  }
  if (opts.registry) {
    for (const m of opts.registry.list()) {
      candidates.push({
        name: m.name,
        aliases: [...m.aliases],
        path: m.path,
        shards: [...m.shards],
        ...(m.mmproj ? { mmproj: m.mmproj } : {}),
        source: "registry",
        settings: { ...m.settings },
      });
    }
  }
  if (opts.modelsDir) {
    const scan = scanModelsDir(opts.modelsDir);
    warnings.push(...scan.warnings);
    for (const f of scan.models) {
      candidates.push({
        name: f.name,
        aliases: [],
        path: f.path,
        shards: f.shards,
        ...(f.mmproj ? { mmproj: f.mmproj } : {}),
        source: "models-dir",
        settings: {},
      });
    }
  }
  let storesRead: ModelSources["stores"];
  let folded: Clash[] = [];
  if (opts.stores) {
    const scan = scanStores(opts.stores);
    warnings.push(...scan.warnings);
    storesRead = { found: scan.found, watch: scan.watch };
    for (const m of scan.models) {
      candidates.push({
        name: m.name,
        aliases: [...m.aliases],
        path: m.path,
        shards: m.shards,
        ...(m.mmproj ? { mmproj: m.mmproj } : {}),
        source: m.store,
        settings: {},
        store: m.info,
      });
    }
    const f = foldSameFiles(candidates, (e) => isStoreName(e.source));
    candidates.splice(0, candidates.length, ...f.entries);
    folded = f.folded.map((x) => ({
      name: x.name,
      claimedAs: "name" as const,
      winner: { source: x.into.source as ModelSource, model: x.into.name, path: x.into.path },
      loser: { source: x.source as ModelSource, model: x.name, path: x.path },
      samePath: true,
      message: `"${x.name}" (${x.source}) is the same file as "${x.into.name}" (${x.into.source}); listed once, "${x.name}" is an alias`,
    }));
  }
  const merged = mergeModelEntries(candidates);
  return {
    models: merged.models,
    clashes: [...folded, ...merged.clashes],
    warnings,
    ...(storesRead ? { stores: storesRead } : {}),
  };
}

/**
 * A config entry's `hf:org/repo[:quant]` → the files of that model in the Hugging Face cache or llama.cpp's cache
 * (the folders of those stores, when they are read), as resolveModelPath answers for a path.
 */
function hfModelFiles(
  ref: string,
  stores: StoreSelection | undefined,
): { ok: true; files: FoundModel } | { ok: false; reason: string } {
  const r = resolveHfRef(ref, [...(stores?.["hf-cache"] ?? []), ...(stores?.["llama-cache"] ?? [])]);
  if (!r.ok) return r;
  const m = r.model;
  return {
    ok: true,
    files: { name: m.name, path: m.path, shards: m.shards, ...(m.mmproj ? { mmproj: m.mmproj } : {}) },
  };
}

/**
 * Resolves name clashes among entries given in precedence order (see the header comment). Pure; exported for
 * callers that assemble entries themselves.
 */
export function mergeModelEntries(entries: readonly ModelEntry[]): { models: ModelEntry[]; clashes: Clash[] } {
  const sorted = [...entries].sort((a, b) => SOURCE_PRECEDENCE.indexOf(a.source) - SOURCE_PRECEDENCE.indexOf(b.source));
  const owner = new Map<string, ModelEntry>();
  const models: ModelEntry[] = [];
  const clashes: Clash[] = [];
  const party = (e: ModelEntry): ClashParty => ({ source: e.source, model: e.name, path: e.path });
  const clash = (name: string, claimedAs: "name" | "alias", winner: ModelEntry, loser: ModelEntry): Clash => {
    const samePath = samePaths(winner.path, loser.path);
    const what = claimedAs === "name" ? "model" : "alias";
    const message = samePath
      ? `"${name}" (${loser.source}) is the same file as "${winner.name}" (${winner.source}); listed once`
      : `${what} "${name}" from ${loser.source} (${loser.path}) is shadowed by "${winner.name}" from ${winner.source} (${winner.path})`;
    return { name, claimedAs, winner: party(winner), loser: party(loser), samePath, message };
  };
  for (const e of sorted) {
    const taken = owner.get(e.name);
    if (taken) {
      clashes.push(clash(e.name, "name", taken, e));
      continue;
    }
    const kept: ModelEntry = { ...e, aliases: [] };
    owner.set(e.name, kept);
    for (const a of e.aliases) {
      if (a === e.name || kept.aliases.includes(a)) continue;
      const t = owner.get(a);
      if (t) {
        clashes.push(clash(a, "alias", t, e));
        continue;
      }
      owner.set(a, kept);
      kept.aliases.push(a);
    }
    models.push(kept);
  }
  return { models, clashes };
}

/**
 * Finds a model by what a user or a client typed: the exact name, else an alias, else a unique case-insensitive
 * match of either; failing all three, a name ending in `:latest` (any case) is tried again without it, because
 * Ollama's `/api/tags` lists every model as `name:latest` and its clients (Codex's `--oss`) send that name to the
 * OpenAI and Anthropic routes too. The proxy's request routing and every command's model argument use this rule.
 */
export function findModel<M extends { name: string; aliases: readonly string[] }>(
  models: readonly M[],
  nameOrAlias: string,
): M | undefined {
  const hit = matchName(models, nameOrAlias);
  if (hit || !LATEST_TAG.test(nameOrAlias)) return hit;
  const bare = nameOrAlias.replace(LATEST_TAG, "");
  return bare ? matchName(models, bare) : undefined;
}

const LATEST_TAG = /:latest$/i;

function matchName<M extends { name: string; aliases: readonly string[] }>(
  models: readonly M[],
  nameOrAlias: string,
): M | undefined {
  const exact = models.find((m) => m.name === nameOrAlias) ?? models.find((m) => m.aliases.includes(nameOrAlias));
  if (exact) return exact;
  const lower = nameOrAlias.toLowerCase();
  const hits = models.filter((m) => m.name.toLowerCase() === lower || m.aliases.some((a) => a.toLowerCase() === lower));
  return hits.length === 1 ? hits[0] : undefined;
}

function samePaths(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Files → models (shared with the registry's `models add <folder>` and `models scan`)

/** The files of one model. */
export interface ModelFiles {
  /** First shard / the file. */
  path: string;
  shards: string[];
  mmproj?: string;
}

export interface FoundModel extends ModelFiles {
  /** Default name: the file stem (without the shard suffix), or the folder's name for a single-model folder. */
  name: string;
}

/**
 * The models among the .gguf files of one folder (names are file names, not paths). Shard sets become one model;
 * incomplete sets are reported. mmproj files are returned separately.
 */
export function groupGgufFiles(
  dir: string,
  fileNames: readonly string[],
): { models: FoundModel[]; mmproj: string[]; warnings: string[] } {
  const names = [...fileNames].filter((f) => !f.startsWith(".")).sort();
  const g = groupGgufPaths(names, (f) => f);
  const models: FoundModel[] = g.models.map((m) => {
    const shards = m.files.map((f) => join(dir, f));
    return { name: m.stem, path: shards[0]!, shards };
  });
  const mmproj = g.projectors.map((f) => join(dir, f));
  const warnings = g.incomplete.map(
    (s) => `${join(dir, s.stem)}: only ${s.present} of ${s.count} shards present; skipped`,
  );
  models.sort((a, b) => a.name.localeCompare(b.name));
  return { models, mmproj, warnings };
}

/** The single model a folder holds (the `models add <folder>` case), or why it isn't one. */
export function resolveModelFolder(dir: string): { ok: true; model: FoundModel } | { ok: false; reason: string } {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    return { ok: false, reason: `cannot read ${dir}: ${(e as Error).message}` };
  }
  const g = groupGgufFiles(dir, names);
  if (g.models.length === 0) {
    return {
      ok: false,
      reason: `${dir} holds no model (.gguf other than a projector)${g.warnings.length ? ": " + g.warnings.join("; ") : ""}`,
    };
  }
  if (g.models.length > 1) {
    return {
      ok: false,
      reason: `${dir} holds ${g.models.length} models (${g.models.map((m) => m.name).join(", ")}); pass one file`,
    };
  }
  const m = g.models[0]!;
  const mmproj = g.mmproj[0];
  return { ok: true, model: { ...m, name: basename(dir), ...(mmproj ? { mmproj } : {}) } };
}

/** A file (single or first shard) or a single-model folder → its files. */
export function resolveModelPath(p: string): { ok: true; files: FoundModel } | { ok: false; reason: string } {
  let st;
  try {
    st = statSync(p);
  } catch {
    return { ok: false, reason: `${p} does not exist` };
  }
  if (st.isDirectory()) {
    const r = resolveModelFolder(p);
    return r.ok ? { ok: true, files: r.model } : r;
  }
  const shard = parseShardName(p);
  if (!shard) return { ok: true, files: { name: modelStem(p), path: p, shards: [p] } };
  const dir = resolve(p, "..");
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    return { ok: false, reason: `cannot read ${dir}: ${(e as Error).message}` };
  }
  const g = groupGgufFiles(
    dir,
    names.filter((n) => parseShardName(n)?.stem === shard.stem),
  );
  const set = g.models.find((m) => m.name === shard.stem);
  if (!set) return { ok: false, reason: g.warnings[0] ?? `${p}: shard set incomplete` };
  return { ok: true, files: set };
}

/** Scans a models folder (see the header comment for the layout). Missing folder → no models, one warning. */
export function scanModelsDir(root: string, maxDepth = 3): { models: FoundModel[]; warnings: string[] } {
  const out: FoundModel[] = [];
  const warnings: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      warnings.push(
        code === "ENOENT" ? `models dir ${dir} does not exist` : `cannot read ${dir}: ${(e as Error).message}`,
      );
      return;
    }
    const files: string[] = [];
    const dirs: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        try {
          const st = statSync(join(dir, e.name));
          isDir = st.isDirectory();
          isFile = st.isFile();
        } catch {
          continue; // dangling link
        }
      }
      if (isFile) files.push(e.name);
      else if (isDir) dirs.push(e.name);
    }
    const g = groupGgufFiles(dir, files);
    warnings.push(...g.warnings);
    const only = g.models.length === 1 ? g.models[0]! : undefined;
    if (depth > 0 && only && (only.shards.length > 1 || g.mmproj.length > 0)) {
      // a model's own folder (its shards and/or its projector): named by the folder
      const mmproj = g.mmproj[0];
      out.push({ ...only, name: basename(dir), ...(mmproj ? { mmproj } : {}) });
    } else {
      const mmproj = depth > 0 ? g.mmproj[0] : undefined;
      for (const m of g.models) out.push({ ...m, ...(mmproj ? { mmproj } : {}) });
    }
    if (depth < maxDepth) for (const d of dirs.sort()) walk(join(dir, d), depth + 1);
  };
  walk(root, 0);
  return { models: out, warnings };
}
