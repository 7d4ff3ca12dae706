/**
 * `startProxy()`: one OpenAI-compatible endpoint for every local model. Builds the catalog (config file + models
 * folder), the memory budget, the scheduler's controller on a ProcessRunner, metrics and the HTTP server; reloads
 * the catalog on demand (SIGHUP / file change, wired by the caller or `watch`); shuts down cleanly.
 */
import { mkdirSync, statSync } from "node:fs";
import { paths } from "../core/paths.js";
import { GglibError } from "../core/errors.js";
import type { ProcessRunner } from "../core/ports.js";
import type { Registry } from "../models/registry.js";
import { LlamaServerRunner, type RunnerOptions } from "../runner/llama-server-runner.js";
import { defaultSystemProbe } from "../system/probe.js";
import type { SystemProbe } from "../system/types.js";
import { buildCatalog, type Catalog, type ProxyModel } from "./catalog.js";
import { loadConfigFile, resolvePath, type LoadedConfig } from "./config.js";
import { ModelController, type ModelHooks } from "./controller.js";
import { defaultBudgetBytes } from "./context/budget.js";
import { ContextCache, diskFreeBytes } from "./context/context-cache.js";
import { ContextMetrics } from "./context/metrics.js";
import { autoBudget, parseSize } from "./memory.js";
import { ProxyMetrics } from "./metrics.js";
import { ProxyServer } from "./server.js";

export { ProxyServer } from "./server.js";
export { ModelController } from "./controller.js";
export { Scheduler } from "./scheduler.js";
export type { ModelSpec, SchedulerAction, SchedulerEvent, SchedulerOptions, ModelStatus } from "./scheduler.js";
export { buildCatalog, resolveModelName } from "./catalog.js";
export { configJsonSchema, parseConfig, loadConfigFile, ProxyConfigSchema } from "./config.js";
export { parseSize } from "./memory.js";

export interface ProxyOptions {
  configPath?: string;
  modelsDir?: string;
  /** Registered models (`gglib models add`); the CLI passes the user's registry when it exists. */
  registry?: Pick<Registry, "list">;
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
  /** Folder of saved KV caches (default <cache dir>/kv-context). */
  contextCacheDir?: string;
  /** Bounds of the saves before a stop / the restores after a load, ms (default 30 000 each). */
  contextSaveTimeoutMs?: number;
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
  }>;
  clashes: string[];
  warnings: string[];
  budget: { bytes: number | null; source: string };
  maxModels: number | null;
  /** The context cache (saved KV caches): its folder and disk budget, or why it is off. */
  contextCache: { dir: string; budgetBytes: number } | { off: string };
}

export interface RunningProxy {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly controller: ModelController;
  readonly server: ProxyServer;
  readonly report: StartReport;
  reload(): Promise<ReloadReport>;
  /** Drain requests (up to drainMs), stop every llama-server, close the server. */
  close(drainMs?: number): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"]);

export async function startProxy(o: ProxyOptions): Promise<RunningProxy> {
  const log = o.log ?? (() => {});
  // the file's stamp as read: a change made before the watcher starts still counts as a change
  const stamp = (path: string) => {
    try {
      const st = statSync(path);
      return `${st.mtimeMs}:${st.size}`;
    } catch {
      return "missing";
    }
  };
  let configStamp = o.configPath ? stamp(o.configPath) : "";
  let loaded: LoadedConfig | undefined = o.configPath ? loadConfigFile(o.configPath) : undefined;
  const file = loaded?.config ?? {};
  // flags > config file > defaults
  const host = o.host ?? file.host ?? "127.0.0.1";
  const port = o.port ?? file.port ?? 8080;
  const apiKeys = o.apiKeys ?? file.apiKeys ?? [];
  const insecure = o.insecure ?? file.insecure ?? false;
  if (!LOOPBACK.has(host) && apiKeys.length === 0 && !insecure) {
    throw new GglibError(
      "invalid_config",
      `Refusing to listen on ${host} without an API key: anyone on the network could use your models.`,
      {
        hint: "Pass --api-key KEY (or apiKeys in the config), bind 127.0.0.1, or pass --insecure if you really mean it.",
      },
    );
  }
  // End llama-servers orphaned by an earlier run first: they hold memory the auto budget would count as used.
  const runnerOptions: RunnerOptions = { stopGraceMs: o.stopGraceMs ?? 10_000, ...(o.runnerOptions ?? {}) };
  if (!runnerOptions.binaryPath && file.llamaServer && loaded)
    runnerOptions.configuredBinary = resolvePath(loaded.baseDir, file.llamaServer);
  const runner = o.runner ?? new LlamaServerRunner(runnerOptions);
  const swept = runner instanceof LlamaServerRunner ? await runner.sweep() : undefined;
  const modelsDir = o.modelsDir ?? (file.modelsDir && loaded ? resolvePath(loaded.baseDir, file.modelsDir) : undefined);
  const ttlS = o.ttlS ?? file.ttl ?? 0;
  const maxModels = o.maxModels ?? file.maxModels;
  const budgetSetting = o.memoryBudget ?? file.memoryBudget ?? "auto";
  const probe = o.probe ?? defaultSystemProbe();
  let budgetBytes: number | undefined;
  let budgetSource: string;
  let measureRss = false;
  if (budgetSetting === "auto") {
    try {
      const b = await autoBudget(probe);
      budgetBytes = b.bytes;
      budgetSource = `auto: ${b.source}`;
      measureRss = !/VRAM/.test(b.source);
    } catch (e) {
      budgetSource = `auto: could not read free memory (${(e as Error).message}); no memory limit`;
    }
  } else {
    budgetBytes = parseSize(budgetSetting);
    budgetSource = "configured";
    // measure what servers use the way the machine counts it: RSS without a discrete GPU, else GPU memory
    const machine = await autoBudget(probe).catch(() => undefined);
    measureRss = !machine || !/VRAM/.test(machine.source);
  }

  const catalogInput = () => ({ config: loaded, modelsDir, ttlS, ...(o.registry ? { registry: o.registry } : {}) });
  const catalog = await buildCatalog(catalogInput());

  const snapshotRef: { c?: ModelController } = {};
  const metrics = new ProxyMetrics({
    snapshot: () =>
      (snapshotRef.c?.status() ?? []).map((s) => ({
        name: s.name,
        state: s.state,
        queued: s.queued,
        inFlight: s.inFlight,
        bytes: s.measuredBytes ?? s.estimatedBytes,
      })),
  });
  const context = setUpContextCache(o, file.contextCache, runner, metrics, log);
  const controller = new ModelController(
    runner,
    catalog.models,
    {
      ...(context.cache ? { hooks: contextHooks(context.cache) } : {}),
      maxModels,
      budgetBytes,
      ttlMs: ttlS * 1000,
      maxQueuePerModel: o.maxQueue ?? file.maxQueue,
      queueTimeoutMs: secs(o.queueTimeoutS ?? file.queueTimeout),
      drainTimeoutMs: secs(o.drainTimeoutS ?? file.drainTimeout),
      loadTimeoutMs: secs(o.loadTimeoutS ?? file.loadTimeout),
      stopGraceMs: o.stopGraceMs,
      measureRss,
    },
    metrics,
  );
  snapshotRef.c = controller;
  if (context.cache) {
    context.cache.on((e) => controller.publish(e));
    context.cache.sweep();
  }
  const bodyLimitSetting = o.bodyLimit ?? file.bodyLimit;
  const corsOrigins = o.corsOrigins ?? file.corsOrigins;
  const defaultModel = o.defaultModel ?? file.defaultModel;
  const report: StartReport = {
    models: catalog.models.map((m) => ({
      name: m.name,
      aliases: m.aliases,
      source: m.entry.source,
      path: m.entry.path,
      estimatedBytes: m.estimate.bytes,
      pinned: m.spec.pinned === true,
      preload: m.preload,
    })),
    clashes: catalog.clashes.map((c) => c.message),
    warnings: [
      ...catalog.warnings,
      ...(swept && swept.killed.length > 0
        ? [`stopped ${swept.killed.length} llama-server(s) left over from an earlier run`]
        : []),
    ],
    budget: { bytes: budgetBytes ?? null, source: budgetSource },
    maxModels: maxModels ?? null,
    contextCache: context.cache
      ? { dir: context.cache.store.root, budgetBytes: context.cache.budgetBytes }
      : { off: context.off ?? "off" },
  };
  if (defaultModel && !catalog.models.some((m) => m.name === defaultModel || m.aliases.includes(defaultModel))) {
    report.warnings.push(`defaultModel '${defaultModel}' is not one of the models`);
  }
  const startedAt = Date.now();
  const server = new ProxyServer(controller, metrics, {
    host,
    port,
    apiKeys,
    ...(corsOrigins ? { corsOrigins } : {}),
    ...(bodyLimitSetting !== undefined ? { bodyLimit: parseSize(bodyLimitSetting) } : {}),
    ...(defaultModel ? { defaultModel } : {}),
    ...(o.keepAliveMs ? { keepAliveMs: o.keepAliveMs } : {}),
    ...(o.headersTimeoutMs ? { headersTimeoutMs: o.headersTimeoutMs } : {}),
    ...(o.requestTimeoutMs ? { requestTimeoutMs: o.requestTimeoutMs } : {}),
    info: () => ({
      uptimeS: Math.round((Date.now() - startedAt) / 1000),
      budget: { bytes: budgetBytes ?? null, source: budgetSource, usedBytes: controller.scheduler.usedBytes() },
      maxModels: maxModels ?? null,
    }),
    log,
  });
  let addr;
  try {
    addr = await server.listen();
  } catch (e) {
    await controller.shutdown(0);
    const err = e as NodeJS.ErrnoException;
    if (err.code === "EADDRINUSE") {
      throw new GglibError("port_in_use", `Port ${port} on ${host} is already in use.`, {
        hint: "Pick another with --port, or stop what is using it.",
      });
    }
    throw e;
  }
  const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;

  // Preload.
  for (const m of catalog.models) {
    if (!m.preload) continue;
    controller.load(m.name).then(
      () => log(`preloaded ${m.name}`),
      (e: unknown) => log(`preload of ${m.name} failed: ${(e as Error).message}`),
    );
  }

  let current: Catalog = catalog;
  let reloading: Promise<ReloadReport> | undefined;
  const reload = async (): Promise<ReloadReport> => {
    if (reloading) return reloading;
    reloading = (async () => {
      if (o.configPath) {
        configStamp = stamp(o.configPath);
        loaded = loadConfigFile(o.configPath);
      }
      const next = await buildCatalog(catalogInput());
      const diff = diffCatalogs(current.models, next.models);
      controller.updateCatalog(next.models);
      current = next;
      context.cache?.sweep();
      for (const m of next.models) {
        if (m.preload && diff.added.includes(m.name)) controller.load(m.name).catch(() => {});
      }
      return { ...diff, warnings: [...next.warnings, ...next.clashes.map((c) => c.message)] };
    })();
    try {
      return await reloading;
    } finally {
      reloading = undefined;
    }
  };

  // polled against the stamp of the last read (fs.watch misses editors' rename-over writes; watchFile compares with
  // its own first stat, so a write between our read and that stat would be lost)
  const watch = o.configPath && (o.watchConfig ?? true);
  let watcher: NodeJS.Timeout | undefined;
  if (watch) {
    let timer: NodeJS.Timeout | undefined;
    watcher = setInterval(() => {
      const now = stamp(o.configPath!);
      if (now === configStamp) return;
      configStamp = now;
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
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    host,
    port: addr.port,
    controller,
    server,
    report,
    reload,
    close(drainMs = 10_000) {
      closing ??= (async () => {
        if (watcher) clearInterval(watcher);
        const serverClosed = server.close(drainMs + 1_000);
        await controller.shutdown(drainMs);
        await serverClosed;
      })();
      return closing;
    },
  };
}

/** The context cache, unless turned off (0 / false) or the runner cannot say which llama-server it runs. */
function setUpContextCache(
  o: ProxyOptions,
  fileSetting: string | number | false | undefined,
  runner: ProcessRunner,
  metrics: ProxyMetrics,
  log: (line: string) => void,
): { cache?: ContextCache; off?: string } {
  const setting = o.contextCache ?? fileSetting ?? "auto";
  if (
    setting === false ||
    setting === 0 ||
    (typeof setting === "string" && /^\s*0+(\.0*)?\s*[kKmMgGtT]?i?[bB]?\s*$/.test(setting))
  )
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
  const cache: ContextCache = new ContextCache({
    root,
    budgetBytes,
    binaryInfo: () => runner.binaryInfo(),
    ...(o.contextSaveTimeoutMs !== undefined ? { saveTimeoutMs: o.contextSaveTimeoutMs } : {}),
    ...(o.contextRestoreTimeoutMs !== undefined ? { restoreTimeoutMs: o.contextRestoreTimeoutMs } : {}),
    metrics: new ContextMetrics(metrics.registry, (): number => cache.diskBytes()),
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
    beforeStop: (model, handle) => cache.beforeStop(model, handle),
    exited: (model) => cache.exited(model),
    status: (model) => cache.status(model) as Record<string, unknown> | undefined,
    observe: (model, usage) => cache.observe(model, usage.cachedTokens, usage.promptTokens),
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
