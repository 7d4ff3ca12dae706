/**
 * `startProxy()`: one OpenAI-compatible endpoint for every local model. Builds the catalog (config file + models
 * folder), the memory budget, the scheduler's controller on a ProcessRunner, metrics and the HTTP server; reloads
 * the catalog on demand (SIGHUP / file change, wired by the caller or `watch`); shuts down cleanly.
 */
import { mkdirSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { GglibError } from "../core/errors.js";
import { paths } from "../core/paths.js";
import type { ProcessRunner } from "../core/ports.js";
import { Registry } from "../models/registry.js";
import type { PullOptions } from "../hub/pull.js";
import { LlamaServerRunner, type RunnerOptions } from "../runner/llama-server-runner.js";
import { cpuFeaturesForEstimates, defaultSystemProbe } from "../system/probe.js";
import type { SystemProbe } from "../system/types.js";
import { buildCatalog, type Catalog, type CatalogInput, type ProxyModel } from "./catalog.js";
import { loadConfigFile, resolvePath, type LoadedConfig } from "../models/config-file.js";
import { ModelController, type ModelHooks } from "./controller.js";
import { defaultBudgetBytes } from "./context/budget.js";
import { ContextCache, diskFreeBytes } from "./context/context-cache.js";
import { ContextMetrics } from "./context/metrics.js";
import { parseSize } from "../core/units.js";
import { autoBudget } from "./memory.js";
import { ProxyMetrics } from "./metrics.js";
import { ProxyServer, type ProxyServerOptions } from "./server.js";
import { ActivityLog } from "./activity.js";
import type { EffectiveSettings } from "./effective-config.js";
import { ProxyLog } from "./proxy-log.js";
import { dashboardRoutes, type DashboardRoutes, type ReloadRecord } from "./routes/dashboard.js";
import { ROUTE_MODULES } from "./routes/index.js";
import { ollamaRoutes, type OllamaExtras } from "./routes/ollama.js";
import { uiRoutes } from "./routes/ui.js";
import type { PeerConfig } from "../models/settings.js";
import { resolvePeers, type PeerSpec } from "../peers/config.js";
import { PeerClient } from "../peers/client.js";
import { PeerRouter } from "./peer-router.js";
import { RpcChecker } from "./rpc.js";
import { watchStores, type StoreWatcher } from "../models/stores/watch.js";
import { isHfRef, type StoreSelection } from "../models/stores/index.js";
import { HfFetcher } from "./hf-fetch.js";

export { ProxyServer } from "./server.js";
export { ModelController } from "./controller.js";
export { Scheduler } from "./scheduler.js";
export type { ModelSpec, SchedulerAction, SchedulerEvent, SchedulerOptions, ModelStatus } from "./scheduler.js";
export { buildCatalog, resolveModelName } from "./catalog.js";
export { parseConfig, loadConfigFile } from "../models/config-file.js";
export { configJsonSchema, ProxyConfigSchema } from "../models/settings.js";
export { parseSize } from "../core/units.js";
export { ActivityLog, type ActivityRecord } from "./activity.js";
export { UI_CSP } from "./routes/ui.js";
export type { ReloadRecord } from "./routes/dashboard.js";

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
  /** Waits between the tries of a failed `hf:` fetch, ms (default 30 s, 2 min, 10 min; then given up). */
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

export interface ReloadReport {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  warnings: string[];
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

export interface RunningProxy {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly controller: ModelController;
  readonly server: ProxyServer;
  readonly report: StartReport;
  /** Reload the config file and rescan the models folder; `trigger` is recorded for the dashboard. */
  reload(trigger?: string): Promise<ReloadReport>;
  /** Drain requests (up to drainMs), stop every llama-server, close the server. */
  close(drainMs?: number): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"]);

export async function startProxy(o: ProxyOptions): Promise<RunningProxy> {
  // the proxy's own log, kept for the dashboard as well as written where the caller says
  const proxyLog = new ProxyLog();
  const log = (line: string) => {
    proxyLog.write(line);
    o.log?.(line);
  };
  const config = o.configPath ? new ConfigFile(o.configPath) : undefined;
  const settings = resolveSettings(o, config?.loaded);
  refuseOpenNetwork(settings);
  // the peers' settings are checked before anything starts (a bad URL or a missing key variable stops here)
  const peerSpecs = resolvePeers(o.peers ?? config?.loaded.config.peers, o.env ?? process.env);
  // End llama-servers orphaned by an earlier run first: they hold memory the auto budget would count as used.
  const { runner, swept } = await createRunner(o, config?.loaded);
  const probe = o.probe ?? defaultSystemProbe();
  const budget = await memoryBudget(settings.budget, probe);
  const cpu = await cpuFeaturesForEstimates(probe);
  const catalogInput = (): CatalogInput => ({
    ...(cpu ? { cpu } : {}),
    config: config?.loaded,
    modelsDir: settings.modelsDir,
    ttlS: settings.ttlS,
    ...(o.registry ? { registry: o.registry } : {}),
    ...(o.stores ? { stores: o.stores } : {}),
  });
  const catalog = await buildCatalog(catalogInput());
  const context = contextCache(o, config?.loaded, runner, log);
  const { controller, metrics } = createController(runner, catalog, settings, budget, o, log, context.cache);
  if (context.cache) {
    const cache = context.cache;
    cache.setMetrics(new ContextMetrics(metrics.registry, () => cache.diskBytes()));
    cache.on((e) => controller.publish(e));
    cache.sweep();
  }
  const peers = await startPeers(peerSpecs, controller, budget, log);
  peers?.registerMetrics(metrics);
  const report = startReport(catalog, settings, budget, swept, context);
  if (peers) {
    report.peers = peers.status().map((p) => ({
      name: p.name,
      url: p.url,
      kind: p.kind,
      up: p.up,
      models: p.models.map((m) => m.id),
      error: p.lastError,
    }));
    report.clashes.push(...peers.clashes());
    for (const p of report.peers) if (!p.up) report.warnings.push(`peer ${p.name} is down: ${p.error ?? "?"}`);
  }
  // a store that changes under us (a pull in Ollama) is picked up by a reload; its folders follow each reload
  let storeWatch: StoreWatcher | undefined;
  // config models `hf:<user>/<repo>[:<quant>]` not in the hub cache yet are fetched into it (hf-fetch.ts)
  let hfFetcher: HfFetcher | undefined;
  const reloads = recordedReloads(
    catalogReloader(
      controller,
      catalog,
      config,
      catalogInput,
      (next) => {
        context.cache?.sweep();
        storeWatch?.update(next.stores?.watch ?? []);
        hfFetcher?.want(missingHfModels(next));
      },
      peersChanged(o, config),
    ),
  );
  if (o.stores && catalog.stores) {
    storeWatch = watchStores(
      (stores) => {
        reloads.reload(`store changed: ${stores.join(", ")}`).then(
          (r) => {
            if (r.added.length || r.removed.length || r.changed.length)
              log(
                `reload (${stores.join(", ")} changed): +${r.added.length} -${r.removed.length} ~${r.changed.length}`,
              );
          },
          (e: unknown) => log(`reload after a store change failed: ${(e as Error).message}`),
        );
      },
      { ...(o.storesDebounceMs !== undefined ? { debounceMs: o.storesDebounceMs } : {}), log },
    );
    storeWatch.update(catalog.stores.watch);
  }
  const hubCache = o.stores?.["hf-cache"]?.[0];
  if (hubCache !== undefined) {
    hfFetcher = new HfFetcher({
      pull: async (ref, signal) =>
        (await import("../hub/pull.js")).pullModel(ref, {
          ...(o.pull ?? {}),
          signal,
          modelsDir: hubCache,
          hfCache: true,
          probe,
        }),
      fetched: (ref) => {
        reloads
          .reload(`fetched ${ref}`)
          .catch((e: unknown) => log(`reload after fetching ${ref} failed: ${(e as Error).message}`));
      },
      log,
      ...(o.hfRetryDelaysMs ? { retryDelaysMs: o.hfRetryDelaysMs } : {}),
    });
    hfFetcher.want(missingHfModels(catalog));
  }
  const listening: { port?: number } = {};
  const dashboard = createDashboard(o, {
    controller,
    proxyLog,
    probe,
    runner,
    settings,
    budget,
    reloads,
    listening,
    peers: peerSpecs,
  });
  const ollama = ollamaExtras(o, settings, budget, probe, () => reloads.reload("ollama pull"));
  const server = createServer(controller, metrics, settings, budget, o, log, ollama, {
    activity: new ActivityLog(o.activityCapacity ?? 1000),
    routes: [uiRoutes(o.uiDir), dashboard],
    ...(peers ? { peers } : {}),
  });
  const addr = await listen(server, controller, settings).catch(async (e: unknown) => {
    await peers?.close();
    throw e;
  });
  listening.port = addr.port;
  preload(controller, catalog.models, log);
  const reload = reloads.reload;
  const stopWatching =
    config && (o.watchConfig ?? true) ? watchConfig(config, () => reload("config file changed"), log) : () => {};

  let closing: Promise<void> | undefined;
  return {
    url: `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`,
    host: settings.host,
    port: addr.port,
    controller,
    server,
    report,
    reload,
    close(drainMs = 10_000) {
      closing ??= (async () => {
        stopWatching();
        storeWatch?.close();
        hfFetcher?.close();
        dashboard.close();
        const serverClosed = server.close(drainMs + 1_000);
        await controller.shutdown(drainMs);
        await serverClosed;
      })();
      return closing;
    },
  };
}

// ---- the steps ---------------------------------------------------------------------------------------------

/** The config's `hf:` models whose files are not in the hub cache (their path is still the reference). */
function missingHfModels(c: Catalog): string[] {
  return c.models.filter((m) => m.entry.source === "config" && isHfRef(m.entry.path)).map((m) => m.entry.path);
}

/** The config file as last read, with the stamp of that read (a change made later counts as a change). */
class ConfigFile {
  loaded: LoadedConfig;
  stamp: string;

  constructor(readonly path: string) {
    this.stamp = fileStamp(path);
    this.loaded = loadConfigFile(path);
  }

  /** Reads the file again (throws on a bad file, keeping the previous one). */
  reread(): void {
    this.stamp = fileStamp(this.path);
    this.loaded = loadConfigFile(this.path);
  }
}

function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.mtimeMs}:${st.size}`;
  } catch {
    return "missing";
  }
}

/** The settings in effect: flags > config file > defaults. */
interface Settings {
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

function resolveSettings(o: ProxyOptions, loaded: LoadedConfig | undefined): Settings {
  const file = loaded?.config ?? {};
  return {
    host: o.host ?? file.host ?? "127.0.0.1",
    port: o.port ?? file.port ?? 8080,
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

function refuseOpenNetwork(s: Settings): void {
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

async function createRunner(
  o: ProxyOptions,
  loaded: LoadedConfig | undefined,
): Promise<{ runner: ProcessRunner; swept: Swept | undefined }> {
  let runner = o.runner;
  if (!runner) {
    const runnerOptions: RunnerOptions = { stopGraceMs: o.stopGraceMs ?? 10_000, ...(o.runnerOptions ?? {}) };
    if (!runnerOptions.binaryPath && loaded?.config.llamaServer)
      runnerOptions.configuredBinary = resolvePath(loaded.baseDir, loaded.config.llamaServer);
    runner = new LlamaServerRunner(runnerOptions);
  }
  return { runner, swept: runner instanceof LlamaServerRunner ? await runner.sweep() : undefined };
}

type Swept = Awaited<ReturnType<LlamaServerRunner["sweep"]>>;

interface Budget {
  bytes: number | undefined;
  source: string;
  /** Measure a running server's need by its RSS (no discrete GPU) rather than its GPU memory. */
  measureRss: boolean;
}

async function memoryBudget(setting: string | number, probe: SystemProbe): Promise<Budget> {
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

function createController(
  runner: ProcessRunner,
  catalog: Catalog,
  s: Settings,
  budget: Budget,
  o: ProxyOptions,
  log: (line: string) => void,
  context: ContextCache | undefined,
): { controller: ModelController; metrics: ProxyMetrics } {
  const metrics: ProxyMetrics = new ProxyMetrics({
    // read only when /metrics is scraped, after the controller exists
    snapshot: () =>
      controller.status().map((st) => ({
        name: st.name,
        state: st.state,
        queued: st.queued,
        inFlight: st.inFlight,
        bytes: st.measuredBytes ?? st.estimatedBytes,
      })),
  });
  const controller: ModelController = new ModelController(
    runner,
    catalog.models,
    {
      maxModels: s.maxModels,
      budgetBytes: budget.bytes,
      ttlMs: s.ttlS * 1000,
      maxQueuePerModel: s.maxQueue,
      queueTimeoutMs: secs(s.queueTimeoutS),
      drainTimeoutMs: secs(s.drainTimeoutS),
      loadTimeoutMs: secs(s.loadTimeoutS),
      stopGraceMs: o.stopGraceMs,
      measureRss: budget.measureRss,
      log,
      ...(context ? { hooks: contextHooks(context) } : {}),
      rpc: new RpcChecker(),
    },
    metrics,
  );
  return { controller, metrics };
}

function startReport(
  catalog: Catalog,
  s: Settings,
  budget: Budget,
  swept: Swept | undefined,
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

/**
 * The peers (src/peers/), when configured: their clients, a first discovery of each (bounded by its health
 * timeout, run side by side), then polling; the router that places requests across this host and them.
 */
async function startPeers(
  specs: readonly PeerSpec[],
  controller: ModelController,
  budget: Budget,
  log: (line: string) => void,
): Promise<PeerRouter | undefined> {
  if (specs.length === 0) return undefined;
  const clients = specs.map(
    (s) =>
      new PeerClient(s, log, (c) =>
        controller.publish({ type: "peer", peer: c.name, up: c.state.up, models: c.models().length, at: Date.now() }),
      ),
  );
  await Promise.all(clients.map((c) => c.start()));
  return new PeerRouter(clients, controller, () =>
    budget.bytes === undefined ? undefined : Math.max(0, budget.bytes - controller.scheduler.usedBytes()),
  );
}

function createServer(
  controller: ModelController,
  metrics: ProxyMetrics,
  s: Settings,
  budget: Budget,
  o: ProxyOptions,
  log: (line: string) => void,
  ollama: OllamaExtras,
  /** The dashboard's route modules (ahead of ROUTE_MODULES) and the activity ring. */
  extra: { routes: NonNullable<ProxyServerOptions["routes"]>; activity: ActivityLog; peers?: PeerRouter },
): ProxyServer {
  const startedAt = Date.now();
  return new ProxyServer(controller, metrics, {
    host: s.host,
    port: s.port,
    apiKeys: s.apiKeys,
    ...(s.corsOrigins ? { corsOrigins: s.corsOrigins } : {}),
    ...(s.bodyLimit !== undefined ? { bodyLimit: parseSize(s.bodyLimit) } : {}),
    ...(s.defaultModel ? { defaultModel: s.defaultModel } : {}),
    ...(o.keepAliveMs ? { keepAliveMs: o.keepAliveMs } : {}),
    ...(o.headersTimeoutMs ? { headersTimeoutMs: o.headersTimeoutMs } : {}),
    ...(o.requestTimeoutMs ? { requestTimeoutMs: o.requestTimeoutMs } : {}),
    info: () => ({
      uptimeS: Math.round((Date.now() - startedAt) / 1000),
      budget: { bytes: budget.bytes ?? null, source: budget.source, usedBytes: controller.scheduler.usedBytes() },
      maxModels: s.maxModels ?? null,
    }),
    log,
    activity: extra.activity,
    ...(extra.peers ? { peers: extra.peers } : {}),
    // the dashboard's modules first; Ollama's routes wired to this proxy's pull, reload and memory kind
    routes: [...extra.routes, ...ROUTE_MODULES.map((m) => (m.name === "ollama" ? ollamaRoutes(ollama) : m))],
  });
}

/** What Ollama's API needs from startProxy: POST /api/pull (gglib pull into the models folder), reload, GPU or not. */
function ollamaExtras(
  o: ProxyOptions,
  s: Settings,
  budget: Budget,
  probe: SystemProbe,
  reload: () => Promise<unknown>,
): OllamaExtras {
  const modelsDir = s.modelsDir;
  return {
    onGpu: () => !budget.measureRss,
    reload,
    ...(o.registry instanceof Registry ? { registry: o.registry } : {}),
    ...(modelsDir
      ? {
          // the hub client (and @huggingface/hub, ~10 MiB resident) loads on the first pull, not with the proxy
          pull: async (ref: string, p: Pick<PullOptions, "signal" | "onProgress">) =>
            (await import("../hub/pull.js")).pullModel(ref, {
              ...(o.pull ?? {}),
              ...p,
              modelsDir,
              probe,
              // registered when the proxy has the registry open; else the models-folder scan finds the files
              ...(o.registry instanceof Registry ? { registry: o.registry } : {}),
            }),
        }
      : {}),
  };
}

/** Listens; on failure stops what was started and says why (a port in use, most often). */
async function listen(server: ProxyServer, controller: ModelController, s: Settings): Promise<AddressInfo> {
  try {
    return await server.listen();
  } catch (e) {
    await controller.shutdown(0);
    if ((e as NodeJS.ErrnoException).code === "EADDRINUSE") {
      throw new GglibError("port_in_use", `Port ${s.port} on ${s.host} is already in use.`, {
        hint: "Pick another with --port, or stop what is using it.",
      });
    }
    throw e;
  }
}

function preload(controller: ModelController, models: readonly ProxyModel[], log: (line: string) => void): void {
  for (const m of models) {
    if (!m.preload) continue;
    controller.load(m.name).then(
      () => log(`preloaded ${m.name}`),
      (e: unknown) => log(`preload of ${m.name} failed: ${(e as Error).message}`),
    );
  }
}

/** Reloads the catalog (config file + models folder), one reload at a time; new preload models are loaded. */
function catalogReloader(
  controller: ModelController,
  initial: Catalog,
  config: ConfigFile | undefined,
  catalogInput: () => CatalogInput,
  reloaded: (next: Catalog) => void,
  /** Warnings about what a reload does not apply (the peers). */
  notes: () => string[] = () => [],
): () => Promise<ReloadReport> {
  let current = initial;
  let reloading: Promise<ReloadReport> | undefined;
  const once = async (): Promise<ReloadReport> => {
    config?.reread();
    const next = await buildCatalog(catalogInput());
    const diff = diffCatalogs(current.models, next.models);
    controller.updateCatalog(next.models);
    current = next;
    reloaded(next);
    for (const m of next.models) {
      if (m.preload && diff.added.includes(m.name)) controller.load(m.name).catch(() => {});
    }
    return { ...diff, warnings: [...next.warnings, ...next.clashes.map((c) => c.message), ...notes()] };
  };
  return async () => {
    if (reloading) return reloading;
    reloading = once();
    try {
      return await reloading;
    } finally {
      reloading = undefined;
    }
  };
}

/** A reload's warning when the config file's peers changed: they are read at start only. */
function peersChanged(o: ProxyOptions, config: ConfigFile | undefined): () => string[] {
  if (o.peers || !config) return () => [];
  const atStart = JSON.stringify(config.loaded.config.peers ?? {});
  return () =>
    JSON.stringify(config.loaded.config.peers ?? {}) === atStart
      ? []
      : ["the peers changed in the config file: restart the proxy to apply them (peers are read at start)"];
}

/** Reloads with the last one's outcome kept (the dashboard shows it, errors included), and who asked for it. */
function recordedReloads(reload: () => Promise<ReloadReport>): {
  reload: (trigger?: string) => Promise<ReloadReport>;
  last: () => ReloadRecord | undefined;
} {
  let last: ReloadRecord | undefined;
  return {
    last: () => last,
    async reload(trigger = "reload()") {
      const at = new Date().toISOString();
      try {
        const r = await reload();
        last = { at, ok: true, trigger, ...r, errors: [] };
        return r;
      } catch (e) {
        const why = e instanceof GglibError ? e.describe() : String(e);
        last = { at, ok: false, trigger, added: [], removed: [], changed: [], warnings: [], errors: [why] };
        throw e;
      }
    },
  };
}

/**
 * The dashboard's API (routes/dashboard.ts) over this proxy: its log (with the models' state changes and
 * crashes), the probe, the binary, the effective settings and the recorded reloads.
 */
function createDashboard(
  o: ProxyOptions,
  p: {
    controller: ModelController;
    proxyLog: ProxyLog;
    probe: SystemProbe;
    runner: ProcessRunner;
    settings: Settings;
    budget: Budget;
    reloads: ReturnType<typeof recordedReloads>;
    listening: { port?: number };
    peers: readonly PeerSpec[];
  },
): DashboardRoutes {
  const { controller, proxyLog, runner, settings: s, budget } = p;
  controller.on((e) => {
    if (e.type === "state") proxyLog.write(`${e.model}: ${e.from} → ${e.to}${e.reason ? ` (${e.reason})` : ""}`);
    else if (e.type === "crash") proxyLog.write(`${e.model}: llama-server exited unexpectedly (${e.reason})`);
  });
  const effective = (): EffectiveSettings => ({
    configPath: o.configPath ?? null,
    modelsDir: s.modelsDir ?? null,
    host: s.host,
    port: p.listening.port ?? s.port,
    apiKeys: s.apiKeys.length,
    insecure: s.insecure,
    corsOrigins: [...(s.corsOrigins ?? [])],
    defaultModel: s.defaultModel ?? null,
    maxModels: s.maxModels ?? null,
    memoryBudget: { setting: String(s.budget), bytes: budget.bytes ?? null, source: budget.source },
    ttlS: s.ttlS,
    drainTimeoutS: s.drainTimeoutS ?? null,
    queueTimeoutS: s.queueTimeoutS ?? null,
    loadTimeoutS: s.loadTimeoutS ?? null,
    maxQueue: s.maxQueue ?? null,
    bodyLimitBytes: s.bodyLimit !== undefined ? parseSize(s.bodyLimit) : null,
    llamaServer: o.runnerOptions?.binaryPath ?? null,
    peers: p.peers.map(
      (x) =>
        `${x.name} → ${x.origin}${x.basePath} (${x.kind}, ${x.apiKey ? "key set" : "no key"}${x.models ? `, models: ${x.models.join(" ")}` : ""}${x.filter ? `, filter: ${x.filter.source}` : ""})`,
    ),
  });
  return dashboardRoutes({
    proxyLog,
    probe: p.probe,
    ...(runner instanceof LlamaServerRunner
      ? {
          binary: async () => {
            const b = await runner.binaryInfo();
            return {
              path: b.path,
              ...(b.caps.version ? { version: b.caps.version } : {}),
              backend: b.caps.backend,
              ...(b.caps.builtWith ? { builtWith: b.caps.builtWith } : {}),
            };
          },
        }
      : {}),
    settings: effective,
    reload: async (trigger) => {
      await p.reloads.reload(trigger).catch(() => {});
      return p.reloads.last()!;
    },
    lastReload: p.reloads.last,
  });
}

/**
 * Reloads when the config file changes, polled against the stamp of the last read (fs.watch misses editors'
 * rename-over writes; watchFile compares with its own first stat, so a write between our read and that stat
 * would be lost). Returns the function that stops watching.
 */
function watchConfig(config: ConfigFile, reload: () => Promise<ReloadReport>, log: (line: string) => void) {
  let timer: NodeJS.Timeout | undefined;
  const watcher = setInterval(() => {
    const now = fileStamp(config.path);
    if (now === config.stamp) return;
    config.stamp = now;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      reload().then(
        (r) => log(`config reloaded: +[${r.added.join(", ")}] -[${r.removed.join(", ")}] ~[${r.changed.join(", ")}]`),
        (e: unknown) =>
          log(
            `config reload failed, keeping the previous models: ${e instanceof GglibError ? e.describe() : String(e)}`,
          ),
      );
    }, 200);
  }, 500);
  watcher.unref();
  return () => {
    clearInterval(watcher);
    if (timer) clearTimeout(timer);
  };
}

/** The context cache, unless turned off (0 / false) or the runner cannot say which llama-server it runs. */
function contextCache(
  o: ProxyOptions,
  loaded: LoadedConfig | undefined,
  runner: ProcessRunner,
  log: (line: string) => void,
): { cache?: ContextCache; off?: string } {
  const setting = o.contextCache ?? loaded?.config.contextCache ?? "auto";
  if (setting === false || (setting !== "auto" && parseSize(setting) === 0))
    return { off: "turned off (contextCache: 0)" };
  if (!(runner instanceof LlamaServerRunner)) return { off: "the process runner is not a LlamaServerRunner" };
  const root = o.contextCacheDir ?? paths.contextCacheDir();
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    return { off: `cannot create ${root}: ${(e as Error).message}` };
  }
  const budgetBytes = setting === "auto" ? defaultBudgetBytes(diskFreeBytes(root) ?? 0) : parseSize(setting);
  if (!(budgetBytes > 0)) return { off: "no disk space for it (budget 0)" };
  const cache = new ContextCache({
    root,
    budgetBytes,
    binaryInfo: () => runner.binaryInfo(),
    ...(o.contextSaveTimeoutMs !== undefined ? { saveTimeoutMs: o.contextSaveTimeoutMs } : {}),
    ...(o.contextRestoreTimeoutMs !== undefined ? { restoreTimeoutMs: o.contextRestoreTimeoutMs } : {}),
    saveAll: o.contextCacheSaveAll ?? loaded?.config.contextCacheSaveAll ?? false,
    log,
  });
  return { cache };
}

/** The controller's seams, served by the context cache. */
function contextHooks(cache: ContextCache): ModelHooks {
  return {
    prepare: (pm) =>
      cache.prepare({ name: pm.name, server: pm.server, files: pm.entry.shards, mmproj: pm.entry.mmproj }),
    afterReady: (model, handle) => cache.afterReady(model, handle),
    beforeStop: (model, handle, _reason, served) => cache.beforeStop(model, handle, served),
    exited: (model) => cache.exited(model),
    status: (model) => cache.status(model) as Record<string, unknown> | undefined,
    observe: (model, usage) => cache.observe(model, usage),
  };
}

function secs(s: number | undefined): number | undefined {
  return s === undefined ? undefined : Math.round(s * 1000);
}

export function diffCatalogs(
  before: readonly ProxyModel[],
  after: readonly ProxyModel[],
): Omit<ReloadReport, "warnings"> {
  const b = new Map(before.map((m) => [m.name, m]));
  const a = new Map(after.map((m) => [m.name, m]));
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  const unchanged: string[] = [];
  for (const [n, m] of a) {
    const old = b.get(n);
    if (!old) added.push(n);
    else if (old.spec.fingerprint !== m.spec.fingerprint) changed.push(n);
    else unchanged.push(n);
  }
  for (const n of b.keys()) if (!a.has(n)) removed.push(n);
  return { added, removed, changed, unchanged };
}
