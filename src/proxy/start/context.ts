/**
 * The context cache's factory (src/proxy/context/: KV caches saved at a swap, restored at the next load) and the
 * controller's hooks it serves.
 */
import { mkdirSync } from "node:fs";
import { paths } from "../../core/paths.js";
import type { ProcessRunner } from "../../core/ports.js";
import { parseSize } from "../../core/units.js";
import type { LoadedConfig } from "../../models/config-file.js";
import { defaultBudgetBytes } from "../context/budget.js";
import { ContextCache, diskFreeBytes } from "../context/context-cache.js";
import { ContextMetrics } from "../context/metrics.js";
import type { ModelController, ModelHooks } from "../controller.js";
import type { ProxyMetrics } from "../metrics.js";
import type { ProxyOptions } from "./options.js";

/** The context cache, unless turned off (0 / false) or its folder cannot be made or has no room. */
export function contextCache(
  o: ProxyOptions,
  loaded: LoadedConfig | undefined,
  runner: ProcessRunner,
  log: (line: string) => void,
): { cache?: ContextCache; off?: string } {
  const setting = o.contextCache ?? loaded?.config.contextCache ?? "auto";
  if (setting === false || (setting !== "auto" && parseSize(setting) === 0))
    return { off: "turned off (contextCache: 0)" };
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
export function contextHooks(cache: ContextCache): ModelHooks {
  return {
    prepare: (pm) =>
      cache.prepare({
        name: pm.name,
        server: pm.server,
        files: pm.entry.shards,
        mmproj: pm.entry.mmproj,
        swaFull: pm.swaFull,
      }),
    afterReady: (model, handle) => cache.afterReady(model, handle),
    beforeStop: (model, handle, _reason, served) => cache.beforeStop(model, handle, served),
    exited: (model) => cache.exited(model),
    status: (model) => cache.status(model),
    observe: (model, usage) => cache.observe(model, usage),
  };
}

/** The cache's metrics on the proxy's registry, its events to the controller's listeners, a first sweep of its folder. */
export function attachContextCache(cache: ContextCache, controller: ModelController, metrics: ProxyMetrics): void {
  cache.setMetrics(new ContextMetrics(metrics.registry, () => cache.diskBytes()));
  cache.on((e) => controller.publish(e));
  cache.sweep();
}
