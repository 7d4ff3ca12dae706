/**
 * Ollama's API (ollama-api.ts over src/ollama/): `/`, `/api/version`, `/api/tags`, `/api/ps`, `/api/show`,
 * `/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`, `/api/pull`, `/api/copy`, `/api/delete`,
 * `/api/create` (a preset: ollama-presets.ts), and clear 501s for the rest.
 * Exact paths only (plus `/api/blobs/`), none shared with management's `/api/status`, events or logs. Errors in
 * Ollama's `{"error":"…"}` shape. `ollamaRoutes()` takes what only startProxy knows (gglib pull, catalog reload,
 * whether models sit in VRAM); the default module (in ROUTE_MODULES) has no pull.
 */
import { OllamaApi, OLLAMA_ROUTES, writeOllamaError, type OllamaApiOptions } from "../ollama-api.js";
import type { Route, RouteModule } from "./types.js";

export type OllamaExtras = Partial<Pick<OllamaApiOptions, "pull" | "reload" | "onGpu" | "log" | "registry">>;

export function ollamaRoutes(extras: OllamaExtras = {}): RouteModule {
  return {
    name: "ollama",
    routes: (ctx) => {
      const api = new OllamaApi({
        controller: ctx.controller,
        metrics: ctx.metrics,
        dispatcherFor: (h) => ctx.relay.dispatcherFor(h),
        bodyLimit: ctx.bodyLimit,
        ...extras,
      });
      const handle: Route["handle"] = (req, res, path) => api.handle(req, res, path);
      const routes: Route[] = OLLAMA_ROUTES.map((r) => {
        const [method, path] = r.split(" ") as [string, string];
        return { method, path, handle, writeError: writeOllamaError };
      });
      routes.push({ method: "*", path: "/api/blobs/", prefix: true, handle, writeError: writeOllamaError });
      return routes;
    },
  };
}
