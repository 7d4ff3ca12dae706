/**
 * Ollama's API on the proxy's port, one table entry per endpoint: `/` ("Ollama is running"), /api/version,
 * /api/tags, /api/ps, /api/show (models.ts); /api/chat, /api/generate (chat.ts) and /api/embed, /api/embeddings
 * (embed.ts), which reach llama-server through the relay's translated mode like every other model request;
 * /api/pull, /api/copy, /api/delete, /api/create (a preset: ../../ollama-presets.ts) (manage.ts); clear 501s for the
 * rest. The translation itself is pure, in
 * src/ollama/. Exact paths only (plus `/api/blobs/`), none shared with management's `/api/status`, events or logs.
 * Errors are HttpErrors, written in Ollama's `{"error":"…"}` shape. `ollamaRoutes()` takes what only startProxy
 * knows (gglib pull, catalog reload, whether models sit in VRAM); the default module (in ROUTE_MODULES) has no pull.
 */
import { HttpError } from "../../../core/errors.js";
import type { Route, RouteModule } from "../types.js";
import { chat, generate } from "./chat.js";
import { ollamaDeps, writeOllamaError, type OllamaDeps, type OllamaExtras, type OllamaHandler } from "./common.js";
import { embed, embeddingsLegacy } from "./embed.js";
import { copy, create, pull, remove, unsupported, UNSUPPORTED } from "./manage.js";
import { ps, running, show, tags, version } from "./models.js";

export { writeOllamaError, type OllamaExtras, type PullFn, type PullProgressLike } from "./common.js";
export { OLLAMA_COMPAT_VERSION } from "./models.js";

/** Ollama's endpoints: method, exact path (or a prefix ending in "/"), handler. */
export const OLLAMA_ENDPOINTS: readonly (readonly [method: string, path: string, handle: OllamaHandler])[] = [
  ["GET", "/", running],
  ["HEAD", "/", running],
  ["GET", "/api/version", version],
  ["HEAD", "/api/version", version],
  ["GET", "/api/tags", tags],
  ["HEAD", "/api/tags", tags],
  ["GET", "/api/ps", ps],
  ["POST", "/api/show", show],
  ["POST", "/api/chat", chat],
  ["POST", "/api/generate", generate],
  ["POST", "/api/embed", embed],
  ["POST", "/api/embeddings", embeddingsLegacy],
  ["POST", "/api/pull", pull],
  ["POST", "/api/copy", copy],
  ["DELETE", "/api/delete", remove],
  ["POST", "/api/create", create],
  ["POST", "/api/push", unsupported(UNSUPPORTED.push)],
  ["*", "/api/blobs/", unsupported(UNSUPPORTED.blobs)],
];

export function ollamaRoutes(extras: OllamaExtras = {}): RouteModule {
  return {
    name: "ollama",
    routes: (ctx) => {
      const d = ollamaDeps(ctx, extras);
      return OLLAMA_ENDPOINTS.map(([method, path, handle]): Route => ({
        method,
        path,
        ...(path.length > 1 && path.endsWith("/") ? { prefix: true } : {}),
        handle: (req, res) => run(d, handle, req, res),
        writeError: writeOllamaError,
      }));
    },
  };
}

/** A handler's unexpected error is logged and answered as Ollama's 500 (a stream already begun ends with it). */
async function run(
  d: OllamaDeps,
  handle: OllamaHandler,
  req: Parameters<OllamaHandler>[1],
  res: Parameters<OllamaHandler>[2],
): Promise<void> {
  try {
    await handle(d, req, res);
  } catch (e) {
    if (e instanceof HttpError) throw e;
    d.extras.log?.(`ollama api: ${(e as Error)?.stack ?? String(e)}`);
    throw new HttpError(500, "internal_error", `internal error: ${(e as Error)?.message ?? String(e)}`);
  }
}
