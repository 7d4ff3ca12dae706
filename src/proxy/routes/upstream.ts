/**
 * `/upstream/{model}/{path}`: any request, passed through to that model's llama-server (loading it if needed), but
 * its slot actions (routes/slots.ts).
 */
import { HttpError } from "../../core/errors.js";
import { readBody } from "../http/json.js";
import { decodeName } from "./names.js";
import { refuseSlotAction } from "./slots.js";
import type { RouteModule } from "./types.js";

const PREFIX = "/upstream/";

export const upstreamRoutes: RouteModule = {
  name: "upstream",
  routes: (ctx) => [
    {
      method: "*",
      path: PREFIX,
      prefix: true,
      async handle(req, res, path, query) {
        const rest = path.slice(PREFIX.length);
        const slash = rest.indexOf("/");
        const requested = decodeName(slash >= 0 ? rest.slice(0, slash) : rest);
        if (!requested)
          throw new HttpError(400, "model_missing", `Use /upstream/{model}/{path}. Available: ${ctx.names()}.`);
        const name = ctx.resolve(requested);
        // the context cache's slot files are the proxy's own (routes/slots.ts)
        refuseSlotAction(slash >= 0 ? rest.slice(slash) : "/");
        const method = req.method ?? "GET";
        const body = method === "GET" || method === "HEAD" ? null : await readBody(req, ctx.bodyLimit);
        const clientPath = slash >= 0 ? rest.slice(slash) : "/";
        await ctx.relay.relay(req, res, {
          name,
          path: clientPath + (query ? `?${query.toString()}` : ""),
          clientPath,
          method,
          body,
          stream: false,
          activity: true,
        });
      },
    },
  ],
};
