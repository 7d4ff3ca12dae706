/**
 * `GET /api/events`: an SSE stream of the controller's events (state changes, load progress, health, crashes),
 * opened with a `hello` carrying every model's status. The hub also carries the log lines of
 * `/api/logs/{model}?follow=1` streams (routes/logs.ts): each follower gets only its model's lines.
 */
import type { ServerResponse } from "node:http";
import type { ProxyEvent } from "../controller.js";
import { SSE_HEADERS } from "../http/sse.js";
import type { RouteModule } from "./types.js";

const PING_MS = 15_000;

export class EventHub {
  /** /api/events clients: every event but log lines. */
  private readonly watchers = new Set<ServerResponse>();
  /** Log followers and the model each follows. */
  private readonly followers = new Map<ServerResponse, string>();

  /** Starts an event stream on `res`: SSE headers, the `hello`, a ping every 15 s. */
  watch(res: ServerResponse, hello: unknown): void {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    res.write(`data: ${JSON.stringify(hello)}\n\n`);
    this.watchers.add(res);
    const ping = setInterval(() => res.write(": ping\n\n"), PING_MS);
    res.on("close", () => {
      clearInterval(ping);
      this.watchers.delete(res);
    });
  }

  /** Adds `res` (an SSE stream already started) as a follower of `model`'s log lines. */
  follow(res: ServerResponse, model: string): void {
    this.followers.set(res, model);
    res.on("close", () => this.followers.delete(res));
  }

  publish(e: ProxyEvent): void {
    if (e.type === "log") {
      if (this.followers.size === 0) return;
      for (const [c, model] of this.followers) if (model === e.model) c.write(`data: ${JSON.stringify(e.line)}\n\n`);
      return;
    }
    if (this.watchers.size === 0) return;
    const text = `data: ${JSON.stringify(e)}\n\n`;
    for (const c of this.watchers) c.write(text);
  }

  /** Ends every stream (the server is closing). */
  close(): void {
    for (const c of this.watchers) c.end();
    for (const c of this.followers.keys()) c.end();
    this.watchers.clear();
    this.followers.clear();
  }
}

export const eventRoutes: RouteModule = {
  name: "events",
  routes: (ctx) => [
    {
      method: "GET",
      path: "/api/events",
      handle: (_req, res) => ctx.events.watch(res, { type: "hello", models: ctx.controller.status() }),
    },
  ],
};
