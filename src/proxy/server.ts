/**
 * The proxy's HTTP server: one OpenAI-compatible endpoint for every model. node:http, a hand-written router, and
 * undici for the upstream (forward.ts). Routing: POST bodies by their JSON `model` (only `model` and `stream` are
 * read; the original bytes are forwarded), GET by `?model=`, `/upstream/{model}/{path}` passes anything through.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Dispatcher } from "undici";
import type { ProxyModel } from "./catalog.js";
import { resolveModelName } from "./catalog.js";
import type { Lease, ModelController, ProxyEvent } from "./controller.js";
import { createUpstreamPool, forward } from "./forward.js";
import {
  ProxyHttpError,
  readBody,
  safeHandler,
  sendError,
  sendJson,
  SSE_HEADERS,
  sseErrorEvent,
  upstreamRequestHeaders,
} from "./http-util.js";
import type { ProxyMetrics } from "./metrics.js";

export interface ProxyServerOptions {
  host: string;
  port: number;
  apiKeys?: readonly string[];
  corsOrigins?: readonly string[];
  bodyLimit?: number;
  defaultModel?: string;
  /** Interval of `: loading …` comments while a stream waits, ms (≤ 5000). */
  keepAliveMs?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /** Extra status for /api/status. */
  info?: () => Record<string, unknown>;
  log?: (line: string) => void;
}

const DEFAULT_BODY_LIMIT = 32 * 1024 * 1024;

export class ProxyServer {
  readonly server: Server;
  /** One connection pool per llama-server process, keyed by origin; replaced when another process takes the port. */
  private readonly pools = new Map<string, { id: string; pool: Dispatcher }>();
  private readonly keys: Buffer[];
  private readonly sseClients = new Set<ServerResponse>();
  private closing = false;

  constructor(
    private readonly controller: ModelController,
    private readonly metrics: ProxyMetrics,
    private readonly o: ProxyServerOptions,
  ) {
    this.keys = (o.apiKeys ?? []).map((k) => Buffer.from(k));
    this.server = createServer(
      {
        // the proxy never reads Host; without this node answers a Host-less HTTP/1.1 request itself with an
        // empty 400 instead of our OpenAI-shaped error
        requireHostHeader: false,
        headersTimeout: o.headersTimeoutMs ?? 30_000,
        requestTimeout: o.requestTimeoutMs ?? 120_000,
        keepAliveTimeout: o.keepAliveTimeoutMs ?? 5_000,
        // how often slow clients are checked against headersTimeout/requestTimeout
        connectionsCheckingInterval: Math.min(o.headersTimeoutMs ?? 30_000, 5_000),
      },
      safeHandler(
        (req, res) => this.handle(req, res),
        (e) => o.log?.(`request failed: ${(e as Error)?.stack ?? String(e)}`),
      ),
    );
    this.server.on("clientError", (err, socket) => {
      if (socket.writable && !socket.destroyed) {
        const timeout = (err as NodeJS.ErrnoException).code === "ERR_HTTP_REQUEST_TIMEOUT";
        const body = timeout
          ? JSON.stringify({
              error: {
                message: "The request was not received in time (slow client).",
                type: "invalid_request_error",
                code: "request_timeout",
              },
            })
          : JSON.stringify({
              error: { message: `Bad request: ${err.message}`, type: "invalid_request_error", code: "bad_request" },
            });
        const status = timeout ? "408 Request Timeout" : "400 Bad Request";
        socket.end(
          `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      } else socket.destroy();
    });
    controller.on((e) => this.broadcast(e));
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      this.server.once("error", onErr);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off("error", onErr);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stop accepting connections; end the event streams. Open requests continue until the controller drains. */
  async close(graceMs = 2_000): Promise<void> {
    this.closing = true;
    for (const c of this.sseClients) c.end();
    this.sseClients.clear();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    const idle = setInterval(() => this.server.closeIdleConnections(), 250);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (t = setTimeout(r, graceMs)))]);
    clearInterval(idle);
    if (t) clearTimeout(t);
    this.server.closeAllConnections();
    await Promise.all([...this.pools.values()].map((p) => p.pool.close().catch(() => {})));
    this.pools.clear();
  }

  // ---- routing -------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q >= 0 ? url.slice(0, q) : url;
    const query = q >= 0 ? new URLSearchParams(url.slice(q + 1)) : undefined;
    const method = req.method ?? "GET";

    this.cors(req, res);
    if (method === "OPTIONS") {
      res.writeHead(204, { "content-length": "0" });
      res.end();
      return;
    }
    if (path === "/health" || path === "/v1/health") {
      sendJson(res, 200, { status: this.closing ? "shutting_down" : "ok" });
      return;
    }
    if (!this.authorized(req)) {
      throw new ProxyHttpError(
        401,
        "invalid_api_key",
        "Missing or invalid API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
      );
    }
    if (method === "GET") {
      switch (path) {
        case "/v1/models":
          sendJson(res, 200, this.modelList());
          return;
        case "/models":
          sendJson(res, 200, this.modelList());
          return;
        case "/api/status":
          sendJson(res, 200, { ...(this.o.info?.() ?? {}), models: this.controller.status() });
          return;
        case "/api/events":
          this.events(req, res);
          return;
        case "/metrics":
          if (!query?.get("model")) {
            res.writeHead(200, { "content-type": this.metrics.contentType });
            res.end(await this.metrics.text());
            return;
          }
          // a model's own metrics: only when it is running (never loads or wakes a model)
          await this.modelMetrics(req, res, query.get("model")!);
          return;
      }
      if (path.startsWith("/api/logs/")) {
        this.logs(req, res, decodeName(path.slice("/api/logs/".length)), query);
        return;
      }
    }
    if (method === "POST" && (path === "/models/load" || path === "/models/unload")) {
      await this.loadUnload(req, res, path === "/models/load");
      return;
    }
    if (path.startsWith("/upstream/")) {
      await this.upstream(req, res, path, query);
      return;
    }
    if (this.closing) throw new ProxyHttpError(503, "shutting_down", "The proxy is shutting down.", 5);

    // Model routes.
    let body: Buffer | null = null;
    let requested: string | undefined;
    let stream = false;
    if (method === "POST" || method === "PUT" || method === "PATCH") {
      body = await readBody(req, this.o.bodyLimit ?? DEFAULT_BODY_LIMIT);
      const ct = String(req.headers["content-type"] ?? "");
      // like llama-server, read the body as JSON whatever the content type says (curl -d sends form-urlencoded)
      if (!ct.startsWith("multipart/")) {
        const parsed = parseJsonBody(body);
        requested = typeof parsed.model === "string" && parsed.model !== "" ? parsed.model : undefined;
        stream = parsed.stream === true;
      }
      requested ??= query?.get("model") ?? undefined;
    } else {
      requested = query?.get("model") ?? undefined;
    }
    requested ??= this.o.defaultModel;
    if (!requested) {
      throw new ProxyHttpError(
        400,
        "model_missing",
        `The request names no model. Set "model" in the JSON body (or ?model= for GET). Available: ${this.names()}.`,
      );
    }
    const name = this.resolve(requested);
    // llama-server's /props, /slots, /health… are monitoring: they do not count as activity for the TTL
    const activity = method !== "GET" || !(path === "/props" || path === "/slots");
    await this.proxy(req, res, { name, path: url, clientPath: path, method, body, stream, activity });
  }

  private resolve(requested: string): string {
    const name = resolveModelName(this.controller.catalog(), requested);
    if (!name || !this.controller.state(name)) {
      throw new ProxyHttpError(
        404,
        "model_not_found",
        `The model '${requested}' does not exist. Available models: ${this.names()}.`,
      );
    }
    return name;
  }

  private names(): string {
    const n = this.controller.catalog().map((m) => m.name);
    return n.length > 0 ? n.join(", ") : "(none: add models to --models-dir or the config)";
  }

  // ---- the proxied request -------------------------------------------------------------------------------

  private async proxy(
    req: IncomingMessage,
    res: ServerResponse,
    r: {
      name: string;
      path: string;
      clientPath: string;
      method: string;
      body: Buffer | null;
      stream: boolean;
      activity: boolean;
    },
  ): Promise<void> {
    const t0 = performance.now();
    let sseCommitted = false;
    let lease: Lease | undefined = this.controller.tryAcquire(r.name, r.activity);
    if (!lease) {
      const waited = await this.waitForModel(res, r, t0);
      if (!waited) return;
      ({ lease, sseCommitted } = waited);
    }
    await this.send(req, res, r, lease, sseCommitted, t0);
  }

  /** The model is not ready: wait for it (SSE keep-alive comments for streams), or answer the error. */
  private async waitForModel(
    res: ServerResponse,
    r: { name: string; clientPath: string; stream: boolean; activity: boolean },
    t0: number,
  ): Promise<{ lease: Lease; sseCommitted: boolean } | undefined> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on("close", onClose);
    let sseCommitted = false;
    let heartbeat: NodeJS.Timeout | undefined;
    let unlisten: (() => void) | undefined;
    let lease: Lease;
    try {
      const ready = this.controller.isReady(r.name);
      if (!ready && r.stream) {
        // Tell the client at once that we are alive, and keep telling it while the model loads.
        sseCommitted = true;
        res.writeHead(200, SSE_HEADERS);
        res.flushHeaders();
        let lastPct = -1;
        const beat = () => {
          if (res.destroyed || res.writableEnded) return;
          const p = this.controller.loadProgress(r.name);
          const st = this.controller.state(r.name)?.status ?? "loading";
          const what =
            st === "pending" || st === "unloaded" || st === "draining" || st === "stopping"
              ? "waiting for room to load"
              : "loading";
          res.write(`: ${what} ${r.name}${p !== undefined && st === "loading" ? ` ${Math.round(p * 100)}%` : ""}\n\n`);
        };
        beat();
        heartbeat = setInterval(beat, Math.min(this.o.keepAliveMs ?? 2_000, 5_000));
        unlisten = this.controller.on((e) => {
          if (e.type === "progress" && e.model === r.name && !res.destroyed && !res.writableEnded) {
            const pct = Math.round(e.value * 100);
            if (pct !== lastPct) {
              lastPct = pct;
              res.write(`: loading ${r.name} ${pct}%\n\n`);
            }
          }
        });
      }
      try {
        lease = await this.controller.acquire(r.name, { signal: abort.signal, activity: r.activity });
      } finally {
        if (heartbeat) clearInterval(heartbeat);
        unlisten?.();
      }
    } catch (e) {
      res.off("close", onClose);
      const err = e instanceof ProxyHttpError ? e : new ProxyHttpError(500, "internal_error", String(e));
      this.metrics.request(r.name, err.status, (performance.now() - t0) / 1000, undefined, undefined);
      if (err.status === 499) return undefined; // the client is gone
      if (sseCommitted) res.end(sseErrorEvent(r.clientPath, err.status, err.code, err.message));
      else sendError(res, err);
      return undefined;
    }
    res.off("close", onClose);
    return { lease, sseCommitted };
  }

  /** The pool of this llama-server process; a pool left by an earlier process on the same port is destroyed. */
  private dispatcherFor(handle: { id: string; url: string }): Dispatcher {
    const cur = this.pools.get(handle.url);
    if (cur?.id === handle.id) return cur.pool;
    if (cur) void cur.pool.destroy().catch(() => {});
    const pool = createUpstreamPool(handle.url);
    this.pools.set(handle.url, { id: handle.id, pool });
    return pool;
  }

  private async send(
    req: IncomingMessage,
    res: ServerResponse,
    r: { name: string; path: string; clientPath: string; method: string; body: Buffer | null },
    lease: Lease,
    sseCommitted: boolean,
    t0: number,
  ): Promise<void> {
    if (res.destroyed) {
      lease.release();
      return;
    }
    const tForward = performance.now();
    let h: ReturnType<typeof forward>;
    try {
      h = forward(this.dispatcherFor(lease.handle), res, {
        origin: lease.handle.url,
        method: r.method,
        path: r.path,
        headers: upstreamRequestHeaders(req.headers, r.body ? r.body.length : undefined),
        body: r.body,
        sseCommitted,
        clientPath: r.clientPath,
        collectUsage: true,
        explainFailure: (err) => this.controller.explainFailure(r.name, lease.instance, err),
      });
    } catch (e) {
      lease.release();
      throw new ProxyHttpError(400, "bad_request", `The request cannot be forwarded: ${(e as Error).message}`);
    }
    const untrack = this.controller.trackUpstream(r.name, lease.instance, (reason) => h.abort(reason));
    const result = await h.done;
    untrack();
    lease.release();
    const status = result.completed ? result.status : res.headersSent ? result.status || 499 : 499;
    const ttfbS = result.ttfbMs !== undefined ? (tForward - t0 + result.ttfbMs) / 1000 : undefined;
    this.metrics.request(r.name, status, (performance.now() - t0) / 1000, ttfbS, result.usage);
    this.controller.observeUsage(r.name, result.usage);
  }

  /** `/upstream/{model}/{path}`: anything, passed through to that model (loading it if needed). */
  private async upstream(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams | undefined,
  ): Promise<void> {
    const rest = path.slice("/upstream/".length);
    const slash = rest.indexOf("/");
    const requested = decodeName(slash >= 0 ? rest.slice(0, slash) : rest);
    if (!requested)
      throw new ProxyHttpError(400, "model_missing", `Use /upstream/{model}/{path}. Available: ${this.names()}.`);
    const name = this.resolve(requested);
    const method = req.method ?? "GET";
    const body =
      method === "GET" || method === "HEAD" ? null : await readBody(req, this.o.bodyLimit ?? DEFAULT_BODY_LIMIT);
    const upstreamPath = (slash >= 0 ? rest.slice(slash) : "/") + (query ? `?${query.toString()}` : "");
    await this.proxy(req, res, {
      name,
      path: upstreamPath,
      clientPath: slash >= 0 ? rest.slice(slash) : "/",
      method,
      body,
      stream: false,
      activity: true,
    });
  }

  private async modelMetrics(req: IncomingMessage, res: ServerResponse, requested: string): Promise<void> {
    const name = this.resolve(requested);
    if (!this.controller.isReady(name)) {
      throw new ProxyHttpError(
        503,
        "model_not_loaded",
        `Model '${name}' is not loaded; its metrics exist only while it runs (this endpoint never loads a model).`,
      );
    }
    await this.proxy(req, res, {
      name,
      path: "/metrics",
      clientPath: "/metrics",
      method: "GET",
      body: null,
      stream: false,
      activity: false,
    });
  }

  // ---- management ----------------------------------------------------------------------------------------

  private modelList(): unknown {
    const status = new Map(this.controller.status().map((s) => [s.name, s]));
    const data = this.controller.catalog().map((m: ProxyModel) => {
      const s = status.get(m.name);
      const state = s?.state ?? "unloaded";
      const value =
        state === "ready" || state === "draining"
          ? "loaded"
          : state === "loading" || state === "pending"
            ? "loading"
            : state === "failed"
              ? "failed"
              : state === "stopping"
                ? "unloading"
                : "unloaded";
      const st: Record<string, unknown> = { value, state };
      if (state === "failed" && s?.lastError) {
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
          pinned: m.spec.pinned === true,
        },
      };
    });
    return { object: "list", data };
  }

  private async loadUnload(req: IncomingMessage, res: ServerResponse, load: boolean): Promise<void> {
    const body = parseJsonBody(await readBody(req, 64 * 1024));
    if (typeof body.model !== "string" || body.model === "") {
      throw new ProxyHttpError(400, "model_missing", `Send {"model": "<name>"}. Available: ${this.names()}.`);
    }
    const name = this.resolve(body.model);
    if (load) {
      const abort = new AbortController();
      res.on("close", () => {
        if (!res.writableFinished) abort.abort();
      });
      await this.controller.load(name, abort.signal);
      sendJson(res, 200, { success: true, model: name, status: "loaded" });
      return;
    }
    const st = this.controller.state(name)?.status;
    if (st === "unloaded" || st === "failed" || st === undefined) {
      throw new ProxyHttpError(400, "model_not_running", `Model '${name}' is not running.`);
    }
    this.controller.unload(name);
    sendJson(res, 200, { success: true, model: name, status: this.controller.state(name)?.status ?? "unloaded" });
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    res.write(`data: ${JSON.stringify({ type: "hello", models: this.controller.status() })}\n\n`);
    this.sseClients.add(res);
    const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
    res.on("close", () => {
      clearInterval(ping);
      this.sseClients.delete(res);
    });
  }

  private broadcast(e: ProxyEvent): void {
    if (this.sseClients.size === 0) return;
    if (e.type === "log") {
      for (const c of this.sseClients) {
        const f = (c as ServerResponse & { logFollow?: string }).logFollow;
        if (f === e.model) c.write(`data: ${JSON.stringify(e.line)}\n\n`);
      }
      return;
    }
    const text = `data: ${JSON.stringify(e)}\n\n`;
    for (const c of this.sseClients) if (!(c as ServerResponse & { logFollow?: string }).logFollow) c.write(text);
  }

  private logs(req: IncomingMessage, res: ServerResponse, requested: string, query: URLSearchParams | undefined): void {
    const name = this.resolve(requested);
    const n = Math.min(Math.max(Number(query?.get("lines") ?? 200) || 200, 1), 5000);
    const lines = this.controller.modelLogs(name, n);
    if (query?.get("follow") !== "1") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end(lines.join("\n") + (lines.length > 0 ? "\n" : ""));
      return;
    }
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    for (const l of lines) res.write(`data: ${JSON.stringify(l)}\n\n`);
    (res as ServerResponse & { logFollow?: string }).logFollow = name;
    this.sseClients.add(res);
    res.on("close", () => this.sseClients.delete(res));
  }

  // ---- security ------------------------------------------------------------------------------------------

  private authorized(req: IncomingMessage): boolean {
    if (this.keys.length === 0) return true;
    const auth = req.headers.authorization;
    let given: string | undefined;
    if (typeof auth === "string" && /^bearer\s+/i.test(auth)) given = auth.replace(/^bearer\s+/i, "").trim();
    const x = req.headers["x-api-key"];
    if (given === undefined && typeof x === "string") given = x.trim();
    if (!given) return false;
    const g = Buffer.from(given);
    return this.keys.some((k) => k.length === g.length && timingSafeEqual(k, g));
  }

  private cors(req: IncomingMessage, res: ServerResponse): void {
    const allowed = this.o.corsOrigins;
    if (!allowed || allowed.length === 0) return;
    const origin = req.headers.origin;
    if (!origin) return;
    if (!allowed.includes("*") && !allowed.includes(origin)) return;
    res.setHeader("access-control-allow-origin", allowed.includes("*") ? "*" : origin);
    res.setHeader("vary", "Origin");
    if (req.method === "OPTIONS") {
      res.setHeader("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS");
      res.setHeader(
        "access-control-allow-headers",
        String(req.headers["access-control-request-headers"] ?? "authorization, content-type, x-api-key"),
      );
      res.setHeader("access-control-max-age", "86400");
    }
  }
}

/** A model name from a URL path segment; malformed percent-encoding → 400. */
function decodeName(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ProxyHttpError(
      400,
      "invalid_model_name",
      `The model name in the path is not valid percent-encoding: ${JSON.stringify(segment.slice(0, 200))}.`,
    );
  }
}

/** Parses a JSON request body; only `model` and `stream` are used. Malformed JSON → 400 (llama-server says 500). */
export function parseJsonBody(body: Buffer): { model?: unknown; stream?: unknown } {
  if (body.length === 0)
    throw new ProxyHttpError(400, "invalid_json", "The request body is empty; send a JSON object.");
  let v: unknown;
  try {
    v = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new ProxyHttpError(400, "invalid_json", `The request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ProxyHttpError(400, "invalid_json", "The request body must be a JSON object.");
  }
  return v;
}
