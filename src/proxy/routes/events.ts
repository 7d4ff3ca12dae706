/**
 * `GET /api/events`: an SSE stream of the controller's events (state changes, load progress, health, crashes),
 * opened with a `hello` carrying every model's status (the stream itself: event-hub.ts).
 */
import type { EventStreamMessage } from "../api-types.js";
import type { RouteModule } from "./types.js";

export const eventRoutes: RouteModule = {
  name: "events",
  routes: (ctx) => [
    {
      method: "GET",
      path: "/api/events",
      handle: (_req, res) =>
        ctx.events.watch(res, { type: "hello", models: ctx.controller.status() } satisfies EventStreamMessage),
    },
  ],
};
