import { Registry } from "../../../models/registry.js";
import { modelSourceOptions } from "../../../models/resolve.js";
import type { LoadModelSourcesOptions } from "../../../models/sources.js";
import { skippedStores } from "../../stores-flag.js";

/** Where `gglib models` finds models: the registry, the models folder, the proxy config and the other tools' stores. */
export interface SourceOpts {
  modelsDir?: string;
  config?: string;
  /** `--skip-store` values (stores not to read). */
  skipStore?: string[];
}

export function withRegistry<T>(fn: (reg: Registry) => Promise<T>): Promise<T> {
  const reg = Registry.open();
  return fn(reg).finally(() => reg.close());
}

/** The config file (--config, else the data dir's config.yaml if it exists) and the models folder (--models-dir, else
 * the config's, else the data dir's models/ if it exists), as every command reads them (src/models/resolve.ts). */
export function loadSourcesOptions(opts: SourceOpts): Omit<LoadModelSourcesOptions, "registry"> {
  const skip = skippedStores(opts.skipStore);
  return modelSourceOptions({
    ...(skip ? { skipStores: skip } : {}),
    ...(opts.config !== undefined ? { configPath: opts.config } : {}),
    ...(opts.modelsDir !== undefined ? { modelsDir: opts.modelsDir } : {}),
    strict: true,
  }).options;
}
