/**
 * The SSE clients of the management API: `/api/events` watchers get the controller's events (state changes,
 * load progress, health, crashes); `/api/logs/{model}?follow=1` followers get only their model's log lines.
 */
import type { ServerResponse } from "node:http";
import type { ProxyEvent } from "./api-types.js";
import { SSE_HEADERS } from "./http/sse.js";

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
