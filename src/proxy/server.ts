/**
 * The proxy's HTTP server: one OpenAI-compatible endpoint for every model, on node:http. It owns the socket
 * settings, CORS, the Origin/Host check (http/origin.ts), the API key check and the route table; what each path
 * does lives in routes/ (listed in routes/index.ts), relaying to llama-server in relay.ts, the upstream hot path in
 * forward.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { hostname } from "node:os";
import type { AddressInfo } from "node:net";
import { HttpError } from "../core/errors.js";
import type { ProxyInfo } from "./api-types.js";
import type { ModelController } from "./controller.js";
import { apiKeyAuth, unauthorized, type AuthCheck } from "./http/auth.js";
import { answerPreflight, corsPolicy, type CorsPolicy } from "./http/cors.js";
import { originGuard, type OriginGuard } from "./http/origin.js";
import { clientErrorResponse, safeHandler, sendError } from "./http/errors.js";
import type { ProxyMetrics } from "./metrics.js";
import { Relay } from "./relay.js";
import { ActivityLog } from "./activity.js";
import { EventHub } from "./event-hub.js";
import { ROUTE_MODULES } from "./routes/index.js";
import { availableNames, resolveName } from "./routes/names.js";
import { RouteTable } from "./routes/table.js";
import type { ProxyContext, RouteModule } from "./routes/types.js";
import type { PeerRouter } from "./peer-router.js";

export interface ProxyServerOptions {
  host: string;
  port: number;
  apiKeys?: readonly string[];
  corsOrigins?: readonly string[];
  /** Names besides the bound host that browsers may use for this proxy when no key is set (default: this machine's hostname). */
  hostNames?: readonly string[];
  bodyLimit?: number;
  defaultModel?: string;
  /** Interval of `: loading …` comments while a stream waits, ms (≤ 5000). */
  keepAliveMs?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /** Extra status for /api/status. */
  info?: () => ProxyInfo;
  log?: (line: string) => void;
  /** The route modules (default: routes/index.ts's ROUTE_MODULES). */
  routes?: readonly RouteModule[];
  /** The record of recent requests (default: a new one of 1000). */
  activity?: ActivityLog;
  /** Other hosts to route requests to (src/peers/); closed with the server. */
  peers?: PeerRouter;
}

const DEFAULT_BODY_LIMIT = 32 * 1024 * 1024;

export class ProxyServer {
  readonly server: Server;
  private readonly relay: Relay;
  private readonly events = new EventHub();
  private readonly table: RouteTable;
  private readonly authorized: AuthCheck;
  private readonly cors: CorsPolicy;
  private readonly guard: OriginGuard;
  private closing = false;

  constructor(
    private readonly controller: ModelController,
    metrics: ProxyMetrics,
    private readonly o: ProxyServerOptions,
  ) {
    this.authorized = apiKeyAuth(o.apiKeys ?? []);
    this.cors = corsPolicy(o.corsOrigins);
    this.guard = originGuard({
      corsOrigins: o.corsOrigins ?? [],
      checkHost: (o.apiKeys ?? []).length === 0,
      hostNames: [o.host, ...(o.hostNames ?? [hostname()])],
    });
    const activity = o.activity ?? new ActivityLog();
    this.relay = new Relay(controller, metrics, o.keepAliveMs, activity);
    const ctx: ProxyContext = {
      controller,
      metrics,
      relay: this.relay,
      events: this.events,
      activity,
      bodyLimit: o.bodyLimit ?? DEFAULT_BODY_LIMIT,
      defaultModel: o.defaultModel,
      info: o.info ?? (() => ({})),
      isClosing: () => this.closing,
      resolve: (requested) => resolveName(controller, requested),
      names: () => availableNames(controller),
      peers: o.peers,
    };
    this.table = new RouteTable((o.routes ?? ROUTE_MODULES).flatMap((m) => m.routes(ctx)));
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
        (res, e, req) => this.writeError(req, res, e),
      ),
    );
    this.server.on("clientError", (err, socket) => {
      if (socket.writable && !socket.destroyed) socket.end(clientErrorResponse(err));
      else socket.destroy();
    });
    controller.on((e) => this.events.publish(e));
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
    this.events.close();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    const idle = setInterval(() => this.server.closeIdleConnections(), 250);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (t = setTimeout(r, graceMs)))]);
    clearInterval(idle);
    if (t) clearTimeout(t);
    this.server.closeAllConnections();
    await this.relay.close();
    await this.o.peers?.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q >= 0 ? url.slice(0, q) : url;
    const query = q >= 0 ? new URLSearchParams(url.slice(q + 1)) : undefined;
    const method = req.method ?? "GET";
    // a web page of another origin (or reaching the proxy by a rebound DNS name) acts for nobody
    const refused = this.guard(req);
    if (refused) throw refused;
    this.cors(req, res);
    if (method === "OPTIONS") return answerPreflight(res);
    // "*" and absolute-form targets are not paths of this server (a client error, not llama-server's failure)
    if (path.charCodeAt(0) !== 0x2f) throw badTarget(path);
    const route = this.table.match(method, path);
    if (!route) throw new Error(`no route for ${method} ${path} (the table has no catch-all)`);
    if (!route.open && !this.authorized(req)) throw unauthorized();
    await route.handle(req, res, path, query);
  }

  /** An error reply in the shape of the route that failed (OpenAI's unless the route says otherwise). */
  private writeError(req: IncomingMessage, res: ServerResponse, e: HttpError): void {
    const url = req.url ?? "/";
    const route = this.table.match(req.method ?? "GET", url.slice(0, url.indexOf("?") >>> 0));
    (route?.writeError ?? sendError)(res, e);
  }
}

function badTarget(target: string): HttpError {
  return new HttpError(
    400,
    "bad_request_target",
    `The request target '${target.slice(0, 200)}' is not a path; send a path that starts with '/', e.g. /v1/chat/completions.`,
  );
}
