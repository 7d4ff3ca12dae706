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
 * Self-contained: `dashboardRoutes(ctx)` returns a handler that answers these paths and says false to others.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { SystemInfo, SystemProbe } from "../../system/types.js";
import type { ActivityLog, ActivityRecord } from "../activity.js";
import { resolveModelName } from "../catalog.js";
import type { ModelController } from "../controller.js";
import { effectiveModel, type EffectiveSettings } from "../effective-config.js";
import { ProxyHttpError, readBody, sendJson, SSE_HEADERS } from "../http-util.js";
import type { ProxyLog } from "../proxy-log.js";

export interface ReloadRecord {
  at: string;
  ok: boolean;
  /** What triggered it: the dashboard/API, SIGHUP or a change of the config file. */
  trigger: string;
  added: string[];
  removed: string[];
  changed: string[];
  warnings: string[];
  errors: string[];
}

export interface LlamaBinaryInfo {
  path: string;
  version?: string;
  backend?: string;
  builtWith?: string;
}

export interface DashboardContext {
  controller: ModelController;
  activity: ActivityLog;
  proxyLog: ProxyLog;
  probe: SystemProbe;
  /** The llama-server binary (undefined when the runner is not a LlamaServerRunner). */
  binary?: () => Promise<LlamaBinaryInfo>;
  settings: () => EffectiveSettings;
  reload: (trigger: string) => Promise<ReloadRecord>;
  lastReload: () => ReloadRecord | undefined;
}

export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  query: URLSearchParams | undefined,
) => Promise<boolean>;

export interface DashboardRoutes {
  handle: RouteHandler;
  /** End the open follow streams (the proxy is closing). */
  close(): void;
}

export function dashboardRoutes(ctx: DashboardContext): DashboardRoutes {
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

  const handle: RouteHandler = async (req, res, path, query) => {
    const method = req.method ?? "GET";
    if (method === "GET" || method === "HEAD") {
      switch (path) {
        case "/api/activity": {
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
            return true;
          }
          sendJson(res, 200, { capacity: ctx.activity.capacity, total: ctx.activity.total, records });
          return true;
        }
        case "/api/system": {
          const fresh = query?.get("fresh") === "1";
          const [machine, binary] = await Promise.all([
            ctx.probe.probe({ fresh }).then(
              (m): SystemInfo | { error: string } => m,
              (e: unknown) => ({ error: `The system probe failed: ${(e as Error).message}` }),
            ),
            ctx.binary
              ? ctx.binary().then(
                  (b): LlamaBinaryInfo | { error: string } => b,
                  (e: unknown) => ({ error: (e as Error).message }),
                )
              : Promise.resolve(null),
          ]);
          sendJson(res, 200, { machine, llamaServer: binary });
          return true;
        }
        case "/api/config":
          sendJson(res, 200, {
            settings: ctx.settings(),
            models: ctx.controller.catalog().map(effectiveModel),
            lastReload: ctx.lastReload() ?? null,
          });
          return true;
        case "/api/proxy/logs": {
          const n = intParam(query, "lines", 1, 5000) ?? 200;
          const lines = ctx.proxyLog.tail(n);
          if (query?.get("follow") === "1") {
            follow(res, lines, (send) => ctx.proxyLog.on(send));
            return true;
          }
          res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
          res.end(lines.join("\n") + (lines.length > 0 ? "\n" : ""));
          return true;
        }
      }
      return false;
    }
    if (method === "POST" && path === "/api/config/reload") {
      const r = await ctx.reload("api");
      sendJson(res, r.ok ? 200 : 422, r);
      return true;
    }
    if (method === "POST" && path === "/models/pin") {
      const body = jsonObject(await readBody(req, 64 * 1024));
      const names = ctx.controller.catalog();
      const requested = typeof body.model === "string" ? body.model : "";
      const name = requested ? resolveModelName(names, requested) : undefined;
      if (!name) {
        throw new ProxyHttpError(
          requested ? 404 : 400,
          requested ? "model_not_found" : "model_missing",
          `${requested ? `The model '${requested}' does not exist.` : `Send {"model": "<name>", "pinned": true|false}.`} Available: ${names.map((m) => m.name).join(", ")}.`,
        );
      }
      if (typeof body.pinned !== "boolean")
        throw new ProxyHttpError(400, "invalid_request", `"pinned" must be true or false.`);
      const pinned = body.pinned;
      // the spec's pin needs no restart: the scheduler applies it at once (same fingerprint)
      ctx.controller.updateCatalog(names.map((m) => (m.name === name ? { ...m, spec: { ...m.spec, pinned } } : m)));
      ctx.proxyLog.write(`${name}: ${pinned ? "pinned" : "unpinned"} from the API`);
      sendJson(res, 200, { success: true, model: name, pinned });
      return true;
    }
    return false;
  };

  return {
    handle,
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
    throw new ProxyHttpError(400, "invalid_parameter", `?${name}= must be an integer from ${min} to ${max}.`);
  return n;
}

function jsonObject(body: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new ProxyHttpError(400, "invalid_json", `The request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new ProxyHttpError(400, "invalid_json", "The request body must be a JSON object.");
  return v as Record<string, unknown>;
}
