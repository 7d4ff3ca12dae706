/**
 * The OpenAI-compatible model routes: `GET /v1/models` (and `/models`), and every other request routed to a model
 * by its JSON body's `model` (only `model` and `stream` are read; the original bytes are forwarded), a multipart
 * body's `model` form field (an audio file: http/multipart.ts scans for it; the bytes are forwarded) or, for GET,
 * `?model=`, falling back to `defaultModel`. A request that names a preset (src/models/presets.ts) goes to its
 * model with its body rewritten. This is the table's catch-all (the empty prefix), so it is matched last.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";
import type { ListedState, ModelList, ModelListEntry, ModelStatus } from "../api-types.js";
import type { ProxyModel } from "../catalog.js";
import { parseJsonBody, readBody, sendJson } from "../http/json.js";
import type { ProxyContext, RouteModule } from "./types.js";
import { HOP_HEADER } from "../../peers/client.js";
import { refuseSlotAction } from "./slots.js";
import { multipartBoundary, multipartFields } from "../http/multipart.js";
import { findPreset, presetRequest, presetsOf } from "../presets.js";
import type { Preset } from "../../models/presets.js";

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

/** llama-server's endpoints that read only JSON: a multipart body sent to them is refused with what to send. */
const JSON_ONLY_PATH =
  /\/(chat\/completions|completions?|embeddings?|responses|messages|messages\/count_tokens|rerank|reranking|tokenize|detokenize|apply-template|infill)$/;

/** A request for a model: find the model (or the preset), then relay it (waiting for a load when needed). */
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
  let multipart = false;
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    body = await readBody(req, ctx.bodyLimit);
    const ct = req.headers["content-type"];
    // like llama-server, read the body as JSON whatever the content type says (curl -d sends form-urlencoded);
    // a multipart body (an audio file) is routed by its `model` form field and forwarded as it came
    if (ct?.toLowerCase().startsWith("multipart/") && !JSON_ONLY_PATH.test(path)) {
      multipart = true;
      const fields = formFields(body, ct);
      const model = fields.get("model");
      requested = model !== undefined && model !== "" ? model : undefined;
      stream = fields.get("stream") === "true";
    } else {
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
      multipart
        ? `The request names no model. Send a "model" form field (or ?model=). Available: ${ctx.names()}.`
        : `The request names no model. Set "model" in the JSON body (or ?model= for GET). Available: ${ctx.names()}.`,
    );
  }
  // llama-server's /props, /slots, /health… are monitoring: they do not count as activity for the TTL
  const activity = method !== "GET" || !(path === "/props" || path === "/slots");
  // with peers, the name may live on other hosts; a request a peer forwarded here is served by this host only
  if (ctx.peers && req.headers[HOP_HEADER] === undefined) {
    // a local preset is applied here: the rewritten request names its model, which the peers may also serve
    const preset = findPreset(ctx.controller.catalog(), requested);
    if (preset) ({ requested, body, json } = withPreset(preset, json, body, path));
    const r = { requested, json, path: req.url ?? "/", clientPath: path, method, body, stream, activity };
    await ctx.peers.route(ctx.relay, req, res, r);
    return;
  }
  let name: string;
  try {
    name = ctx.resolve(requested);
  } catch (e) {
    // not a model: a preset's requests go to its model with the body rewritten (only these pay for presets)
    const preset = findPreset(ctx.controller.catalog(), requested);
    if (!preset) throw e;
    name = ctx.resolve(preset.model);
    ({ body } = withPreset(preset, json, body, path));
  }
  await ctx.relay.relay(req, res, { name, path: req.url ?? "/", clientPath: path, method, body, stream, activity });
}

/** A request for a preset: its body rewritten (a JSON one; a multipart body is forwarded unchanged). */
function withPreset(
  preset: Preset,
  json: Record<string, unknown> | undefined,
  body: Buffer | null,
  path: string,
): { requested: string; json: Record<string, unknown> | undefined; body: Buffer | null } {
  return { requested: preset.model, ...(json ? presetRequest(json, preset, path) : { json, body }) };
}

/** The `model` and `stream` form fields of a multipart body (a bounded scan of its parts: http/multipart.ts). */
function formFields(body: Buffer, contentType: string): Map<string, string> {
  const boundary = multipartBoundary(contentType);
  if (!boundary)
    throw new HttpError(
      400,
      "invalid_multipart",
      `The multipart body has no boundary in its Content-Type (${contentType.slice(0, 100)}); send multipart/form-data as an HTTP client writes it.`,
    );
  return multipartFields(body, boundary, ["model", "stream"]);
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
        ...(m.download
          ? { download: { ref: m.download.ref, downloaded: false, estimate: "unknown until downloaded" } as const }
          : {}),
      },
      location: "local",
    };
  });
  // presets: listed under their own names, with their model's state (they run on its process)
  const byName = new Map(data.map((d) => [d.id, d]));
  const presets: typeof data = [];
  for (const { preset, model } of presetsOf(ctx.controller.catalog())) {
    const base = byName.get(model.name)!;
    const meta = { ...base.meta!, preset: { model: model.name, source: preset.source, ...presetSummary(preset) } };
    presets.push({ ...base, id: preset.name, aliases: [], meta });
  }
  return { object: "list", data: [...data, ...presets, ...(ctx.peers ? ctx.peers.modelEntries() : [])] };
}

/** What a preset changes, for the model lists. */
function presetSummary(p: Preset): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (p.set) out.set = p.set;
  if (p.strip) out.strip = p.strip;
  if (p.system !== undefined) out.system = p.system;
  if (p.systemMode) out.systemMode = p.systemMode;
  if (p.messages) out.messages = p.messages.length;
  if (p.description) out.description = p.description;
  return out;
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
