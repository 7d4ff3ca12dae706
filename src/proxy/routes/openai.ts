/**
 * The OpenAI-compatible model routes: `GET /v1/models` (and `/models`), and every other request routed to a model
 * by its JSON body's `model` (only `model` and `stream` are read; the original bytes are forwarded) or, for GET,
 * `?model=`, falling back to `defaultModel`. This is the table's catch-all (the empty prefix), so it is matched last.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";
import type { ListedState, ModelList, ModelListEntry, ModelStatus } from "../api-types.js";
import type { ProxyModel } from "../catalog.js";
import { parseJsonBody, readBody, sendJson } from "../http/json.js";
import type { ProxyContext, RouteModule } from "./types.js";
import { HOP_HEADER } from "../../peers/client.js";
import { refuseSlotAction } from "./slots.js";

export const openaiRoutes: RouteModule = {
  name: "openai",
  routes: (ctx) => [
    { method: "GET", path: "/v1/models", handle: (_req, res) => sendJson(res, 200, modelList(ctx)) },
    { method: "GET", path: "/models", handle: (_req, res) => sendJson(res, 200, modelList(ctx)) },
    {
      // the catch-all: every path that no other route takes (a target not starting with "/" is refused by the server)
      method: "*",
      path: "",
      prefix: true,
      handle: (req, res, path, query) => modelRequest(ctx, req, res, path, query),
    },
  ],
};

/** llama-server's endpoints that take multipart bodies (an audio file). */
const MULTIPART_PATH = /\/audio\/transcriptions$/;

/** A request for a model: find the model, then relay it (waiting for a load when needed). */
async function modelRequest(
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  query: URLSearchParams | undefined,
): Promise<void> {
  if (ctx.isClosing()) throw new HttpError(503, "shutting_down", "The proxy is shutting down.", 5);
  refuseSlotAction(path);
  const method = req.method ?? "GET";
  let body: Buffer | null = null;
  let requested: string | undefined;
  let stream = false;
  let json: Record<string, unknown> | undefined;
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    body = await readBody(req, ctx.bodyLimit);
    const ct = req.headers["content-type"];
    // like llama-server, read the body as JSON whatever the content type says (curl -d sends form-urlencoded);
    // multipart only where llama-server takes files (audio), else a 400 that says what to send
    if (!MULTIPART_PATH.test(path) || !ct?.toLowerCase().startsWith("multipart/")) {
      const parsed = parseJsonBody(body, ct);
      json = parsed;
      requested = typeof parsed.model === "string" && parsed.model !== "" ? parsed.model : undefined;
      stream = parsed.stream === true;
    }
    requested ??= query?.get("model") ?? undefined;
  } else {
    requested = query?.get("model") ?? undefined;
  }
  requested ??= ctx.defaultModel;
  if (!requested) {
    throw new HttpError(
      400,
      "model_missing",
      `The request names no model. Set "model" in the JSON body (or ?model= for GET). Available: ${ctx.names()}.`,
    );
  }
  // llama-server's /props, /slots, /health… are monitoring: they do not count as activity for the TTL
  const activity = method !== "GET" || !(path === "/props" || path === "/slots");
  // with peers, the name may live on other hosts; a request a peer forwarded here is served by this host only
  if (ctx.peers && req.headers[HOP_HEADER] === undefined) {
    const r = { requested, json, path: req.url ?? "/", clientPath: path, method, body, stream, activity };
    await ctx.peers.route(ctx.relay, req, res, r);
    return;
  }
  const name = ctx.resolve(requested);
  await ctx.relay.relay(req, res, { name, path: req.url ?? "/", clientPath: path, method, body, stream, activity });
}

/** `/v1/models`: every model with its state in the shape clients of llama-server's router mode expect. */
function modelList(ctx: ProxyContext): ModelList {
  const status = new Map(ctx.controller.status().map((s) => [s.name, s]));
  const data = ctx.controller.catalog().map((m: ProxyModel): ModelListEntry => {
    const s = status.get(m.name);
    const state = s?.state ?? "unloaded";
    const st: ModelListEntry["status"] = { value: listedState(state), state };
    if ((state === "failed" || state === "stuck") && s?.lastError) {
      st.failed = true;
      st.error = s.lastError;
    }
    if (s?.progress !== undefined) st.progress = s.progress;
    return {
      id: m.name,
      object: "model",
      created: Math.floor((s?.uptimeS !== undefined ? Date.now() - s.uptimeS * 1000 : Date.now()) / 1000),
      owned_by: "gglib",
      aliases: m.aliases,
      status: st,
      meta: {
        path: m.entry.path,
        source: m.entry.source,
        estimated_bytes: m.estimate.bytes,
        ctx: m.estimate.ctx,
        parallel: m.entry.settings.parallel ?? null, // set: one KV cache per slot of ctx / parallel tokens
        pinned: m.spec.pinned === true,
      },
      location: "local",
    };
  });
  return { object: "list", data: ctx.peers ? [...data, ...ctx.peers.modelEntries()] : data };
}

/** The scheduler's state as /v1/models' `status.value`. */
function listedState(state: ModelStatus): ListedState {
  switch (state) {
    case "ready":
    case "draining":
      return "loaded";
    case "loading":
    case "pending":
      return "loading";
    case "failed":
    case "stuck":
      return "failed";
    case "stopping":
      return "unloading";
    default:
      return "unloaded";
  }
}
