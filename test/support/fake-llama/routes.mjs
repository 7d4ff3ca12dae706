// @ts-check
// routing
import fs from "node:fs";
import { opt, routerMode } from "./args.mjs";
import { handleGet } from "./get-endpoints.mjs";
import {
  BAD_KEY_BODY,
  LOADING_BODY,
  NOT_FOUND_BODY,
  allowOrigin,
  connHeader,
  finish,
  sendError,
  sendJson,
} from "./http.mjs";
import { jsonParseErrorMessage } from "./json-error.mjs";
import { K } from "./knobs.mjs";
import { log } from "./log.mjs";
import { handlePost } from "./post-endpoints.mjs";
import { S } from "./state.mjs";

export const GET_ROUTES = new Set([
  "/health",
  "/v1/health",
  "/models",
  "/v1/models",
  "/api/tags",
  "/props",
  "/slots",
  "/metrics",
  "/lora-adapters",
]);
export const POST_ROUTES = new Set([
  "/completion",
  "/completions",
  "/v1/completions",
  "/chat/completions",
  "/v1/chat/completions",
  "/api/chat",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/v1/responses",
  "/v1/chat/completions/input_tokens",
  "/infill",
  "/embedding",
  "/embeddings",
  "/v1/embeddings",
  "/rerank",
  "/reranking",
  "/v1/rerank",
  "/v1/reranking",
  "/tokenize",
  "/detokenize",
  "/apply-template",
  "/props",
  "/lora-adapters",
  "/api/show",
]);
export const PUBLIC = new Set(["/health", "/v1/health"]);

export function recordStats(req, stream) {
  if (!K.statsFile) return;
  try {
    fs.appendFileSync(
      K.statsFile,
      JSON.stringify({
        pid: process.pid,
        model: S.modelId,
        method: req.method,
        path: req.path,
        stream,
        t: Date.now(),
        // the body as received (FAKE_LLAMA_STATS_BODIES=1): what a rewrite in the proxy sent
        ...(K.statsBodies
          ? { body: req.body.toString("latin1"), contentType: req.headers["content-type"] ?? null }
          : {}),
      }) + "\n",
    );
  } catch {
    /* best effort */
  }
}

export function fakeState() {
  return {
    pid: process.pid,
    model: S.modelId,
    alias: opt.aliases[0] ?? null,
    modelPath: opt.model,
    port: S.port,
    state: S.state,
    inFlight: S.inFlight.size,
    queued: S.waiting.length,
    handled: S.handled,
    generations: S.generations,
    slots: S.slots.map((s) => ({ id: s.id, busy: s.busy })),
  };
}

export function dispatch(c, req) {
  if (req.path.startsWith("/__fake/")) {
    if (req.path === "/__fake/state" && req.method === "GET") return sendJson(c, req, 200, fakeState());
    return sendJson(c, req, 404, NOT_FOUND_BODY);
  }
  S.handled++;
  let json = null;
  if (req.method === "POST" && req.body.length > 0) {
    try {
      json = JSON.parse(req.body.toString("utf8"));
    } catch {
      /* handled per route below, like llama.cpp: parse errors surface when the handler reads the body */
    }
  }
  recordStats(req, json?.stream === true);
  if (req.method === "OPTIONS") {
    // CORS preflight: echoes Origin; note Content-Length comes after Keep-Alive here (02-cors-preflight)
    const { close, line } = connHeader(c, req, 200);
    c.sock.write(
      `HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: ${allowOrigin(req)}\r\nAccess-Control-Allow-Credentials: true\r\n` +
        `Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\nContent-Type: text/html\r\n` +
        `${line}Content-Length: 0\r\n\r\n`,
    );
    return finish(c, close);
  }
  // llama.cpp's pre-routing middlewares: first "still loading", then the API key
  if (S.state === "loading") return sendJson(c, req, 503, LOADING_BODY);
  if (opt.apiKeys.length > 0 && !PUBLIC.has(req.path)) {
    const auth = req.headers.authorization ?? "";
    const key = auth.startsWith("Bearer ") ? auth.slice(7) : (req.headers["x-api-key"] ?? "");
    if (!opt.apiKeys.includes(key)) {
      log("W", "srv", "operator()", "unauthorized: Invalid API Key");
      return sendJson(c, req, 401, BAD_KEY_BODY);
    }
  }
  if (routerMode) return routerDispatch(c, req);
  const isGet = req.method === "GET" || req.method === "HEAD";
  const known =
    (isGet && GET_ROUTES.has(req.path)) ||
    (req.method === "POST" && (POST_ROUTES.has(req.path) || /^\/slots\/[^/]+$/.test(req.path)));
  if (!known) return sendJson(c, req, 404, NOT_FOUND_BODY);
  if (isGet) return handleGet(c, req);
  // POST: body must be JSON (llama.cpp answers malformed JSON with a 500 carrying nlohmann's message)
  if (json === null && req.path !== "/props" && !/^\/slots\//.test(req.path)) {
    const msg = jsonParseErrorMessage(req.body.toString("utf8")) ?? "[json.exception.parse_error.101] parse error";
    return sendError(c, req, 500, msg, "server_error");
  }
  return handlePost(c, req, json ?? {});
}

export function routerDispatch(c, req) {
  if ((req.method === "GET" || req.method === "HEAD") && (req.path === "/health" || req.path === "/v1/health"))
    return sendJson(c, req, 200, '{"status":"ok"}');
  if ((req.method === "GET" || req.method === "HEAD") && (req.path === "/models" || req.path === "/v1/models"))
    return sendJson(c, req, 200, { data: [], object: "list" });
  if (req.method === "POST" && POST_ROUTES.has(req.path))
    return sendError(c, req, 400, "model name is missing from the request", "invalid_request_error");
  return sendJson(c, req, 404, NOT_FOUND_BODY);
}
