/**
 * `startProxy()`: one OpenAI-compatible endpoint for every local model. Wiring only, in named steps: settings, the
 * runner (and its orphan sweep), the memory budget, the catalog, the context cache, the controller and metrics,
 * the peers, the start report, the route modules and the server, listen, preload, reloads and the config watch.
 * What the steps use lives in start/: options.ts (options, settings, budget, report), reload.ts, dashboard.ts,
 * context.ts.
 */
import type { AddressInfo } from "node:net";
import { GglibError } from "../core/errors.js";
import type { OrphanSweep, ProcessRunner } from "../core/ports.js";
import { parseSize } from "../core/units.js";
import { resolvePath, type LoadedConfig } from "../models/config-file.js";
import { LlamaServerRunner, type RunnerOptions } from "../runner/llama-server-runner.js";
import { cpuFeaturesForEstimates, defaultSystemProbe } from "../system/probe.js";
import { ActivityLog } from "./activity.js";
import { buildCatalog, type Catalog, type CatalogInput, type ProxyModel } from "./catalog.js";
import { ModelController, type ControllerOptions } from "./controller.js";
import type { ContextCache } from "./context/context-cache.js";
import { ProxyMetrics } from "./metrics.js";
import type { PeerRouter } from "./peer-router.js";
import { resolvePeers } from "../peers/config.js";
import { ProxyLog } from "./proxy-log.js";
import { ROUTE_MODULES } from "./routes/index.js";
import type { RouteModule } from "./routes/types.js";
import { uiRoutes } from "./routes/ui.js";
import { RpcChecker } from "./rpc.js";
import { watchStores, type StoreWatcher } from "../models/stores/watch.js";
import { HfFetcher } from "./hf-fetch.js";
import { ProxyServer } from "./server.js";
import { attachContextCache, contextCache, contextHooks } from "./start/context.js";
import { reportPeers, startPeers } from "./start/peers.js";
import { createDashboard } from "./start/dashboard.js";
import { ollamaModule } from "./start/ollama.js";
import {
  memoryBudget,
  refuseOpenNetwork,
  resolveSettings,
  secs,
  startReport,
  type Budget,
  type ProxyOptions,
  type Settings,
  type StartReport,
} from "./start/options.js";
import {
  catalogReloader,
  ConfigFile,
  peersChanged,
  recordedReloads,
  watchConfig,
  type ReloadReport,
} from "./start/reload.js";

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

export type { ProxyOptions, StartReport } from "./start/options.js";
export { diffCatalogs, type ReloadReport } from "./start/reload.js";

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
    swaFull: { budgetBytes: budget.bytes, contextCache: context.cache !== undefined, slotCheckpoints },
  });
  const context = contextCache(o, config?.loaded, runner, log);
  // a llama-server that keeps context checkpoints in slot files restores a window cache: no --swa-full needed
  const slotCheckpoints =
    context.cache !== undefined &&
    (await runner.binaryInfo().then(
      (b) => b.caps.slotCheckpoints === true,
      () => false,
    ));
  const catalog = await buildCatalog(catalogInput());
  // config models `hf:<user>/<repo>[:<quant>]` not in the hub cache yet are fetched on first use, as the first
  // stage of their load (hf-fetch.ts), then the catalog is reloaded
  const hubCache = o.stores?.["hf-cache"]?.[0];
  const hfFetcher =
    hubCache === undefined
      ? undefined
      : new HfFetcher({
          pull: async (ref, signal, onProgress) =>
            (await import("../hub/pull.js")).pullModel(ref, {
              ...(o.pull ?? {}),
              signal,
              modelsDir: hubCache,
              hfCache: true,
              probe,
              onProgress: (p) => {
                if (p.overallTotal) onProgress((p.overallCompleted ?? 0) / p.overallTotal);
              },
            }),
          fetched: (ref) => reloads.reload(`fetched ${ref}`),
          log,
          ...(o.hfRetryDelaysMs ? { retryDelaysMs: o.hfRetryDelaysMs } : {}),
        });
  const download: ControllerOptions["download"] = hfFetcher
    ? (m, onProgress) => (m.download ? hfFetcher.fetch(m.download.ref, m.name, onProgress) : undefined)
    : undefined;
  const { controller, metrics } = createController(runner, catalog, settings, budget, o, log, context.cache, download);
  if (context.cache) attachContextCache(context.cache, controller, metrics);
  const peers = await startPeers(peerSpecs, controller, budget, log);
  peers?.registerMetrics(metrics);
  const report = startReport(catalog, settings, budget, swept, context);
  if (peers) reportPeers(report, peers);
  // a store that changes under us (a pull in Ollama) is picked up by a reload; its folders follow each reload
  let storeWatch: StoreWatcher | undefined;
  const reloads = recordedReloads(
    catalogReloader(
      controller,
      catalog,
      config,
      catalogInput,
      (next) => {
        context.cache?.sweep();
        storeWatch?.update(next.stores?.watch ?? []);
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
  const ollama = ollamaModule(o, settings, budget, probe, () => reloads.reload("ollama pull"));
  const server = createServer(controller, metrics, settings, budget, o, log, {
    activity: new ActivityLog(o.activityCapacity ?? 1000),
    // every route module, in one place: the dashboard's, the table's (routes/index.ts) and Ollama's
    routes: [uiRoutes(o.uiDir), dashboard, ...ROUTE_MODULES, ollama],
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

async function createRunner(
  o: ProxyOptions,
  loaded: LoadedConfig | undefined,
): Promise<{ runner: ProcessRunner; swept: OrphanSweep | undefined }> {
  let runner = o.runner;
  if (!runner) {
    const runnerOptions: RunnerOptions = { stopGraceMs: o.stopGraceMs ?? 10_000, ...(o.runnerOptions ?? {}) };
    if (!runnerOptions.binaryPath && loaded?.config.llamaServer)
      runnerOptions.configuredBinary = resolvePath(loaded.baseDir, loaded.config.llamaServer);
    runner = new LlamaServerRunner(runnerOptions);
  }
  return { runner, swept: await runner.sweep() };
}

function createController(
  runner: ProcessRunner,
  catalog: Catalog,
  s: Settings,
  budget: Budget,
  o: ProxyOptions,
  log: (line: string) => void,
  context: ContextCache | undefined,
  download: ControllerOptions["download"],
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
      ...(download ? { download } : {}),
    },
    metrics,
  );
  return { controller, metrics };
}

function createServer(
  controller: ModelController,
  metrics: ProxyMetrics,
  s: Settings,
  budget: Budget,
  o: ProxyOptions,
  log: (line: string) => void,
  /** The route modules, the activity ring, the peers' router. */
  extra: { routes: readonly RouteModule[]; activity: ActivityLog; peers?: PeerRouter },
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
      budget: { bytes: budget.bytes ?? null, source: budget.source, usedBytes: controller.usedBytes() },
      maxModels: s.maxModels ?? null,
    }),
    log,
    activity: extra.activity,
    ...(extra.peers ? { peers: extra.peers } : {}),
    routes: extra.routes,
  });
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
