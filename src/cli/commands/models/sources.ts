import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { paths } from "../../../core/paths.js";
import { Registry } from "../../../models/registry.js";
import type { ModelsConfig } from "../../../models/sources.js";
import { loadConfigFile, resolvePath as resolveConfigPath, type LoadedConfig } from "../../../proxy/config.js";
import { configModelsOf } from "../../../proxy/catalog.js";

/** Where `gglib models` finds models: the registry, the models folder and the proxy config. */
export interface SourceOpts {
  modelsDir?: string;
  config?: string;
}

export function withRegistry<T>(fn: (reg: Registry) => Promise<T>): Promise<T> {
  const reg = Registry.open();
  return fn(reg).finally(() => reg.close());
}

export interface LoadedSources {
  config?: ModelsConfig;
  /** The models dir named by --models-dir, else by the config, else the data dir's models/ if it exists. */
  modelsDir?: string;
}

/** The proxy config (for its models and modelsDir): --config, else the data dir's config.yaml if it exists. */
export function loadSourcesOptions(opts: SourceOpts): LoadedSources {
  const p = opts.config ?? paths.configFile();
  let loaded: LoadedConfig | undefined;
  if (opts.config || existsSync(p)) loaded = loadConfigFile(p);
  const out: LoadedSources = {};
  if (loaded) {
    const base = loaded.baseDir;
    const models = configModelsOf(loaded);
    out.config = { models, baseDir: base };
    if (loaded.config.modelsDir) out.modelsDir = resolveConfigPath(base, loaded.config.modelsDir);
  }
  if (opts.modelsDir) out.modelsDir = resolve(opts.modelsDir);
  if (!out.modelsDir && existsSync(paths.modelsDir())) out.modelsDir = paths.modelsDir();
  return out;
}
