/**
 * The route table's modules. To add an API, write a RouteModule (routes/types.ts) and list it here: one line.
 * Exact paths win over prefixes, longer prefixes over shorter ones; openai's catch-all (the empty prefix) is matched last.
 * startProxy (index.ts) lists these after the dashboard's modules and before Ollama's, which it builds with what only
 * it knows (gglib pull, the catalog reload, whether models sit in VRAM).
 */
import { eventRoutes } from "./events.js";
import { logRoutes } from "./logs.js";
import { managementRoutes } from "./management.js";
import { openaiRoutes } from "./openai.js";
import type { RouteModule } from "./types.js";
import { upstreamRoutes } from "./upstream.js";

export const ROUTE_MODULES: readonly RouteModule[] = [
  managementRoutes,
  eventRoutes,
  logRoutes,
  upstreamRoutes,
  openaiRoutes,
];
