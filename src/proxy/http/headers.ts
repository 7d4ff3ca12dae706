/** Which headers cross the proxy: hop-by-hop ones never do; the client's credentials never go upstream. */
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";

/** Hop-by-hop headers (RFC 9110 §7.6.1): they belong to one connection. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
];

/** Request headers never sent upstream: hop-by-hop ones, the client's credentials, what we recompute, the page's origin. */
const DROP_REQUEST = new Set([
  ...HOP_BY_HOP,
  "proxy-authorization",
  "host",
  "content-length",
  "authorization",
  "x-api-key",
  "expect",
  // no compression between the proxy and llama-server: bytes pass through as they come
  "accept-encoding",
  // the browser's word on which page sent it: judged here (http/origin.ts); upstream the proxy is the client (a
  // peer would judge the page against its own host and refuse the dashboard's requests)
  "origin",
  "sec-fetch-site",
  "sec-fetch-mode",
  "sec-fetch-dest",
  "sec-fetch-user",
]);

/** Response headers not passed back: hop-by-hop ones and llama-server's own CORS (the proxy decides CORS). */
const DROP_RESPONSE = new Set([
  ...HOP_BY_HOP,
  "access-control-allow-origin",
  "access-control-allow-credentials",
  "access-control-allow-methods",
  "access-control-allow-headers",
]);

export function upstreamRequestHeaders(
  h: IncomingMessage["headers"],
  bodyLength: number | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  const connectionTokens = tokens(h.connection);
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || DROP_REQUEST.has(k) || connectionTokens.has(k)) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  if (bodyLength !== undefined) out["content-length"] = String(bodyLength);
  return out;
}

export function downstreamResponseHeaders(h: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionTokens = tokens(h.connection);
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || DROP_RESPONSE.has(k) || connectionTokens.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function tokens(v: string | string[] | undefined): Set<string> {
  if (!v) return new Set();
  const s = Array.isArray(v) ? v.join(",") : v;
  return new Set(
    s
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t && t !== "close" && t !== "keep-alive"),
  );
}
