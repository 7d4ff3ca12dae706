/**
 * Zero-copy discovery: the models other tools already downloaded (Ollama, LM Studio, the Hugging Face cache,
 * llama.cpp's cache), found where those tools keep them and served in place. Each store is on by default and
 * can be turned off (config `stores`, `--skip-store`, GGLIB_STORES); nothing in a store is ever written, moved or
 * deleted. See README.md in this folder for the layouts and names.
 */
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { homedir, platform } from "node:os";
import { scanHfCache } from "./hf-cache.js";
import { scanLlamaCache } from "./llama-cache.js";
import { scanLmStudio } from "./lmstudio.js";
import { hfHubCache, storeRoots, type LocationContext } from "./locations.js";
import { scanOllama } from "./ollama.js";
import { STORE_NAMES, STORE_TOOLS, type StoreModel, type StoreName, type StoreScan } from "./types.js";

export { STORE_NAMES, STORE_TOOLS, type StoreInfo, type StoreModel, type StoreName } from "./types.js";
export { foldSameFiles, fileIdentity, type Folded } from "./dedupe.js";
export { isHfRef, parseHfRef, resolveHfRef } from "./hf-ref.js";

/** The stores to read and the folders of each (an enabled store with no folders reads nothing). */
export type StoreSelection = Partial<Record<StoreName, string[]>>;

/** The config file's `stores` setting: false turns every store off; per store, false, true or folder(s). */
export type StoresSetting =
  false | Partial<Record<"ollama" | "lmstudio" | "hfCache" | "llamaCache", boolean | string | string[]>>;

const CONFIG_KEY: Record<StoreName, "ollama" | "lmstudio" | "hfCache" | "llamaCache"> = {
  ollama: "ollama",
  lmstudio: "lmstudio",
  "hf-cache": "hfCache",
  "llama-cache": "llamaCache",
};

export function isStoreName(s: string): s is StoreName {
  return (STORE_NAMES as readonly string[]).includes(s);
}

/**
 * Parses the names `--skip-store` and GGLIB_STORES take (comma lists; `all` / `none`). Throws a message naming the
 * unknown word and the valid ones.
 */
export function parseStoreList(words: readonly string[]): StoreName[] | "all" {
  const out: StoreName[] = [];
  for (const w of words.flatMap((x) => x.split(",")).map((x) => x.trim().toLowerCase())) {
    if (w === "") continue;
    if (w === "all" || w === "none" || w === "off") return "all";
    if (!isStoreName(w)) throw new Error(`"${w}" is not a store; the stores are ${STORE_NAMES.join(", ")} (or all)`);
    if (!out.includes(w)) out.push(w);
  }
  return out;
}

export interface SelectStoresOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * The home folder the default locations are under. Default: the environment's HOME; else, for the process's
   * own environment only, the OS's. An environment passed in without HOME reads no default place (tests).
   */
  home?: string;
  platform?: NodeJS.Platform;
  config?: StoresSetting;
  /** Folders relative paths in `config` resolve against, and `~` expansion (the config file's folder). */
  resolvePath?: (p: string) => string;
  /** Stores turned off by a flag (`--skip-store`). */
  skip?: readonly StoreName[] | "all";
}

/**
 * Which stores are read, and where: every store by default, at the tool's own locations (locations.ts), less
 * those turned off by GGLIB_STORES (`none`, or the list of stores to keep), the config file (`stores: false`, or
 * `stores: { ollama: false }`; a path instead of true reads that folder) and `--skip-store`.
 */
export function selectStores(o: SelectStoresOptions = {}): StoreSelection {
  const env = o.env ?? process.env;
  if (o.skip === "all" || o.config === false) return {};
  let keep: readonly StoreName[] = STORE_NAMES;
  if (env.GGLIB_STORES !== undefined && env.GGLIB_STORES.trim() !== "") {
    const l = parseStoreList([env.GGLIB_STORES]);
    keep = l === "all" ? [] : l;
  }
  const ctx: LocationContext = {
    env,
    home: o.home ?? (env.HOME || (env === process.env ? homedir() : undefined)),
    platform: o.platform ?? platform(),
    readText: (p) => {
      try {
        return statSync(p).size < 1024 * 1024 ? readFileSync(p, "utf8") : undefined;
      } catch {
        return undefined;
      }
    },
    exists: existsSync,
  };
  const defaults = storeRoots(ctx);
  const out: StoreSelection = {};
  for (const s of STORE_NAMES) {
    if (!keep.includes(s) || o.skip?.includes(s)) continue;
    const c = o.config ? o.config[CONFIG_KEY[s]] : undefined;
    if (c === false) continue;
    if (typeof c === "string" || Array.isArray(c)) {
      const list = typeof c === "string" ? [c] : c;
      out[s] = list.map((p) => (o.resolvePath ? o.resolvePath(p) : p));
    } else out[s] = defaults[s];
  }
  return out;
}

/** The Hugging Face hub cache folder (HF_HUB_CACHE, HF_HOME/hub, … ~/.cache/huggingface/hub): `gglib pull --hf-cache`. */
export function defaultHubCache(env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  return hfHubCache({
    env,
    home: env.HOME || (env === process.env ? homedir() : undefined),
    platform: platform(),
    readText: () => undefined,
    exists: () => false,
  });
}

export interface StoresScan {
  models: StoreModel[];
  /** Folders to watch, each with its store. */
  watch: { store: StoreName; dir: string }[];
  warnings: string[];
  /** The store folders that exist (for "looked in" messages and `gglib models list`). */
  found: { store: StoreName; root: string }[];
}

const SCANNERS: Record<StoreName, (root: string) => StoreScan> = {
  ollama: scanOllama,
  lmstudio: scanLmStudio,
  "hf-cache": (root) => scanHfCache(root, "hf-cache"),
  "llama-cache": scanLlamaCache,
};

/** Reads the selected stores, in STORE_NAMES order. A folder reached twice (LLAMA_CACHE = the hub cache) is read once. */
export function scanStores(sel: StoreSelection): StoresScan {
  const out: StoresScan = { models: [], watch: [], warnings: [], found: [] };
  const seen = new Set<string>();
  for (const store of STORE_NAMES) {
    for (const root of sel[store] ?? []) {
      let real: string;
      try {
        real = realpathSync(root);
      } catch {
        continue; // not there: an empty store
      }
      if (seen.has(real)) continue;
      seen.add(real);
      const r = SCANNERS[store](root);
      out.found.push({ store, root });
      out.models.push(...r.models);
      out.warnings.push(...r.warnings);
      out.watch.push(...r.watch.map((dir) => ({ store, dir })));
    }
  }
  return out;
}

/** Why a store model cannot be removed by gglib, and what to do instead (`/api/delete`, `gglib models rm`). */
export function notOursMessage(m: {
  name: string;
  source: string;
  path: string;
  store?: { root: string; ref: string };
}): string | undefined {
  if (!isStoreName(m.source)) return undefined;
  const tool = STORE_TOOLS[m.source];
  const how: Record<StoreName, string> = {
    ollama: `remove it with \`ollama rm ${m.name}\``,
    lmstudio: "remove it in LM Studio (My Models)",
    "hf-cache": "remove it with `hf cache delete` (or `huggingface-cli delete-cache`)",
    "llama-cache": `delete ${m.path} yourself if llama.cpp no longer needs it`,
  };
  return `"${m.name}" belongs to ${tool} (${m.store?.root ?? m.path}); gglib reads other tools' stores and never changes them: ${how[m.source]}`;
}
