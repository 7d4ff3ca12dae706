/**
 * CORS: off unless origins are configured. An allowed origin (or "*") gets its allow-origin header on every reply;
 * a preflight (OPTIONS) also gets the methods, the requested headers and a max-age, and is answered 204.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export type CorsPolicy = (req: IncomingMessage, res: ServerResponse) => void;

const DEFAULT_ALLOW_HEADERS = "authorization, content-type, x-api-key";

export function corsPolicy(origins: readonly string[] | undefined): CorsPolicy {
  if (!origins || origins.length === 0) return () => {};
  const any = origins.includes("*");
  return (req, res) => {
    const origin = req.headers.origin;
    if (!origin || (!any && !origins.includes(origin))) return;
    res.setHeader("access-control-allow-origin", any ? "*" : origin);
    res.setHeader("vary", "Origin");
    if (req.method === "OPTIONS") {
      res.setHeader("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS");
      res.setHeader(
        "access-control-allow-headers",
        String(req.headers["access-control-request-headers"] ?? DEFAULT_ALLOW_HEADERS),
      );
      res.setHeader("access-control-max-age", "86400");
    }
  };
}

/** Every OPTIONS request is a preflight: 204, whatever the path (after the policy set its headers). */
export function answerPreflight(res: ServerResponse): void {
  res.writeHead(204, { "content-length": "0" });
  res.end();
}
