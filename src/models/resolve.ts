/**
 * What a command's model argument means, decided once for `gglib chat`, `gglib serve` and `gglib models fit`
 * (the proxy resolves request names over the same sources, src/proxy/catalog.ts):
 *   1. a path (it ends in .gguf, has a slash, starts with a dot, or exists): the file (a shard: its whole set) or
 *      the one model a folder holds, named by its file stem or folder (src/models/sources.ts resolveModelPath);
 *   2. otherwise a name or alias, by the one matching rule (exact, alias, unique case-insensitive: findModel),
 *      over the sources merged by precedence: the config file's models, the registry, the models folder, then the
 *      other tools' stores (src/models/stores: every store at its tool's own place, less those the config's
 *      `stores`, `--skip-store` or GGLIB_STORES turn off). A store name with a slash (`org/repo:Q4_K_M`) that is
 *      no file or folder here is a name.
 * The config file is `--config`, else `<data dir>/config.yaml` when it exists; the models folder is the one given,
 * else the config's `modelsDir`, else `<data dir>/models` when it exists (modelsFolder). `gglib proxy` takes its
 * config file and models folder from modelSourceOptions too, so `gglib models list` shows what the proxy serves.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { GglibError } from "../core/errors.js";
import { isGgufFile } from "../gguf/names.js";
import { paths } from "../core/paths.js";
import { configModelsOf, loadConfigFile, resolvePath, type LoadedConfig } from "./config-file.js";
import { Registry } from "./registry.js";
import { selectStores, type StoreName } from "./stores/index.js";
import {
  findModel,
  loadModelSources,
  resolveModelPath,
  type LoadModelSourcesOptions,
  type ModelEntry,
  type ModelSource,
  type ModelSources,
} from "./sources.js";

export interface ModelSourceOptions {
  env?: NodeJS.ProcessEnv;
  /** The config file; default `<data dir>/config.yaml` when it exists. */
  configPath?: string;
  /** The models folder; default the config's modelsDir, else `<data dir>/models` when it exists. */
  modelsDir?: string;
  /**
   * A config file that cannot be read or parsed: thrown (`strict`, for `gglib models`, which shows the file), or
   * noted in `warnings` and skipped (the chat and `serve` still find registered models).
   */
  strict?: boolean;
  /** Stores turned off by a flag (`--skip-store`); "all" for none. */
  skipStores?: readonly StoreName[] | "all";
}

export interface FoundSources {
  options: Omit<LoadModelSourcesOptions, "registry">;
  /** The config file chosen (the one given, else the data dir's when it exists), whether it could be read or not. */
  configPath: string | undefined;
  /** The places looked in, for "no models found" messages. */
  where: string[];
  warnings: string[];
}

/** Which config file and models folder the commands read (see the header comment). */
export function modelSourceOptions(opts: ModelSourceOptions = {}): FoundSources {
  const env = opts.env ?? process.env;
  const where: string[] = [];
  const warnings: string[] = [];
  const out: FoundSources["options"] = {};
  const cfgPath = opts.configPath ?? paths.configFile(env);
  const chosen = opts.configPath !== undefined || existsSync(cfgPath);
  let loaded: LoadedConfig | undefined;
  if (chosen) {
    try {
      loaded = loadConfigFile(cfgPath);
      where.push(cfgPath);
    } catch (e) {
      if (opts.strict) throw e;
      warnings.push(`config ${cfgPath} skipped: ${(e as Error).message}`);
    }
  }
  if (loaded) out.config = { models: configModelsOf(loaded), baseDir: loaded.baseDir };
  const modelsDir = modelsFolder(opts.modelsDir, loaded, env);
  if (modelsDir !== undefined) {
    out.modelsDir = modelsDir;
    where.push(modelsDir);
  }
  const stores = selectStores({
    env,
    ...(loaded?.config.stores !== undefined ? { config: loaded.config.stores } : {}),
    ...(loaded ? { resolvePath: (p: string) => resolvePath(loaded.baseDir, p) } : {}),
    ...(opts.skipStores ? { skip: opts.skipStores } : {}),
  });
  if (Object.keys(stores).length > 0) out.stores = stores;
  return { options: out, configPath: chosen ? cfgPath : undefined, where, warnings };
}

/**
 * The models folder of every command: the one given (`--models-dir`), else the config file's `modelsDir`, else
 * `<data dir>/models` when it exists; none when none of these is.
 */
export function modelsFolder(
  given: string | undefined,
  config: LoadedConfig | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (given !== undefined) return resolve(given);
  if (config?.config.modelsDir) return resolvePath(config.baseDir, config.config.modelsDir);
  const fallback = paths.modelsDir(env);
  return existsSync(fallback) ? fallback : undefined;
}

/** Every model the commands know by name: the config file, the registry (when it exists), the models folder. */
export function knownModels(opts: ModelSourceOptions = {}): ModelSources & { where: string[] } {
  const env = opts.env ?? process.env;
  const found = modelSourceOptions(opts);
  const where = [...found.where];
  let registry: Registry | undefined;
  const dbPath = paths.registryDb(env);
  if (existsSync(dbPath)) {
    try {
      registry = Registry.open({ dbPath });
      where.splice(found.options.config ? 1 : 0, 0, "the model registry");
    } catch (e) {
      found.warnings.push(`model registry not readable, skipped: ${(e as Error).message}`);
    }
  }
  try {
    const sources = loadModelSources({ ...found.options, ...(registry ? { registry } : {}) });
    return { ...sources, warnings: [...found.warnings, ...sources.warnings], where };
  } finally {
    registry?.close();
  }
}

/** Does this argument name a file or folder rather than a model name? */
export function looksLikePath(arg: string, cwd = process.cwd()): boolean {
  return (
    isGgufFile(arg) || arg.includes("/") || arg.includes("\\") || arg.startsWith(".") || existsSync(resolve(cwd, arg))
  );
}

/** `org/repo:Q4_K_M`, `user/model:tag`: a store's name, not a path (nothing by that name exists here). */
function storeStyleName(ref: string, cwd: string): boolean {
  return /^[^./\\][^\\]*:[^/\\]+$/.test(ref) && !isGgufFile(ref) && !existsSync(resolve(cwd, ref));
}

export interface ResolveModelOptions extends ModelSourceOptions {
  cwd?: string;
}

export interface ResolvedModel {
  /** The model with its files and settings (a path has none). */
  entry: Omit<ModelEntry, "source">;
  /** Where it was found. */
  source: "path" | ModelSource;
}

/** A command's model argument → the model (see the header comment). Throws model_not_found with a hint. */
export function resolveModelRef(ref: string, opts: ResolveModelOptions = {}): ResolvedModel {
  const cwd = opts.cwd ?? process.cwd();
  if (looksLikePath(ref, cwd) && !storeStyleName(ref, cwd)) {
    const p = resolve(cwd, ref);
    const found = resolveModelPath(p);
    if (!found.ok) {
      throw new GglibError("model_not_found", `Cannot use model ${ref}: ${found.reason}.`, {
        modelPath: p,
        hint: "Pass the path of a .gguf file (the first shard of a split model), or a model name from `gglib models list`.",
      });
    }
    return { source: "path", entry: { ...found.files, aliases: [], settings: {} } };
  }
  const known = knownModels(opts);
  const m = findModel(known.models, ref);
  if (!m) {
    const names = known.models.map((x) => x.name);
    throw new GglibError("model_not_found", `No model named "${ref}".`, {
      hint:
        (names.length
          ? `Known models: ${names.slice(0, 20).join(", ")}${names.length > 20 ? ", …" : ""}. `
          : `No models found (looked in ${known.where.join(", ") || "the data dir"}). `) +
        "Pass a .gguf path, add one with `gglib models add <file>`, or start `gglib proxy` with --models-dir.",
    });
  }
  return { source: m.source, entry: m };
}
