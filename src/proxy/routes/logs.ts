/** `GET /api/logs/{model}?lines=N[&follow=1]`: the log tail of a model's llama-server, as text or an SSE stream. */
import { SSE_HEADERS } from "../http/sse.js";
import { decodeName } from "./names.js";
import type { RouteModule } from "./types.js";

const PREFIX = "/api/logs/";

export const logRoutes: RouteModule = {
  name: "logs",
  routes: (ctx) => [
    {
      method: "GET",
      path: PREFIX,
      prefix: true,
      handle(_req, res, path, query) {
        const name = ctx.resolve(decodeName(path.slice(PREFIX.length)));
        const n = Math.min(Math.max(Number(query?.get("lines") ?? 200) || 200, 1), 5000);
        const lines = ctx.controller.modelLogs(name, n);
        if (query?.get("follow") !== "1") {
          res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
          res.end(lines.join("\n") + (lines.length > 0 ? "\n" : ""));
          return;
        }
        res.writeHead(200, SSE_HEADERS);
        res.flushHeaders();
        for (const l of lines) res.write(`data: ${JSON.stringify(l)}\n\n`);
        ctx.events.follow(res, name);
      },
    },
  ],
};
