/**
 * The proxy's models: entries from the config file, the registry, the models folder and the other tools' stores
 * (src/models/sources.ts), each turned
 * into the ServerConfig that launches it, a scheduler spec (memory estimate, pin, TTL, fingerprint of the
 * settings that need a restart) and name resolution (exact name, then alias, then case-insensitive).
 */
import { createHash } from "node:crypto";
import type { ServerConfig } from "../core/config.js";
import { readModelMetadata } from "../gguf/reader.js";
import { configModelsOf, configPresetsOf, type LoadedConfig } from "../models/config-file.js";
import { presetProblems, type Preset } from "../models/presets.js";
import { withDetectedSettings } from "../models/launch-defaults.js";
import { resolveRpcGroups, serverConfigOf, type ProxyConfigFile } from "../models/settings.js";
import { errorMessage, GglibError } from "../core/errors.js";
import { uniqueEndpoints } from "../rpc/endpoint.js";
import { planSplit } from "../rpc/split.js";
import { overriddenFlags, refusedFlags } from "../llama/args.js";
import { chooseSwaFull, type SwaFullChoice } from "../models/swa-full.js";
import { archFacts, type ArchFacts } from "../models/arch-facts.js";
import {
  findModel,
  loadModelSources,
  type Clash,
  type ModelEntry,
  type ModelSources,
  type RegisteredModels,
} from "../models/sources.js";
import { isHfRef, type StoreSelection } from "../models/stores/index.js";
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
  /** Set when the model is split across RPC workers (its `rpc` setting). */
  rpc?: RpcPlan;
  /** A sliding-window model: whether it runs with `--swa-full`, what that costs and why (src/models/swa-full.ts). */
  swaFull?: SwaFullChoice;
  /** The presets that run on this model (src/models/presets.ts); absent when none. */
  presets?: readonly Preset[];
  /** Its architecture and what its layers keep (src/models/arch-facts.ts); absent when the header was not read. */
  arch?: ArchFacts;
  /**
   * A config `hf:` model whose files are not in the Hugging Face cache yet: fetched on first use (hf-fetch.ts);
   * its estimate is unknown until then.
   */
  download?: { ref: string };
}

/** A model's RPC workers and the planned split of its estimate (src/rpc/split.ts). */
export interface RpcPlan {
  workers: string[];
  /** On this host: what the scheduler counts against the memory budget. */
  localBytes: number;
  /** On the workers together (checked against their free memory before each start). */
  remoteBytes: number;
  /** Why the workers could not be read from the settings (an undefined group): the load fails with it. */
  error?: string;
}

export interface Catalog {
  models: ProxyModel[];
  clashes: Clash[];
  warnings: string[];
  /** The other tools' stores read (their folders, and those to watch); absent when none was selected. */
  stores?: ModelSources["stores"];
}

export interface CatalogInput {
  config?: LoadedConfig;
  modelsDir?: string;
  /** Models added with `gglib models add/scan` (between the config and the models folder in precedence), and the
   * presets created over the API. */
  registry?: RegisteredModels & { listPresets?(problems?: string[]): Preset[] };
  /** The other tools' stores to serve in place (src/models/stores selectStores); none when absent. */
  stores?: StoreSelection;
  /** Global TTL in seconds (for the spec's default). */
  ttlS?: number;
  /** Extra args every model gets (e.g. `-lv 4` to measure buffers). */
  commonArgs?: readonly string[];
  /** The CPU's features when models run on it (no GPU): its AMX / CPU_REPACK buffers count (src/models/repack.ts). */
  cpu?: readonly string[];
  /**
   * The memory budget and whether the context cache is on: a sliding-window model gets `--swa-full` when the cache
   * is on and the model still fits with it (src/models/swa-full.ts). Unset: no model gets it from the proxy.
   */
  swaFull?: { budgetBytes: number | undefined; contextCache: boolean; slotCheckpoints?: boolean };
}

export async function buildCatalog(input: CatalogInput): Promise<Catalog> {
  const configModels = input.config ? configModelsOf(input.config) : [];
  const opts: Parameters<typeof loadModelSources>[0] = {};
  if (input.modelsDir) opts.modelsDir = input.modelsDir;
  if (input.registry) opts.registry = input.registry;
  if (input.stores) opts.stores = input.stores;
  if (configModels.length > 0) opts.config = { models: configModels, baseDir: input.config?.baseDir ?? process.cwd() };
  const sources = loadModelSources(opts);
  for (const entry of sources.models) {
    const refused = refusedFlags(entry.settings.extraArgs);
    if (refused.length > 0)
      throw new GglibError(
        "invalid_config",
        `Model '${entry.name}': extraArgs has ${refused.map((r) => r.flag).join(", ")}, which the proxy refuses: ${refused.map((r) => r.why).join("; ")}.`,
        { hint: `Remove ${refused.map((r) => r.flag).join(", ")} from the extraArgs of '${entry.name}'.` },
      );
  }
  const models = await Promise.all(sources.models.map((entry) => toProxyModel(entry, input)));
  const warnings = [...sources.warnings];
  for (const m of models) {
    for (const o of overriddenFlags(m.entry.settings.extraArgs)) {
      warnings.push(
        `${m.name}: extraArgs set ${o.flag}, which the proxy sets itself; llama-server takes the last, so ${o.why}`,
      );
    }
  }
  const presets = [
    ...(input.config ? configPresetsOf(input.config) : []),
    ...(input.registry?.listPresets?.(warnings) ?? []),
  ];
  attachPresets(models, presets, warnings);
  return { models, clashes: sources.clashes, warnings, ...(sources.stores ? { stores: sources.stores } : {}) };
}

/**
 * Puts each preset on the model it runs on. A preset is dropped, with a warning, when its model is not in the
 * catalog, when its name is a model's name or alias, or when an earlier preset has it (the config file's come
 * first, then the registry's).
 */
export function attachPresets(models: ProxyModel[], presets: readonly Preset[], warnings: string[]): void {
  const taken = new Set<string>();
  for (const m of models) for (const n of [m.name, ...m.aliases]) taken.add(n.toLowerCase());
  const seen = new Map<string, Preset>();
  const byModel = new Map<ProxyModel, Preset[]>();
  for (const p of presets) {
    const key = p.name.toLowerCase();
    const problems = presetProblems(p);
    if (problems.length > 0) {
      warnings.push(`preset ${p.name} (${p.source}) is not used: ${problems.join("; ")}`);
      continue;
    }
    if (taken.has(key)) {
      warnings.push(`preset ${p.name} (${p.source}) is not used: a model has that name or alias; rename the preset`);
      continue;
    }
    const first = seen.get(key);
    if (first) {
      warnings.push(
        `preset ${p.name} (${p.source}) is not used: the ${first.source === "config" ? "config file" : "registry"} has a preset of that name, which wins`,
      );
      continue;
    }
    const base = findModel(models, p.model);
    if (!base) {
      warnings.push(`preset ${p.name} (${p.source}) is not used: its model "${p.model}" is not in the catalog`);
      continue;
    }
    seen.set(key, p);
    byModel.set(base, [...(byModel.get(base) ?? []), { ...p, model: base.name }]);
  }
  for (const [m, list] of byModel) m.presets = list;
}

async function toProxyModel(entry: ModelEntry, input: CatalogInput): Promise<ProxyModel> {
  // a registry model may name an rpcGroups entry of the config file (config models have theirs resolved already)
  let rpcError: string | undefined;
  if (typeof entry.settings.rpc === "string") {
    try {
      entry = {
        ...entry,
        settings: {
          ...entry.settings,
          rpc: resolveRpcGroups(entry.settings.rpc, rpcGroupsOf(input.config?.config), entry.name),
        },
      };
    } catch (e) {
      rpcError = errorMessage(e);
    }
  }
  const s = entry.settings;
  let workers: string[] | undefined;
  if (Array.isArray(s.rpc)) {
    try {
      workers = uniqueEndpoints(s.rpc).map((e) => e.text);
    } catch (e) {
      rpcError = errorMessage(e);
    }
  }
  // the GGUF header is read once, for both the launch defaults and the memory estimate
  const metadata = await readModelMetadata(entry.shards[0] ?? entry.path).catch(() => undefined);
  const { config: detected } = withDetectedSettings(
    { ...serverConfigOf(entry, input.commonArgs), metrics: true },
    metadata,
  );
  // each worker once, as written by parseEndpoint; none when they could not be read (the load fails with why)
  const server = workers ? { ...detected, rpc: workers } : rpcError ? { ...detected, rpc: undefined } : detected;
  if (server.rpc === undefined) delete server.rpc;
  // llama-server prints its buffer sizes per device (this host's, each worker's) only at -lv 4: the split in
  // /api/status and the measured local share come from those lines
  const extra = server.extraArgs ?? [];
  if (workers && !extra.some((a) => /^(-lv|--verbosity|--log-verbosity|-v|--verbose|--log-verbose)$/.test(a)))
    server.extraArgs = ["-lv", "4", ...extra];
  const estInput: Parameters<typeof estimateModel>[0] = { files: entry.shards };
  if (metadata) estInput.metadata = metadata;
  if (entry.mmproj) estInput.mmproj = entry.mmproj;
  if (s.parallel !== undefined) estInput.parallel = s.parallel;
  if (s.ctx !== undefined) estInput.ctx = s.ctx;
  if (s.cacheTypeK) estInput.cacheTypeK = s.cacheTypeK;
  if (s.cacheTypeV) estInput.cacheTypeV = s.cacheTypeV;
  if (input.cpu && !workers && !rpcError) estInput.cpu = input.cpu;
  // split across RPC workers: the layers -ngl offloads (all by default) go to the workers
  if (workers || rpcError) estInput.gpuLayers = s.gpuLayers ?? -1;
  // the user's own --swa-full (extraArgs or swaFull: true) is counted whatever the proxy would choose
  if (server.swaFull === true || server.extraArgs?.includes("--swa-full")) estInput.swaFull = true;
  let estimate = await estimateModel(estInput);
  const choose = input.swaFull && !workers && !rpcError && estimate.swa;
  // the need with --swa-full: its KV cache and its larger attention mask
  const full = choose && !estInput.swaFull ? await estimateModel({ ...estInput, swaFull: true }) : undefined;
  const swaFull =
    input.swaFull && choose
      ? chooseSwaFull({
          estimate: { totalBytes: estimate.bytes, ...(estimate.swa ? { swa: estimate.swa } : {}) },
          fullBytes: full?.bytes,
          setting: s.swaFull,
          extraArgs: server.extraArgs,
          env: server.env,
          budgetBytes: input.swaFull.budgetBytes,
          contextCache: input.swaFull.contextCache,
          slotCheckpoints: input.swaFull.slotCheckpoints,
        })
      : undefined;
  if (swaFull?.on && full) {
    if (!server.extraArgs?.includes("--swa-full")) server.swaFull = true;
    estimate = full;
  }
  let rpc: RpcPlan | undefined;
  if (workers || rpcError) {
    const plan = planSplit({ hostBytes: estimate.hostBytes, gpuBytes: estimate.offloadBytes });
    rpc = { workers: workers ? [...workers] : [], ...plan, ...(rpcError ? { error: rpcError } : {}) };
  }
  const fingerprint = createHash("sha256").update(JSON.stringify(server)).digest("hex").slice(0, 16);
  const spec: ModelSpec = {
    name: entry.name,
    // an RPC model counts only its share on this host; the workers' share is checked against their memory
    estimateBytes: rpc ? rpc.localBytes : estimate.bytes,
    ...(rpc && rpc.workers.length > 0 ? { rpc: rpc.workers } : {}),
    pinned: s.pinned === true,
    ttlMs: s.ttl !== undefined ? s.ttl * 1000 : undefined,
    fingerprint,
  };
  const pm: ProxyModel = {
    name: entry.name,
    aliases: entry.aliases,
    entry,
    server,
    estimate,
    spec,
    preload: s.preload === true,
  };
  if (rpc) pm.rpc = rpc;
  if (swaFull) pm.swaFull = swaFull;
  if (metadata) pm.arch = archFacts(metadata);
  if (entry.source === "config" && isHfRef(entry.path)) pm.download = { ref: entry.path };
  return pm;
}

function rpcGroupsOf(config: ProxyConfigFile | undefined): Record<string, string[]> | undefined {
  return config?.rpcGroups;
}

/** Resolves a requested model name by the one rule (src/models/sources.ts findModel). */
export function resolveModelName(
  models: readonly Pick<ProxyModel, "name" | "aliases">[],
  requested: string,
): string | undefined {
  return findModel(models, requested)?.name;
}
