/**
 * The proxy's models: entries from the config file and the models folder (src/models/sources.ts), each turned
 * into the ServerConfig that launches it, a scheduler spec (memory estimate, pin, TTL, fingerprint of the
 * settings that need a restart) and name resolution (exact name, then alias, then case-insensitive).
 */
import { createHash } from "node:crypto";
import type { ServerConfig } from "../core/config.js";
import { readModelMetadata } from "../gguf/reader.js";
import { configModelsOf, type LoadedConfig } from "../models/config-file.js";
import { withDetectedSettings } from "../models/launch-defaults.js";
import { serverConfigOf } from "../models/settings.js";
import { findModel, loadModelSources, type Clash, type ModelEntry, type RegisteredModels } from "../models/sources.js";
import { estimateModel, type Estimate } from "./memory.js";
import type { ModelSpec } from "./scheduler.js";

export interface ProxyModel {
  name: string;
  aliases: string[];
  entry: ModelEntry;
  server: ServerConfig;
  estimate: Estimate;
  spec: ModelSpec;
  preload: boolean;
}

export interface Catalog {
  models: ProxyModel[];
  clashes: Clash[];
  warnings: string[];
}

export interface CatalogInput {
  config?: LoadedConfig;
  modelsDir?: string;
  /** Models added with `gglib models add/scan` (between the config and the models folder in precedence). */
  registry?: RegisteredModels;
  /** Global TTL in seconds (for the spec's default). */
  ttlS?: number;
  /** Extra args every model gets (e.g. `-lv 4` to measure buffers). */
  commonArgs?: readonly string[];
}

export async function buildCatalog(input: CatalogInput): Promise<Catalog> {
  const configModels = input.config ? configModelsOf(input.config) : [];
  const opts: Parameters<typeof loadModelSources>[0] = {};
  if (input.modelsDir) opts.modelsDir = input.modelsDir;
  if (input.registry) opts.registry = input.registry;
  if (configModels.length > 0) opts.config = { models: configModels, baseDir: input.config?.baseDir ?? process.cwd() };
  const sources = loadModelSources(opts);
  const models = await Promise.all(sources.models.map((entry) => toProxyModel(entry, input)));
  return { models, clashes: sources.clashes, warnings: sources.warnings };
}

async function toProxyModel(entry: ModelEntry, input: CatalogInput): Promise<ProxyModel> {
  const s = entry.settings;
  // the GGUF header is read once, for both the launch defaults and the memory estimate
  const metadata = await readModelMetadata(entry.shards[0] ?? entry.path).catch(() => undefined);
  const { config: server } = withDetectedSettings(
    { ...serverConfigOf(entry, input.commonArgs), metrics: true },
    metadata,
  );
  const estInput: Parameters<typeof estimateModel>[0] = { files: entry.shards };
  if (metadata) estInput.metadata = metadata;
  if (entry.mmproj) estInput.mmproj = entry.mmproj;
  if (s.parallel !== undefined) estInput.parallel = s.parallel;
  if (s.ctx !== undefined) estInput.ctx = s.ctx;
  if (s.cacheTypeK) estInput.cacheTypeK = s.cacheTypeK;
  if (s.cacheTypeV) estInput.cacheTypeV = s.cacheTypeV;
  const estimate = await estimateModel(estInput);
  const fingerprint = createHash("sha256").update(JSON.stringify(server)).digest("hex").slice(0, 16);
  const spec: ModelSpec = {
    name: entry.name,
    estimateBytes: estimate.bytes,
    pinned: s.pinned === true,
    ttlMs: s.ttl !== undefined ? s.ttl * 1000 : undefined,
    fingerprint,
  };
  return { name: entry.name, aliases: entry.aliases, entry, server, estimate, spec, preload: s.preload === true };
}

/** Resolves a requested model name by the one rule (src/models/sources.ts findModel). */
export function resolveModelName(
  models: readonly Pick<ProxyModel, "name" | "aliases">[],
  requested: string,
): string | undefined {
  return findModel(models, requested)?.name;
}
