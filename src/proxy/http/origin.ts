/**
 * Who may call the proxy from a browser. A web page can send requests to any address the browser reaches
 * (`fetch(url, {mode: "no-cors", method: "POST", body})` needs no preflight), and a page whose DNS name is made to
 * point at 127.0.0.1 (DNS rebinding) is even same-origin with the proxy. So:
 *
 *  - **Origin**: a request a page sends from another origin (its `Origin` is not the proxy's own, or the browser
 *    marks it `Sec-Fetch-Site: cross-site`) is refused, unless `--cors` allows that origin. Every method but
 *    GET/HEAD/OPTIONS is checked (loads, unloads, pins, reloads, pulls, copies and inference all change state);
 *    GET and HEAD only when a browser marks them cross-site and not a navigation (an `<img src>` of
 *    `/props?model=x` would load a model), so a link to the dashboard keeps working. OPTIONS (the preflight) is
 *    answered by cors.ts and changes nothing.
 *  - **Host**: without an API key, a request whose `Host` is a name an outside party could point at this machine
 *    (a dotted DNS name other than the bound host or this machine's own name) is refused. Allowed: no Host (not a
 *    browser), IP literals (a browser sends one only when it really connected to that address), `localhost` and
 *    `*.localhost`, single-label names (`gglib`, a container's name: not in public DNS), the special-use domains
 *    `.local`, `.internal`, `.lan`, `.home.arpa`, the bound host and the machine's hostname; any port (port
 *    forwarding, containers). With a key the page would need the key, so Host is not checked.
 *
 * Clients that are not browsers (curl, the OpenAI/Ollama SDKs, servers) send no `Origin` and no `Sec-Fetch-*`, and
 * are not affected by the Origin rule; nor are local apps (`app://`, `file://`, `tauri://`, VS Code webviews). `judgeOrigin` decides (pure); `originGuard` is the server's closure over it.
 */
import { isIP } from "node:net";
import type { IncomingMessage } from "node:http";
import { HttpError } from "../../core/errors.js";

export interface OriginPolicy {
  /** The origins `--cors` allows (exact, e.g. "http://localhost:3000"), "*" for any. */
  readonly corsOrigins: readonly string[];
  /** Check Host (no API key is set). */
  readonly checkHost: boolean;
  /** Dotted names that are this proxy's own besides the built-in ones (the bound host, the machine's hostname). */
  readonly hostNames: readonly string[];
}

/** The headers of a request the decision reads. */
export interface OriginFacts {
  readonly method: string;
  readonly host: string | undefined;
  readonly origin: string | undefined;
  readonly secFetchSite: string | undefined;
  readonly secFetchMode: string | undefined;
  /** `X-Forwarded-Host` (a reverse proxy's): the page's origin may be that host; a browser cannot set it cross-site without a preflight. */
  readonly forwardedHost: string | undefined;
}

export type OriginRefusal =
  | { readonly reason: "foreign_host"; readonly host: string }
  | { readonly reason: "foreign_origin"; readonly origin: string }
  | { readonly reason: "cross_site"; readonly method: string };

/**
 * Origins only local applications have (Electron/Tauri apps, VS Code webviews): no web page can send them, and such
 * apps did not need CORS to use the proxy before (Ollama allows the same by default). Not "null": any page can
 * send that from a sandboxed frame.
 */
const APP_SCHEMES = ["app:", "file:", "tauri:", "vscode-webview:", "vscode-file:"];

/** Special-use domains no outside party can register (RFC 6761, 6762, 8375; ICANN's .internal). */
const LOCAL_SUFFIXES = [".localhost", ".local", ".internal", ".lan", ".home.arpa"];

/** Pure: undefined when the request may proceed, else why it is refused. */
export function judgeOrigin(f: OriginFacts, p: OriginPolicy): OriginRefusal | undefined {
  if (p.checkHost && f.host !== undefined && f.host !== "" && !isOwnHost(f.host, p.hostNames)) {
    return { reason: "foreign_host", host: f.host };
  }
  if (f.method === "OPTIONS") return undefined;
  const safe = f.method === "GET" || f.method === "HEAD";
  const any = p.corsOrigins.includes("*");
  if (f.origin !== undefined) {
    if (
      any ||
      p.corsOrigins.includes(f.origin) ||
      sameOrigin(f.origin, f.host) ||
      sameOrigin(f.origin, f.forwardedHost) ||
      isAppOrigin(f.origin)
    )
      return undefined;
    // a GET with a foreign Origin is a CORS-mode fetch: the browser withholds the answer unless CORS allows it; it
    // is refused only when it could still act (a cross-site subresource, below)
    if (!safe) return { reason: "foreign_origin", origin: f.origin };
  }
  if (f.secFetchSite === "cross-site" && !any) {
    if (!safe) return { reason: "cross_site", method: f.method };
    if (f.secFetchMode !== "navigate" && (f.origin === undefined || !p.corsOrigins.includes(f.origin)))
      return { reason: "cross_site", method: f.method };
  }
  return undefined;
}

/** The name of a Host header value without its port, lowercase, without a trailing dot ("[::1]:80" → "::1"). */
export function hostName(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end > 0 ? h.slice(1, end) : h;
  }
  const colon = h.indexOf(":");
  if (colon >= 0 && h.indexOf(":", colon + 1) < 0) h = h.slice(0, colon);
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

/** Is this Host one an outside party cannot point at this machine? */
export function isOwnHost(host: string, ownNames: readonly string[]): boolean {
  const name = hostName(host);
  if (name === "") return false;
  if (isIP(name) !== 0) return true;
  if (!name.includes(".")) return true;
  if (LOCAL_SUFFIXES.some((s) => name.endsWith(s))) return true;
  return ownNames.some((n) => n.toLowerCase().replace(/\.$/, "") === name);
}

function isAppOrigin(origin: string): boolean {
  const o = origin.toLowerCase();
  return APP_SCHEMES.some((s) => o.startsWith(s));
}

/** Does the page's origin name the same host and port as the request's Host (default ports by the origin's scheme)? */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || host === "") return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  const dflt = url.protocol === "https:" ? "443" : "80";
  const h = host.trim().toLowerCase();
  const bracket = h.startsWith("[") ? h.indexOf("]") : -1;
  const colon = bracket >= 0 ? h.indexOf(":", bracket) : h.lastIndexOf(":");
  const name = bracket >= 0 ? h.slice(0, bracket + 1) : colon >= 0 ? h.slice(0, colon) : h;
  const port = colon >= 0 ? h.slice(colon + 1) : dflt;
  return url.hostname === name && (url.port || dflt) === port;
}

/** The refusal as the error the client reads (403, in the route's error shape). */
export function originError(r: OriginRefusal): HttpError {
  switch (r.reason) {
    case "foreign_host":
      return new HttpError(
        403,
        "forbidden_host",
        `Refused: the Host '${r.host}' is not a name of this proxy, and with no API key set a web page could reach it ` +
          "that way (DNS rebinding). Use an IP address, localhost or this machine's name, or set an API key " +
          "(--api-key, or apiKeys in the config) to serve other names.",
      );
    case "foreign_origin":
      return new HttpError(
        403,
        "forbidden_origin",
        `Refused: this request comes from a web page at '${r.origin}', not from the proxy's own pages. ` +
          `To let that page use the proxy, start it with --cors ${r.origin} (or corsOrigins in the config).`,
      );
    case "cross_site":
      return new HttpError(
        403,
        "forbidden_origin",
        `Refused: the browser marks this ${r.method} as sent by another site (Sec-Fetch-Site: cross-site). ` +
          "To let web pages of other sites use the proxy, start it with --cors <origin> (or corsOrigins in the config).",
      );
  }
}

export type OriginGuard = (req: IncomingMessage) => HttpError | undefined;

/** The server's check: the facts of a request, judged; the last Host found good is remembered (one compare). */
export function originGuard(p: OriginPolicy): OriginGuard {
  let goodHost: string | undefined;
  const hostPolicy: OriginPolicy = { ...p, checkHost: false };
  return (req) => {
    const h = req.headers;
    const host = h.host;
    const method = req.method ?? "GET";
    // the common case (an SDK: no Origin, no Sec-Fetch-*, a Host seen before) costs a few property reads
    if (h.origin === undefined && h["sec-fetch-site"] === undefined && (!p.checkHost || host === goodHost || !host))
      return undefined;
    const xfh = h["x-forwarded-host"];
    const facts: OriginFacts = {
      method,
      host,
      origin: h.origin,
      secFetchSite: str(h["sec-fetch-site"]),
      secFetchMode: str(h["sec-fetch-mode"]),
      forwardedHost: typeof xfh === "string" ? xfh.split(",")[0]!.trim() : undefined,
    };
    const r = judgeOrigin(facts, p.checkHost && host === goodHost ? hostPolicy : p);
    if (r) return originError(r);
    if (p.checkHost && host) goodHost = host;
    return undefined;
  };
}

function str(v: string | string[] | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}
