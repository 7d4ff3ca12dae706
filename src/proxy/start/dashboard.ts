/**
 * The dashboard's API (routes/dashboard.ts) over a running proxy: the proxy's log (with the models' state changes
 * and crashes written into it), the probe, the llama-server binary, the effective settings and the reloads.
 */
import type { ProcessRunner } from "../../core/ports.js";
import { parseSize } from "../../core/units.js";
import type { PeerSpec } from "../../peers/config.js";
import type { SystemProbe } from "../../system/types.js";
import type { ModelController } from "../controller.js";
import type { EffectiveSettings } from "../effective-config.js";
import type { ProxyLog } from "../proxy-log.js";
import { dashboardRoutes, type DashboardRoutes } from "../routes/dashboard.js";
import type { Budget, ProxyOptions, Settings } from "./options.js";
import type { RecordedReloads } from "./reload.js";

/**
 * The dashboard's API (routes/dashboard.ts) over this proxy: its log (with the models' state changes and
 * crashes), the probe, the binary, the effective settings and the recorded reloads.
 */
export function createDashboard(
  o: ProxyOptions,
  p: {
    controller: ModelController;
    proxyLog: ProxyLog;
    probe: SystemProbe;
    runner: ProcessRunner;
    settings: Settings;
    budget: Budget;
    reloads: RecordedReloads;
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
    binary: async () => {
      const b = await runner.binaryInfo();
      return {
        path: b.path,
        ...(b.caps.version ? { version: b.caps.version } : {}),
        backend: b.caps.backend,
        ...(b.caps.builtWith ? { builtWith: b.caps.builtWith } : {}),
      };
    },
    settings: effective,
    reload: async (trigger) => {
      await p.reloads.reload(trigger).catch(() => {});
      return p.reloads.last()!;
    },
    lastReload: p.reloads.last,
  });
}
