/**
 * What a route module sees and gives: the shared proxy context, and routes (method + exact path or prefix +
 * handler). Modules are listed in routes/index.ts; the server matches a request against them in table.ts.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ProxyInfo } from "../api-types.js";
import type { ModelController } from "../controller.js";
import type { ErrorWriter } from "../http/errors.js";
import type { ProxyMetrics } from "../metrics.js";
import type { Relay } from "../relay.js";
import type { EventHub } from "../event-hub.js";
import type { ActivityLog } from "../activity.js";
import type { PeerRouter } from "../peer-router.js";

/** Everything the routes share. Owned by the ProxyServer; routes keep no state of their own except in here. */
export interface ProxyContext {
  readonly controller: ModelController;
  readonly metrics: ProxyMetrics;
  /** Sends a request on to a model's llama-server (acquire, wait, forward, metrics). */
  readonly relay: Relay;
  /** The SSE clients of /api/events and /api/logs?follow=1. */
  readonly events: EventHub;
  /** The recent requests (a bounded ring the relay writes as each request ends). */
  readonly activity: ActivityLog;
  readonly bodyLimit: number;
  readonly defaultModel: string | undefined;
  /** Extra fields of /api/status (uptime, budget). */
  readonly info: () => ProxyInfo;
  /** The server is closing: new model requests get 503. */
  isClosing(): boolean;
  /** The catalog name for a requested name or alias; 404 naming the available models when there is none. */
  resolve(requested: string): string;
  /** The model names for error messages ("a, b" or a hint when there are none). */
  names(): string;
  /** The other hosts (peers), when configured: model requests are placed across them. */
  readonly peers: PeerRouter | undefined;
}

/**
 * Handles one request. `path` is the URL without its query; `query` is undefined when the URL has none.
 * Throw an HttpError for an error reply (written by the route's `writeError`, else in OpenAI's shape).
 */
export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  query: URLSearchParams | undefined,
) => Promise<void> | void;

export interface Route {
  /** An HTTP method, or "*" for any. */
  readonly method: string;
  /** The exact path, or with `prefix` every path that starts with it ("" matches everything left over). */
  readonly path: string;
  readonly prefix?: boolean;
  /** Served without an API key (health checks). */
  readonly open?: boolean;
  readonly handle: RouteHandler;
  /** How this route's errors are written (default: OpenAI's shape). */
  readonly writeError?: ErrorWriter;
}

/** A set of routes for one API or concern; `routes` is called once, when the server is built. */
export interface RouteModule {
  readonly name: string;
  routes(ctx: ProxyContext): readonly Route[];
}
