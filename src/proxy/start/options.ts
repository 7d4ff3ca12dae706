/**
 * What startProxy is given and what it reports: its options, the settings they come to (flags > config file >
 * defaults), the open-network check, the memory budget and the start report. Pure but for the budget's probe.
 */
import type { StoreSelection } from "../../models/stores/index.js";
import type { SwaFullChoice } from "../../models/swa-full.js";
import { DEFAULT_HOST } from "../../core/config.js";
import { GglibError } from "../../core/errors.js";
import type { OrphanSweep, ProcessRunner } from "../../core/ports.js";
import { parseSize } from "../../core/units.js";
import type { PullOptions } from "../../hub/pull.js";
import { resolvePath, type LoadedConfig } from "../../models/config-file.js";
import type { Registry } from "../../models/registry.js";
import type { PeerConfig } from "../../models/settings.js";
import type { RunnerOptions } from "../../runner/llama-server-runner.js";
import type { SystemProbe } from "../../system/types.js";
import type { Catalog } from "../catalog.js";
import type { ContextCache } from "../context/context-cache.js";
import { autoBudget } from "../memory.js";

/** The proxy's port when neither a flag nor the config file names one. */
export const DEFAULT_PROXY_PORT = 8080;

export interface ProxyOptions {
  configPath?: string;
  modelsDir?: string;
  /** Registered models (`gglib models add`); the CLI passes the user's registry when it exists. */
  registry?: Pick<Registry, "list">;
  /**
   * Other tools' model stores to serve in place, read-only (src/models/stores selectStores; the CLI passes every
   * store at its default place less those turned off). None when absent. Watched for changes (debounced).
   */
  stores?: StoreSelection;
  /** Quiet period of the stores' watch before a reload, ms (default 1000). */
  storesDebounceMs?: number;
  /**
   * Cooldowns after a failed `hf:` fetch, ms (default 30 s, 2 min, 10 min, the last repeating): the first request
   * after one tries again.
   */
  hfRetryDelaysMs?: readonly number[];
  host?: string;
  port?: number;
  maxModels?: number;
  /** "auto", a size ("24GiB") or bytes. */
  memoryBudget?: string | number;
  /** Global idle TTL, seconds (0 = never). */
  ttlS?: number;
  apiKeys?: string[];
  insecure?: boolean;
  corsOrigins?: string[];
  bodyLimit?: string | number;
  defaultModel?: string;
  drainTimeoutS?: number;
  loadTimeoutS?: number;
  queueTimeoutS?: number;
  maxQueue?: number;
  /** Disk budget of saved KV caches: "auto", a size ("20GiB"), bytes, or 0 / false = off (default auto). */
  contextCache?: string | number | false;
  /** Folder of saved KV caches (default <cache dir>/kv-context, or GGLIB_CONTEXT_CACHE_DIR). */
  contextCacheDir?: string;
  /** Bounds of the saves before a stop / the restores after a load, ms (default 30 000 each). */
  contextSaveTimeoutMs?: number;
  /** Save every used slot, even one cheaper to prefill again than to save and restore (config contextCacheSaveAll). */
  contextCacheSaveAll?: boolean;
  contextRestoreTimeoutMs?: number;
  /** Interval of the `: loading` comments while a stream waits, ms. */
  keepAliveMs?: number;
  /** Slow clients: time to send the request headers / the whole request, ms (default 30 000 / 120 000). */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Stop grace for llama-server, ms. */
  stopGraceMs?: number;
  /** Use this runner (tests); otherwise a LlamaServerRunner with `runnerOptions`. */
  runner?: ProcessRunner;
  runnerOptions?: RunnerOptions;
  /** Reload when the config file changes (default true when a config file is used). */
  watchConfig?: boolean;
  probe?: SystemProbe;
  log?: (line: string) => void;
  /** Hub settings for Ollama's POST /api/pull (default: HF_ENDPOINT / HF_TOKEN, else huggingface.co). */
  pull?: Pick<PullOptions, "hubUrl" | "token" | "env" | "download">;
  /** The dashboard's built files (default dist/ui of this package). */
  uiDir?: string;
  /** Requests kept for GET /api/activity (default 1000). */
  activityCapacity?: number;
  /** Other hosts to route requests to (replaces the config file's `peers`). */
  peers?: Record<string, PeerConfig>;
  /** The environment `apiKeyEnv` / `${env.NAME}` of the peers read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface StartReport {
  models: Array<{
    name: string;
    aliases: string[];
    source: string;
    path: string;
    estimatedBytes: number;
    pinned: boolean;
    preload: boolean;
    /** A model split across RPC workers: its share here (counted against the budget) and on the workers. */
    rpc?: { workers: string[]; localBytes: number; remoteBytes: number };
    /** A sliding-window model: `--swa-full` or not, its cost and why (src/models/swa-full.ts). */
    swaFull?: SwaFullChoice;
  }>;
  clashes: string[];
  warnings: string[];
  budget: { bytes: number | null; source: string };
  maxModels: number | null;
  /** The context cache (saved KV caches): its folder and disk budget, or why it is off. */
  contextCache: { dir: string; budgetBytes: number } | { off: string };
  /** The peers, as their first discovery found them. */
  peers: Array<{ name: string; url: string; kind: string | null; up: boolean; models: string[]; error: string | null }>;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"]);

/** The settings in effect: flags > config file > defaults. */
export interface Settings {
  host: string;
  port: number;
  apiKeys: string[];
  insecure: boolean;
  modelsDir: string | undefined;
  ttlS: number;
  maxModels: number | undefined;
  budget: string | number;
  maxQueue: number | undefined;
  queueTimeoutS: number | undefined;
  drainTimeoutS: number | undefined;
  loadTimeoutS: number | undefined;
  bodyLimit: string | number | undefined;
  corsOrigins: string[] | undefined;
  defaultModel: string | undefined;
}

export function resolveSettings(o: ProxyOptions, loaded: LoadedConfig | undefined): Settings {
  const file = loaded?.config ?? {};
  return {
    host: o.host ?? file.host ?? DEFAULT_HOST,
    port: o.port ?? file.port ?? DEFAULT_PROXY_PORT,
    apiKeys: o.apiKeys ?? file.apiKeys ?? [],
    insecure: o.insecure ?? file.insecure ?? false,
    modelsDir: o.modelsDir ?? (file.modelsDir && loaded ? resolvePath(loaded.baseDir, file.modelsDir) : undefined),
    ttlS: o.ttlS ?? file.ttl ?? 0,
    maxModels: o.maxModels ?? file.maxModels,
    budget: o.memoryBudget ?? file.memoryBudget ?? "auto",
    maxQueue: o.maxQueue ?? file.maxQueue,
    queueTimeoutS: o.queueTimeoutS ?? file.queueTimeout,
    drainTimeoutS: o.drainTimeoutS ?? file.drainTimeout,
    loadTimeoutS: o.loadTimeoutS ?? file.loadTimeout,
    bodyLimit: o.bodyLimit ?? file.bodyLimit,
    corsOrigins: o.corsOrigins ?? file.corsOrigins,
    defaultModel: o.defaultModel ?? file.defaultModel,
  };
}

export function refuseOpenNetwork(s: Settings): void {
  // an empty key (`--api-key ''`, an unset variable) would count as "a key is set" and protect nothing
  if (s.apiKeys.some((k) => k.trim() === "")) {
    throw new GglibError("invalid_config", "An API key is empty (--api-key '' or an unset variable?).", {
      hint: 'Pass a non-empty key (--api-key "$GGLIB_KEY" with the variable set), or no --api-key at all.',
    });
  }
  if (LOOPBACK.has(s.host) || s.apiKeys.length > 0 || s.insecure) return;
  throw new GglibError(
    "invalid_config",
    `Refusing to listen on ${s.host} without an API key: anyone on the network could use your models.`,
    {
      hint: "Pass --api-key KEY (or apiKeys in the config), bind 127.0.0.1, or pass --insecure if you really mean it.",
    },
  );
}

export interface Budget {
  bytes: number | undefined;
  source: string;
  /** Measure a running server's need by its RSS (no discrete GPU) rather than its GPU memory. */
  measureRss: boolean;
}

export async function memoryBudget(setting: string | number, probe: SystemProbe): Promise<Budget> {
  if (setting === "auto") {
    try {
      const b = await autoBudget(probe);
      return { bytes: b.bytes, source: `auto: ${b.source}`, measureRss: !b.gpu };
    } catch (e) {
      return {
        bytes: undefined,
        source: `auto: could not read free memory (${(e as Error).message}); no memory limit`,
        measureRss: false,
      };
    }
  }
  // measure what servers use the way the machine counts it: RSS without a discrete GPU, else GPU memory
  const machine = await autoBudget(probe).catch(() => undefined);
  return { bytes: parseSize(setting), source: "configured", measureRss: !machine?.gpu };
}

export function startReport(
  catalog: Catalog,
  s: Settings,
  budget: Budget,
  swept: OrphanSweep | undefined,
  context: { cache?: ContextCache; off?: string },
): StartReport {
  const report: StartReport = {
    models: catalog.models.map((m) => ({
      name: m.name,
      aliases: m.aliases,
      source: m.entry.source,
      path: m.entry.path,
      estimatedBytes: m.estimate.bytes,
      pinned: m.spec.pinned === true,
      preload: m.preload,
      ...(m.rpc
        ? { rpc: { workers: m.rpc.workers, localBytes: m.rpc.localBytes, remoteBytes: m.rpc.remoteBytes } }
        : {}),
      ...(m.swaFull ? { swaFull: m.swaFull } : {}),
    })),
    clashes: catalog.clashes.map((c) => c.message),
    warnings: [...catalog.warnings],
    budget: { bytes: budget.bytes ?? null, source: budget.source },
    maxModels: s.maxModels ?? null,
    contextCache: context.cache
      ? { dir: context.cache.store.root, budgetBytes: context.cache.budgetBytes }
      : { off: context.off ?? "off" },
    peers: [],
  };
  if (swept && swept.killed.length > 0)
    report.warnings.push(`stopped ${swept.killed.length} llama-server(s) left over from an earlier run`);
  const d = s.defaultModel;
  if (d && !catalog.models.some((m) => m.name === d || m.aliases.includes(d)))
    report.warnings.push(`defaultModel '${d}' is not one of the models`);
  return report;
}

/** Seconds (a setting) as ms. */
export function secs(s: number | undefined): number | undefined {
  return s === undefined ? undefined : Math.round(s * 1000);
}
