/**
 * The route table's modules. To add an API, write a RouteModule (routes/types.ts) and list it here: one line.
 * Exact paths win over prefixes, longer prefixes over shorter ones; openai's catch-all (the empty prefix) is matched last.
 */
import { eventRoutes } from "./events.js";
import { logRoutes } from "./logs.js";
import { managementRoutes } from "./management.js";
import { ollamaRoutes } from "./ollama/index.js";
import { openaiRoutes } from "./openai.js";
import type { RouteModule } from "./types.js";
import { upstreamRoutes } from "./upstream.js";

export const ROUTE_MODULES: readonly RouteModule[] = [
  managementRoutes,
  eventRoutes,
  logRoutes,
  upstreamRoutes,
  ollamaRoutes(),
  openaiRoutes,
];
