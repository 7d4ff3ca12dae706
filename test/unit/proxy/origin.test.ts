/**
 * The Origin/Host decision (src/proxy/http/origin.ts), as data: which requests a browser page of another origin,
 * or a page reaching the proxy by a rebound DNS name, may make; and that clients without Origin (curl, SDKs) and
 * the proxy's own dashboard are never refused.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import {
  hostName,
  isOwnHost,
  judgeOrigin,
  originGuard,
  type OriginFacts,
  type OriginPolicy,
} from "../../../src/proxy/http/origin.js";

const NO_KEY: OriginPolicy = { corsOrigins: [], checkHost: true, hostNames: ["127.0.0.1", "gpu-box.example.com"] };
const KEYED: OriginPolicy = { ...NO_KEY, checkHost: false };

function facts(f: Partial<OriginFacts>): OriginFacts {
  return {
    method: "POST",
    host: "127.0.0.1:8080",
    origin: undefined,
    secFetchSite: undefined,
    secFetchMode: undefined,
    forwardedHost: undefined,
    ...f,
  };
}

const judge = (f: Partial<OriginFacts>, p: OriginPolicy = NO_KEY) => judgeOrigin(facts(f), p)?.reason;

describe("Origin: state-changing requests from other origins", () => {
  test("no Origin (curl, the OpenAI/Ollama SDKs, servers): allowed, every method", () => {
    for (const method of ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]) assert.equal(judge({ method }), undefined);
  });

  test("the proxy's own pages (same origin, any spelling of the default port): allowed", () => {
    assert.equal(judge({ origin: "http://127.0.0.1:8080" }), undefined);
    assert.equal(judge({ origin: "http://localhost:8080", host: "localhost:8080" }), undefined);
    assert.equal(judge({ origin: "http://[::1]:8080", host: "[::1]:8080" }), undefined);
    assert.equal(judge({ origin: "http://localhost", host: "localhost:80" }), undefined);
    assert.equal(
      judge({ origin: "http://LOCALHOST:8080", host: "localhost:8080", secFetchSite: "same-origin" }),
      undefined,
    );
    // behind a TLS reverse proxy that keeps the Host, or that says which host it served
    assert.equal(judge({ origin: "https://llm.example.com", host: "llm.example.com" }, KEYED), undefined);
    assert.equal(
      judge({ origin: "https://llm.example.com", host: "127.0.0.1:8080", forwardedHost: "llm.example.com" }),
      undefined,
    );
  });

  test("another origin's POST/PUT/DELETE (a no-cors fetch from any web page): refused", () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      assert.equal(judge({ method, origin: "https://evil.example" }), "foreign_origin", method);
      assert.equal(judge({ method, origin: "https://evil.example" }, KEYED), "foreign_origin", `${method} with a key`);
    }
    // another port of the same host is another origin (a dev server on :3000)
    assert.equal(judge({ origin: "http://127.0.0.1:3000" }), "foreign_origin");
    assert.equal(judge({ origin: "http://localhost:8080" }), "foreign_origin", "Host 127.0.0.1 ≠ localhost");
    assert.equal(judge({ origin: "null" }), "foreign_origin", "a sandboxed frame or a file:// page");
    assert.equal(judge({ origin: "not a url" }), "foreign_origin");
  });

  test("local apps' origins (Electron, Tauri, VS Code webviews) pass; 'null' (any page's sandboxed frame) does not", () => {
    for (const origin of [
      "app://obsidian.md",
      "file://",
      "tauri://localhost",
      "vscode-webview://abc",
      "vscode-file://x",
    ])
      assert.equal(judge({ origin }), undefined, origin);
    assert.equal(judge({ origin: "null" }), "foreign_origin");
    assert.equal(judge({ origin: "chrome-extension://abcdef" }), "foreign_origin", "an extension: --cors");
  });

  test("--cors lets the listed origins (or '*' all) through", () => {
    const cors: OriginPolicy = { ...NO_KEY, corsOrigins: ["http://localhost:3000"] };
    assert.equal(judge({ origin: "http://localhost:3000", secFetchSite: "same-site" }, cors), undefined);
    assert.equal(judge({ origin: "http://localhost:3001" }, cors), "foreign_origin");
    const any: OriginPolicy = { ...NO_KEY, corsOrigins: ["*"] };
    assert.equal(judge({ origin: "https://evil.example", secFetchSite: "cross-site" }, any), undefined);
    assert.equal(judge({ origin: "null" }, any), undefined);
  });

  test("Sec-Fetch-Site: cross-site without an Origin: refused for writes; for GET/HEAD unless a navigation", () => {
    assert.equal(judge({ secFetchSite: "cross-site" }), "cross_site");
    assert.equal(judge({ method: "GET", secFetchSite: "cross-site", secFetchMode: "no-cors" }), "cross_site");
    assert.equal(judge({ method: "HEAD", secFetchSite: "cross-site", secFetchMode: "cors" }), "cross_site");
    // a link from another site to the dashboard
    assert.equal(judge({ method: "GET", secFetchSite: "cross-site", secFetchMode: "navigate" }), undefined);
    assert.equal(judge({ method: "GET", secFetchSite: "same-origin", secFetchMode: "cors" }), undefined);
    assert.equal(judge({ method: "GET", secFetchSite: "none", secFetchMode: "navigate" }), undefined);
  });

  test("a GET with a foreign Origin (a CORS fetch: the browser withholds the answer) is not refused by Origin alone", () => {
    assert.equal(judge({ method: "GET", origin: "https://evil.example", secFetchSite: "same-site" }), undefined);
    assert.equal(judge({ method: "GET", origin: "https://evil.example", secFetchSite: "cross-site" }), "cross_site");
  });

  test("OPTIONS (the preflight, answered by cors.ts) is never refused by Origin", () => {
    assert.equal(judge({ method: "OPTIONS", origin: "https://evil.example", secFetchSite: "cross-site" }), undefined);
  });
});

describe("Host: DNS rebinding when no key is set", () => {
  test("a rebound public name is refused, whatever the method and even with a same-origin Origin", () => {
    assert.equal(judge({ method: "GET", host: "evil.example:8080" }), "foreign_host");
    assert.equal(
      judge({ host: "attacker.evil.example:8080", origin: "http://attacker.evil.example:8080" }),
      "foreign_host",
    );
    assert.equal(judge({ method: "GET", host: "localhost.evil.example" }), "foreign_host");
    assert.equal(judge({ method: "GET", host: "127.0.0.1.nip.io:8080" }), "foreign_host");
    assert.equal(judge({ method: "OPTIONS", host: "evil.example" }), "foreign_host");
  });

  test("with an API key Host is not checked (the page would need the key)", () => {
    assert.equal(judge({ method: "GET", host: "evil.example:8080" }, KEYED), undefined);
  });

  test("the proxy's own names: IPs, localhost, *.localhost, single labels, local domains, bound host, hostname", () => {
    for (const host of [
      "127.0.0.1:8080",
      "127.0.0.1",
      "[::1]:8080",
      "[::ffff:127.0.0.1]:1",
      "192.168.1.20:8080",
      "localhost:8080",
      "LOCALHOST",
      "localhost.",
      "app.localhost:5173",
      "gglib:8080",
      "gpu-box.local:8080",
      "gpu-box.internal",
      "gpu-box.lan",
      "gpu-box.home.arpa",
      "gpu-box.example.com:8080",
      "GPU-box.Example.com.",
    ]) {
      assert.equal(judge({ method: "GET", host }), undefined, host);
    }
    assert.equal(judge({ method: "GET", host: undefined }), undefined, "no Host: HTTP/1.0, not a browser");
  });

  test("hostName and isOwnHost", () => {
    assert.equal(hostName("[::1]:8080"), "::1");
    assert.equal(hostName("Example.COM.:80"), "example.com");
    assert.equal(hostName("::1"), "::1", "a bare IPv6 (not a browser's form) keeps its colons");
    assert.equal(isOwnHost("", []), false);
    assert.equal(isOwnHost("a.b", ["A.B."]), true);
  });
});

describe("originGuard: the server's closure", () => {
  const req = (method: string, headers: Record<string, string>) => ({ method, headers }) as unknown as IncomingMessage;

  test("refuses with a 403 that says what to do; remembers a good Host without letting a bad Origin through", () => {
    const guard = originGuard(NO_KEY);
    assert.equal(guard(req("POST", { host: "127.0.0.1:8080" })), undefined);
    assert.equal(guard(req("POST", { host: "127.0.0.1:8080" })), undefined);
    const e = guard(req("POST", { host: "127.0.0.1:8080", origin: "https://evil.example" }));
    assert.equal(e?.status, 403);
    assert.equal(e?.code, "forbidden_origin");
    assert.match(e.message, /--cors https:\/\/evil\.example/);
    const h = guard(req("GET", { host: "evil.example:8080" }));
    assert.equal(h?.status, 403);
    assert.equal(h?.code, "forbidden_host");
    assert.match(h.message, /--api-key/);
    const x = guard(req("POST", { host: "127.0.0.1:8080", "sec-fetch-site": "cross-site" }));
    assert.equal(x?.code, "forbidden_origin");
  });
});
