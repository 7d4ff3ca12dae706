/**
 * Auth: `gglib proxy --api-key` (the real command, a child process). Every route the proxy has, with no key, a
 * wrong key, or the key in a wrong form, gets 401 in OpenAI's shape and reaches nothing: no model is loaded and
 * llama-server sees no request; only /health (and the CORS preflight, answered by the proxy itself) stay open.
 * The key never reaches llama-server: a recording llama-server (a small node:http script in front of the fake,
 * given to the proxy as its llama-server binary) logs every request's headers and URL, and its command line and
 * environment are checked too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAKE_LLAMA_SERVER } from "../support/fake-llama.js";
import { proxyDir, startProxyProcess } from "../support/proxy-harness.js";
import { waitFor } from "../support/procs.js";

const KEY = "sk-gglib-test-Secret-42";

/** Every route of the proxy (src/proxy/server.ts) plus llama-server's, with a body where they take one. */
const ROUTES: { method: string; path: string; body?: unknown; ollama?: boolean }[] = [
  { method: "GET", path: "/v1/models" },
  { method: "GET", path: "/models" },
  { method: "GET", path: "/api/status" },
  { method: "GET", path: "/api/events" },
  { method: "GET", path: "/api/logs/a" },
  { method: "GET", path: "/api/logs/a?follow=1" },
  { method: "GET", path: "/metrics" },
  { method: "GET", path: "/metrics?model=a" },
  { method: "POST", path: "/models/load", body: { model: "a" } },
  { method: "POST", path: "/models/unload", body: { model: "a" } },
  { method: "GET", path: "/upstream/a/health" },
  { method: "POST", path: "/upstream/a/v1/chat/completions", body: { messages: [{ role: "user", content: "x" }] } },
  { method: "GET", path: "/props?model=a" },
  { method: "GET", path: "/slots?model=a" },
  { method: "POST", path: "/v1/chat/completions", body: { model: "a", messages: [{ role: "user", content: "x" }] } },
  {
    method: "POST",
    path: "/v1/chat/completions",
    body: { model: "a", messages: [{ role: "user", content: "x" }], stream: true },
  },
  { method: "POST", path: "/chat/completions", body: { model: "a", messages: [{ role: "user", content: "x" }] } },
  { method: "POST", path: "/v1/completions", body: { model: "a", prompt: "x" } },
  { method: "POST", path: "/completion", body: { model: "a", prompt: "x" } },
  { method: "POST", path: "/v1/responses", body: { model: "a", input: "x" } },
  {
    method: "POST",
    path: "/v1/messages",
    body: { model: "a", max_tokens: 4, messages: [{ role: "user", content: "x" }] },
  },
  { method: "POST", path: "/v1/embeddings", body: { model: "a", input: "x" } },
  { method: "POST", path: "/v1/rerank", body: { model: "a", query: "q", documents: ["d"] } },
  { method: "POST", path: "/tokenize", body: { model: "a", content: "x" } },
  { method: "POST", path: "/detokenize", body: { model: "a", tokens: [1] } },
  { method: "POST", path: "/apply-template", body: { model: "a", messages: [] } },
  { method: "POST", path: "/infill", body: { model: "a", input_prefix: "x" } },
  { method: "PUT", path: "/v1/chat/completions", body: { model: "a" } },
  { method: "DELETE", path: "/slots/0?model=a" },
  { method: "GET", path: "/no/such/route?model=a" },
  { method: "GET", path: "/", ollama: true },
  { method: "GET", path: "/api/tags", ollama: true },
  { method: "POST", path: "/api/chat", body: { model: "a", messages: [{ role: "user", content: "x" }] }, ollama: true },
  { method: "HEAD", path: "/v1/models" },
  { method: "HEAD", path: "/upstream/a/health" },
];

/** No key, wrong keys, and the right key in forms the proxy must not accept. */
const BAD_AUTH: { name: string; headers: Record<string, string>; query?: string }[] = [
  { name: "no key", headers: {} },
  { name: "wrong bearer", headers: { authorization: "Bearer sk-wrong" } },
  { name: "bearer with a longer key", headers: { authorization: `Bearer ${KEY}x` } },
  { name: "bearer with a prefix of the key", headers: { authorization: `Bearer ${KEY.slice(0, -1)}` } },
  { name: "empty bearer", headers: { authorization: "Bearer " } },
  { name: "key without the Bearer scheme", headers: { authorization: KEY } },
  {
    name: "Basic auth with the key",
    headers: { authorization: `Basic ${Buffer.from(`user:${KEY}`).toString("base64")}` },
  },
  { name: "Token scheme", headers: { authorization: `Token ${KEY}` } },
  { name: "x-api-key with Bearer prefix", headers: { "x-api-key": `Bearer ${KEY}` } },
  { name: "wrong x-api-key", headers: { "x-api-key": "nope" } },
  { name: "Azure-style api-key header", headers: { "api-key": KEY } },
  { name: "key in the query string", headers: {}, query: `api_key=${KEY}` },
  { name: "key as proxy-authorization", headers: { "proxy-authorization": `Bearer ${KEY}` } },
  { name: "key in a cookie", headers: { cookie: `api_key=${KEY}` } },
  { name: "wrong bearer + right key in a wrong header", headers: { authorization: "Bearer nope", "api-key": KEY } },
];

/**
 * A llama-server stand-in that records: it runs the fake llama-server on a private port and serves the port the
 * proxy gave it with a node:http pass-through that appends {method, url, headers} of every request to
 * $RECORD_FILE. --help/--version (capability probes) go straight to the fake.
 */
const RECORDER = `#!/usr/bin/env node
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { createServer as netServer } from "node:net";
const FAKE = ${JSON.stringify(FAKE_LLAMA_SERVER)};
const args = process.argv.slice(2);
const pi = args.indexOf("--port");
if (pi < 0) {
  const r = spawnSync(FAKE, args, { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
const port = Number(args[pi + 1]);
const host = args[args.indexOf("--host") + 1] || "127.0.0.1";
const inner = await new Promise((res) => { const s = netServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
const innerArgs = [...args];
innerArgs[pi + 1] = String(inner);
innerArgs[innerArgs.indexOf("--host") + 1] = "127.0.0.1";
const child = spawn(FAKE, innerArgs, { stdio: "inherit" });
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => { if (signal) process.kill(process.pid, "SIGKILL"); process.exit(code ?? 1); });
process.on("exit", () => { try { child.kill("SIGKILL"); } catch {} });
createServer((req, res) => {
  appendFileSync(process.env.RECORD_FILE, JSON.stringify({ method: req.method, url: req.url, headers: req.headers }) + "\\n");
  const up = request({ host: "127.0.0.1", port: inner, method: req.method, path: req.url, headers: req.headers }, (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    ur.pipe(res);
  });
  up.on("error", () => {
    if (!res.headersSent) res.writeHead(503, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: 503, message: "Loading model", type: "unavailable_error" } }));
  });
  req.pipe(up);
}).listen(port, host);
`;

interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
}

test(
  "with --api-key nothing unauthenticated reaches any route but /health, and the key never reaches llama-server",
  { timeout: 60_000 },
  async (t) => {
    const dir = proxyDir(t, ["a"]);
    const recorder = join(dir, "recording-llama-server.mjs");
    writeFileSync(recorder, RECORDER);
    chmodSync(recorder, 0o755);
    const recordFile = join(dir, "upstream-requests.jsonl");
    const p = await startProxyProcess(t, {
      dir,
      binary: recorder,
      args: ["--api-key", KEY, "--cors", "*"],
      env: { RECORD_FILE: recordFile },
      knobs: { loadMs: 50 },
    });
    const recorded = (): Recorded[] => {
      try {
        return readFileSync(recordFile, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Recorded);
      } catch {
        return [];
      }
    };

    // open without a key: /health, /v1/health, the CORS preflight (answered by the proxy itself)
    for (const path of ["/health", "/v1/health"]) {
      const r = await fetch(`${p.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.deepEqual(await r.json(), { status: "ok" });
    }
    const pre = await fetch(`${p.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin: "http://x", "access-control-request-method": "POST" },
    });
    assert.equal(pre.status, 204);
    assert.equal(await pre.text(), "");

    // everything else: 401 in OpenAI's shape, whatever the route and whatever the wrong credentials
    let checked = 0;
    for (const bad of BAD_AUTH) {
      for (const r of ROUTES) {
        const sep = r.path.includes("?") ? "&" : "?";
        const url = `${p.url}${r.path}${bad.query ? sep + bad.query : ""}`;
        const res = await fetch(url, {
          method: r.method,
          headers: { ...(r.body !== undefined ? { "content-type": "application/json" } : {}), ...bad.headers },
          ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
          signal: AbortSignal.timeout(5_000),
        });
        const text = await res.text();
        const what = `${bad.name}: ${r.method} ${r.path}`;
        assert.equal(res.status, 401, `${what}: ${res.status} ${text.slice(0, 200)}`);
        if (r.method === "HEAD") {
          checked++;
          continue;
        }
        if (r.ollama) {
          // Ollama's routes answer in Ollama's shape: {"error": "…"}
          const body = JSON.parse(text) as { error: string };
          assert.match(body.error, /API key/, what);
        } else {
          const body = JSON.parse(text) as { error: { message: string; type: string; code: string } };
          assert.equal(body.error.type, "authentication_error", what);
          assert.equal(body.error.code, "invalid_api_key", what);
        }
        assert.ok(!text.includes(KEY), `${what}: the error does not echo the key`);
        assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/, what);
        checked++;
      }
    }
    assert.equal(checked, BAD_AUTH.length * ROUTES.length);
    assert.deepEqual(p.llamaPids(), [], "no unauthenticated request started a llama-server");
    assert.deepEqual(recorded(), [], "llama-server saw no request");

    // with the key (both accepted forms) the routes work, and what reaches llama-server carries no credential
    const good: Record<string, string>[] = [{ authorization: `Bearer ${KEY}` }, { "x-api-key": KEY }];
    const sent: string[] = [];
    for (const [i, h] of good.entries()) {
      for (const r of ROUTES) {
        if (r.path.includes("follow=1") || r.path === "/api/events") continue; // endless streams
        if (r.path === "/models/unload" && i === 0) continue;
        const res = await fetch(`${p.url}${r.path}`, {
          method: r.method,
          headers: {
            ...(r.body !== undefined ? { "content-type": "application/json" } : {}),
            ...h,
            cookie: `session=${KEY}`,
          },
          ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer();
        assert.notEqual(res.status, 401, `${r.method} ${r.path} with ${Object.keys(h)[0]}`);
        sent.push(`${r.method} ${r.path} → ${res.status}`);
      }
    }
    const rec = recorded();
    assert.ok(
      rec.some((r) => r.url === "/v1/chat/completions" && r.method === "POST"),
      `llama-server got the generations: ${JSON.stringify(rec.map((r) => r.url))}`,
    );
    assert.ok(rec.length >= 20, `llama-server saw the forwarded requests (${rec.length})`);
    for (const r of rec) {
      assert.equal(r.headers.authorization, undefined, `${r.method} ${r.url}: no authorization header upstream`);
      assert.equal(r.headers["x-api-key"], undefined, `${r.method} ${r.url}: no x-api-key header upstream`);
      const all = JSON.stringify(r);
      // the client's cookie is its own business, but it must not be how the proxy's key travels: only the cookie may hold it
      const withoutCookie = JSON.stringify({ ...r, headers: { ...r.headers, cookie: undefined } });
      assert.ok(
        !withoutCookie.includes(KEY),
        `${r.method} ${r.url}: the key reached llama-server: ${all.slice(0, 300)}`,
      );
    }
    // nor through its command line or environment
    assert.ok(await waitFor(() => p.llamaPids().length > 0, 5_000));
    for (const pid of p.llamaPids()) {
      for (const f of ["cmdline", "environ"]) {
        const s = readFileSync(`/proc/${pid}/${f}`, "utf8");
        assert.ok(!s.includes(KEY), `llama-server pid ${pid} has the key in its ${f}`);
      }
    }
    t.diagnostic(
      `${checked} unauthenticated requests refused; ${sent.length} authenticated ones, ${rec.length} reached llama-server, none with the key`,
    );
  },
);
