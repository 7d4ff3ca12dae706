/**
 * The proxy's models: entries from the config file and the models folder (src/models/sources.ts), each turned
 * into the ServerConfig that launches it, a scheduler spec (memory estimate, pin, TTL, fingerprint of the
 * settings that need a restart) and name resolution (exact name, then alias, then case-insensitive).
 */
import { createHash } from "node:crypto";
import type { ServerConfig } from "../core/config.js";
import type { Registry } from "../models/registry.js";
import { loadModelSources, type Clash, type ConfigModel, type ModelEntry } from "../models/sources.js";
import type { LoadedConfig, ModelConfig } from "./config.js";
import { resolvePath } from "./config.js";
import { estimateModel, type Estimate } from "./memory.js";
import type { ModelSpec } from "./scheduler.js";
import { readModelMetadata } from "../gguf/reader.js";
import { detectedChoices } from "../models/launch-defaults.js";

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
  registry?: Pick<Registry, "list">;
  /** Global TTL in seconds (for the spec's default). */
  ttlS?: number;
  /** Extra args every model gets (e.g. `-lv 4` to measure buffers). */
  commonArgs?: readonly string[];
}

/** The config file's models as model-source entries (paths resolved against the config's folder). */
export function configModelsOf(loaded: LoadedConfig): ConfigModel[] {
  return Object.entries(loaded.config.models ?? {}).map(([name, m]) => {
    const settings: ConfigModel["settings"] = {};
    if (m.ctx !== undefined) settings.ctx = m.ctx;
    if (m.gpuLayers !== undefined) settings.gpuLayers = m.gpuLayers;
    if (m.jinja !== undefined) settings.jinja = m.jinja;
    if (m.reasoningFormat !== undefined) settings.reasoningFormat = m.reasoningFormat;
    if (m.parallel !== undefined) settings.parallel = m.parallel;
    if (m.extraArgs !== undefined) settings.extraArgs = [...m.extraArgs];
    if (m.ttl !== undefined) settings.ttl = m.ttl;
    if (m.pinned !== undefined) settings.pinned = m.pinned;
    if (m.preload !== undefined) settings.preload = m.preload;
    const c: ConfigModel = { name, path: resolvePath(loaded.baseDir, m.path), settings };
    if (m.aliases) c.aliases = m.aliases;
    if (m.mmproj) c.mmproj = resolvePath(loaded.baseDir, m.mmproj);
    return c;
  });
}

export async function buildCatalog(input: CatalogInput): Promise<Catalog> {
  const cfgModels = input.config?.config.models ?? {};
  const configModels = input.config ? configModelsOf(input.config) : [];
  const opts: Parameters<typeof loadModelSources>[0] = {};
  if (input.modelsDir) opts.modelsDir = input.modelsDir;
  if (input.registry) opts.registry = input.registry;
  if (configModels.length > 0) opts.config = { models: configModels, baseDir: input.config?.baseDir ?? process.cwd() };
  const sources = loadModelSources(opts);
  const models = await Promise.all(
    sources.models.map((entry) =>
      toProxyModel(entry, entry.source === "config" ? cfgModels[entry.name] : undefined, input),
    ),
  );
  return { models, clashes: sources.clashes, warnings: sources.warnings };
}

async function toProxyModel(entry: ModelEntry, cfg: ModelConfig | undefined, input: CatalogInput): Promise<ProxyModel> {
  const s = entry.settings;
  const server: ServerConfig = { modelPath: entry.path, modelName: entry.name, metrics: true };
  if (s.ctx !== undefined) server.contextSize = s.ctx;
  if (s.gpuLayers !== undefined) server.gpuLayers = s.gpuLayers;
  if (s.jinja !== undefined) server.jinja = s.jinja;
  if (s.reasoningFormat !== undefined) server.reasoningFormat = s.reasoningFormat;
  if (s.parallel !== undefined) server.parallel = s.parallel;
  if (cfg?.cacheTypeK) server.cacheTypeK = cfg.cacheTypeK;
  if (cfg?.cacheTypeV) server.cacheTypeV = cfg.cacheTypeV;
  if (cfg?.env) server.env = cfg.env;
  // the GGUF header is read once, for both the launch defaults and the memory estimate
  const metadata = await readModelMetadata(entry.shards[0] ?? entry.path).catch(() => undefined);
  const defaults = metadata ? detectedChoices(metadata, server) : [];
  for (const c of defaults) (server as unknown as Record<string, unknown>)[c.setting] = c.value;
  const extraArgs = [...(input.commonArgs ?? [])];
  if (entry.mmproj) extraArgs.push("--mmproj", entry.mmproj);
  extraArgs.push(...(s.extraArgs ?? []));
  if (extraArgs.length > 0) server.extraArgs = extraArgs;
  const estInput: Parameters<typeof estimateModel>[0] = { files: entry.shards };
  if (metadata) estInput.metadata = metadata;
  if (entry.mmproj) estInput.mmproj = entry.mmproj;
  if (s.parallel !== undefined) estInput.parallel = s.parallel;
  if (s.ctx !== undefined) estInput.ctx = s.ctx;
  if (cfg?.cacheTypeK) estInput.cacheTypeK = cfg.cacheTypeK;
  if (cfg?.cacheTypeV) estInput.cacheTypeV = cfg.cacheTypeV;
  const estimate = await estimateModel(estInput);
  const fingerprint = createHash("sha256").update(JSON.stringify(server)).digest("hex").slice(0, 16);
  const spec: ModelSpec = {
    name: entry.name,
    estimateBytes: estimate.bytes,
    pinned: s.pinned === true,
    ttlMs: s.ttl !== undefined ? s.ttl * 1000 : undefined,
    fingerprint,
  };
  return {
    name: entry.name,
    aliases: entry.aliases,
    entry,
    server,
    estimate,
    spec,
    preload: s.preload === true,
  };
}

/** Resolves a requested model name: exact name, then alias, then a unique case-insensitive match. */
export function resolveModelName(
  models: readonly Pick<ProxyModel, "name" | "aliases">[],
  requested: string,
): string | undefined {
  for (const m of models) if (m.name === requested) return m.name;
  for (const m of models) if (m.aliases.includes(requested)) return m.name;
  const lower = requested.toLowerCase();
  const hits = new Set<string>();
  for (const m of models) {
    if (m.name.toLowerCase() === lower) hits.add(m.name);
    for (const a of m.aliases) if (a.toLowerCase() === lower) hits.add(m.name);
  }
  return hits.size === 1 ? [...hits][0] : undefined;
}
