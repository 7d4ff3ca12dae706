/**
 * The dashboard's static shell at /ui: index.html, app.js, app.css from dist/ui (built by `npm run build` and by
 * `npm run setup`, shipped in the npm package). Served without an API key (it holds no data: the page asks for the key and sends it with every
 * API call), with a strict Content-Security-Policy: scripts, styles and connections to this origin only, no inline
 * script or style element, nothing external, no framing.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "../../core/errors.js";
import type { RouteModule } from "./types.js";

export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** dist/ui of this package: found by walking up from this module (src/proxy/routes or dist/src/proxy/routes). */
export function defaultUiDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "gglib-runtime")
          return join(dir, "dist", "ui");
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "dist", "ui");
}

/** GET/HEAD /ui and /ui/*, open without an API key. */
export function uiRoutes(uiDir: string = defaultUiDir()): RouteModule {
  let assets: Map<string, Asset> | undefined;
  const load = (): Map<string, Asset> => {
    if (assets) return assets;
    const m = new Map<string, Asset>();
    if (!existsSync(join(uiDir, "index.html"))) return m; // not built (yet): look again next time
    for (const f of readdirSync(uiDir)) {
      const type = TYPES[extname(f)];
      if (!type) continue;
      const body = readFileSync(join(uiDir, f));
      m.set(f, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` });
    }
    assets = m;
    return m;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD")
      throw new HttpError(405, "method_not_allowed", `${method} is not allowed on ${path}; use GET.`);
    if (path === "/ui") {
      res.writeHead(308, { location: "/ui/", "content-length": "0" });
      res.end();
      return;
    }
    const name = path === "/ui/" ? "index.html" : path.slice("/ui/".length);
    const files = load();
    if (files.size === 0) {
      throw new HttpError(
        503,
        "ui_not_built",
        `The dashboard is not built (no ${join(uiDir, "index.html")}). Run \`npm run build\` (or \`npm run setup\`) in the gglib-runtime checkout.`,
      );
    }
    const a = name.includes("/") ? undefined : files.get(name);
    if (!a) throw new HttpError(404, "not_found", `No such dashboard file: ${path}.`);
    const headers: Record<string, string> = {
      "content-type": a.type,
      etag: a.etag,
      "cache-control": name === "index.html" ? "no-cache" : "public, max-age=0, must-revalidate",
      "content-security-policy": UI_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cross-origin-opener-policy": "same-origin",
      "x-frame-options": "DENY",
    };
    if (req.headers["if-none-match"] === a.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers["content-length"] = String(a.body.length);
    res.writeHead(200, headers);
    res.end(method === "HEAD" ? undefined : a.body);
  };
  return {
    name: "ui",
    routes: () => [
      { method: "*", path: "/ui", open: true, handle },
      { method: "*", path: "/ui/", prefix: true, open: true, handle },
    ],
  };
}
