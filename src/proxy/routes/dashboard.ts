/**
 * The management API the dashboard (/ui) adds to the proxy, after the API-key check like the rest of it:
 *
 *   GET  /api/activity?limit=N&model=M&since=SEQ[&follow=1]   recent requests (a bounded ring, see activity.ts)
 *   GET  /api/system                                          machine (system probe) + llama-server binary/version
 *   GET  /api/config                                          effective config, secrets redacted, + last reload
 *   POST /api/config/reload                                   reload the config file / rescan the models folder
 *   GET  /api/proxy/logs?lines=N[&follow=1]                   the proxy's own log
 *   POST /models/pin {"model","pinned"}                       pin/unpin at runtime (until the next reload)
 *
 * `dashboardRoutes(dctx)` is a route module (routes/types.ts) over what these need beyond the ProxyContext: the
 * proxy's log, the system probe, the binary, the effective settings and the reload (startProxy gives them).
 */
import type { ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";
import type { SystemInfo, SystemProbe } from "../../system/types.js";
import type { ActivityRecord, ConfigReport, ReloadRecord } from "../api-types.js";
import type { ServerConfig } from "../../core/config.js";
import { effectiveModel, type EffectiveSettings } from "../effective-config.js";
import { parseJsonBody, readBody, sendJson } from "../http/json.js";
import { SSE_HEADERS } from "../http/sse.js";
import type { ProxyLog } from "../proxy-log.js";
import type { ProxyContext, Route, RouteModule } from "./types.js";

export type { ReloadRecord };

export interface LlamaBinaryInfo {
  path: string;
  version?: string;
  backend?: string;
  builtWith?: string;
}

export interface DashboardContext {
  proxyLog: ProxyLog;
  probe: SystemProbe;
  /** The llama-server binary the runner starts (its path, version, backend). */
  binary?: () => Promise<LlamaBinaryInfo>;
  settings: () => EffectiveSettings;
  reload: (trigger: string) => Promise<ReloadRecord>;
  lastReload: () => ReloadRecord | undefined;
}

export interface DashboardRoutes extends RouteModule {
  /** End the open follow streams (the proxy is closing). */
  close(): void;
}

export function dashboardRoutes(d: DashboardContext): DashboardRoutes {
  const streams = new Set<ServerResponse>();
  const follow = (res: ServerResponse, backlog: unknown[], subscribe: (send: (v: unknown) => void) => () => void) => {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    for (const v of backlog) res.write(`data: ${JSON.stringify(v)}\n\n`);
    streams.add(res);
    const off = subscribe((v) => {
      if (!res.writableEnded) res.write(`data: ${JSON.stringify(v)}\n\n`);
    });
    const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
    res.on("close", () => {
      clearInterval(ping);
      off();
      streams.delete(res);
    });
  };

  const routes = (ctx: ProxyContext): Route[] => [
    {
      method: "GET",
      path: "/api/activity",
      handle(_req, res, _path, query) {
        const model = query?.get("model") || undefined;
        const since = intParam(query, "since", 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(query, "limit", 1, ctx.activity.capacity) ?? 200;
        const records = ctx.activity.list({ since, model, limit });
        if (query?.get("follow") === "1") {
          follow(res, records, (send) =>
            ctx.activity.on((r: ActivityRecord) => {
              if (!model || r.model === model) send({ ...r });
            }),
          );
          return;
        }
        sendJson(res, 200, { capacity: ctx.activity.capacity, total: ctx.activity.total, records });
      },
    },
    {
      method: "GET",
      path: "/api/system",
      async handle(_req, res, _path, query) {
        const fresh = query?.get("fresh") === "1";
        const [machine, binary] = await Promise.all([
          d.probe.probe({ fresh }).then(
            (m): SystemInfo | { error: string } => m,
            (e: unknown) => ({ error: `The system probe failed: ${(e as Error).message}` }),
          ),
          d.binary
            ? d.binary().then(
                (b): LlamaBinaryInfo | { error: string } => b,
                (e: unknown) => ({ error: (e as Error).message }),
              )
            : Promise.resolve(null),
        ]);
        sendJson(res, 200, { machine, llamaServer: binary });
      },
    },
    {
      method: "GET",
      path: "/api/config",
      handle(_req, res) {
        sendJson(res, 200, {
          settings: d.settings(),
          models: ctx.controller.catalog().map(effectiveModel),
          lastReload: d.lastReload() ?? null,
        } satisfies ConfigReport<ServerConfig>);
      },
    },
    {
      method: "POST",
      path: "/api/config/reload",
      async handle(_req, res) {
        const r = await d.reload("api");
        sendJson(res, r.ok ? 200 : 422, r);
      },
    },
    {
      method: "GET",
      path: "/api/proxy/logs",
      handle(_req, res, _path, query) {
        const n = intParam(query, "lines", 1, 5000) ?? 200;
        const lines = d.proxyLog.tail(n);
        if (query?.get("follow") === "1") {
          follow(res, lines, (send) => d.proxyLog.on(send));
          return;
        }
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
        res.end(lines.join("\n") + (lines.length > 0 ? "\n" : ""));
      },
    },
    {
      method: "POST",
      path: "/models/pin",
      async handle(req, res) {
        const body = parseJsonBody(await readBody(req, 64 * 1024, false), req.headers["content-type"]);
        if (typeof body.model !== "string" || body.model === "")
          throw new HttpError(
            400,
            "model_missing",
            `Send {"model": "<name>", "pinned": true|false}. Available: ${ctx.names()}.`,
          );
        const name = ctx.resolve(body.model);
        if (typeof body.pinned !== "boolean")
          throw new HttpError(400, "invalid_request", `"pinned" must be true or false.`);
        const pinned = body.pinned;
        // the spec's pin needs no restart: the scheduler applies it at once (same fingerprint)
        const models = ctx.controller.catalog();
        ctx.controller.updateCatalog(models.map((m) => (m.name === name ? { ...m, spec: { ...m.spec, pinned } } : m)));
        d.proxyLog.write(`${name}: ${pinned ? "pinned" : "unpinned"} from the API`);
        sendJson(res, 200, { success: true, model: name, pinned });
      },
    },
  ];

  return {
    name: "dashboard",
    routes,
    close() {
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}

function intParam(q: URLSearchParams | undefined, name: string, min: number, max: number): number | undefined {
  const v = q?.get(name);
  if (v === null || v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new HttpError(400, "invalid_parameter", `?${name}= must be an integer from ${min} to ${max}.`);
  return n;
}
