/**
 * Management: `/health` (open), `/api/status`, `/metrics` (the proxy's, or `?model=` a running model's own),
 * `POST /models/load` and `POST /models/unload`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";
import { parseJsonBody, readBody, sendJson } from "../http/json.js";
import type { StatusReport } from "../api-types.js";
import type { ProxyContext, Route, RouteModule } from "./types.js";

const MANAGEMENT_BODY_LIMIT = 64 * 1024;

export const managementRoutes: RouteModule = {
  name: "management",
  routes: (ctx) => {
    const health: Route["handle"] = (_req, res) =>
      sendJson(res, 200, { status: ctx.isClosing() ? "shutting_down" : "ok" });
    return [
      { method: "*", path: "/health", open: true, handle: health },
      { method: "*", path: "/v1/health", open: true, handle: health },
      {
        method: "GET",
        path: "/api/status",
        handle: (_req, res) =>
          sendJson(res, 200, {
            ...ctx.info(),
            models: ctx.controller.status(),
            ...(ctx.peers ? { peers: ctx.peers.status(), nameClashes: ctx.peers.clashes() } : {}),
          } satisfies StatusReport),
      },
      {
        method: "GET",
        path: "/metrics",
        async handle(req, res, _path, query) {
          const model = query?.get("model");
          if (!model) {
            res.writeHead(200, { "content-type": ctx.metrics.contentType });
            res.end(await ctx.metrics.text());
            return;
          }
          await modelMetrics(ctx, req, res, model);
        },
      },
      { method: "POST", path: "/models/load", handle: (req, res) => load(ctx, req, res) },
      { method: "POST", path: "/models/unload", handle: (req, res) => unload(ctx, req, res) },
    ];
  },
};

/** A model's own metrics: only while it runs (this endpoint never loads or wakes a model). */
async function modelMetrics(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, requested: string) {
  const name = ctx.resolve(requested);
  if (!ctx.controller.isReady(name)) {
    throw new HttpError(
      503,
      "model_not_loaded",
      `Model '${name}' is not loaded; its metrics exist only while it runs (this endpoint never loads a model).`,
    );
  }
  await ctx.relay.relay(req, res, {
    name,
    path: "/metrics",
    clientPath: "/metrics",
    method: "GET",
    body: null,
    stream: false,
    activity: false,
  });
}

/** The model named by a management request's body `{"model"}`. */
async function requestedModel(ctx: ProxyContext, req: IncomingMessage): Promise<string> {
  const body = parseJsonBody(await readBody(req, MANAGEMENT_BODY_LIMIT, false), req.headers["content-type"]);
  if (typeof body.model !== "string" || body.model === "") {
    throw new HttpError(400, "model_missing", `Send {"model": "<name>"}. Available: ${ctx.names()}.`);
  }
  return ctx.resolve(body.model);
}

async function load(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const name = await requestedModel(ctx, req);
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  await ctx.controller.load(name, abort.signal);
  sendJson(res, 200, { success: true, model: name, status: "loaded" });
}

async function unload(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const name = await requestedModel(ctx, req);
  const st = ctx.controller.state(name)?.status;
  if (st === "unloaded" || st === "failed" || st === undefined) {
    throw new HttpError(400, "model_not_running", `Model '${name}' is not running.`);
  }
  ctx.controller.unload(name);
  sendJson(res, 200, { success: true, model: name, status: ctx.controller.state(name)?.status ?? "unloaded" });
}
