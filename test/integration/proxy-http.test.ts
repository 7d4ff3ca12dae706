/**
 * The proxy's HTTP surface on the fake llama-server: every llama-server endpoint through the proxy, name
 * resolution, bad input, API keys, CORS, the management API (/models/load|unload, /api/events, /api/logs).
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isGglibError } from "../../src/core/errors.js";
import { Registry } from "../../src/models/registry.js";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/proxy/index.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../support/fake-llama.js";
import { pidsWithArg, killQuietly, waitFor } from "../support/procs.js";

async function rig(t: TestContext, yaml: (paths: Record<string, string>) => string, opts: Partial<ProxyOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-http-"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const paths = Object.fromEntries(["a", "e", "r"].map((n) => [n, writeFakeModel(dir, n)]));
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, yaml(paths));
  const runner = new LlamaServerRunner({
    binaryPath: FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    healthIntervalMs: 0,
    stopGraceMs: 2_000,
    env: fakeLlamaEnv({ loadMs: 50 }),
    basePort: 20_000 + Math.floor(Math.random() * 20_000),
  });
  let spawns = 0;
  runner.on((e) => {
    if (e.type === "spawned") spawns++;
  });
  const proxy: RunningProxy = await startProxy({
    port: 0,
    memoryBudget: "64GiB",
    watchConfig: false,
    ...opts,
    configPath,
    runner,
  });
  t.after(() => proxy.close(2_000));
  return { proxy, url: proxy.url, dir, spawns: () => spawns };
}

const basic = (p: Record<string, string>) =>
  `models:\n  a:\n    path: ${JSON.stringify(p.a)}\n    aliases: [gpt-4o-mini]\n  e:\n    path: ${JSON.stringify(p.e)}\n    extraArgs: ["--embeddings"]\n  r:\n    path: ${JSON.stringify(p.r)}\n    extraArgs: ["--rerank"]\n`;

function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("proxy HTTP surface on the fake llama-server", { timeout: 60_000 }, () => {
  test("every llama-server endpoint works through the proxy, routed by body model or ?model=", async (t) => {
    const { url, proxy } = await rig(t, basic);
    const msgs = [{ role: "user", content: "hi" }];
    const cases: [string, unknown][] = [
      ["/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 4 }],
      ["/v1/completions", { model: "a", prompt: "hi", max_tokens: 4 }],
      ["/completion", { model: "a", prompt: "hi", n_predict: 4 }],
      ["/v1/responses", { model: "a", input: "hi", max_output_tokens: 4 }],
      ["/v1/messages", { model: "a", messages: msgs, max_tokens: 4 }],
      ["/v1/messages/count_tokens", { model: "a", messages: msgs }],
      ["/tokenize", { model: "a", content: "Hello world" }],
      ["/detokenize", { model: "a", tokens: [15043, 3186] }],
      ["/apply-template", { model: "a", messages: msgs }],
      ["/v1/embeddings", { model: "e", input: "hello" }],
      ["/v1/rerank", { model: "r", query: "q", documents: ["a", "b"] }],
    ];
    for (const [path, body] of cases) {
      const res = await post(url, path, body);
      const text = await res.text();
      assert.equal(res.status, 200, `${path}: ${res.status} ${text.slice(0, 200)}`);
      assert.ok(!text.includes('"error"'), `${path}: ${text.slice(0, 200)}`);
    }
    // streams of the other dialects pass through untouched
    const anth = await post(url, "/v1/messages", { model: "a", messages: msgs, max_tokens: 4, stream: true });
    assert.match(await anth.text(), /event: message_stop/);
    for (const path of ["/props?model=a", "/slots?model=a", "/metrics?model=a", "/v1/models?model=a"]) {
      const res = await fetch(`${url}${path}`);
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
    const own = await (await fetch(`${url}/metrics?model=a`)).text();
    assert.match(own, /llamacpp:/, "a model's own metrics");
    const up = await fetch(`${url}/upstream/a/health`);
    assert.deepEqual(await up.json(), { status: "ok" });
    const up2 = await fetch(`${url}/upstream/gpt-4o-mini/v1/models`);
    assert.equal(up2.status, 200);
    await up2.arrayBuffer();
    assert.equal(proxy.controller.status().find((s) => s.name === "a")!.state, "ready");
  });

  test("name resolution: alias and case-insensitive; unknown → 404 naming the models; none → 400; default model", async (t) => {
    const { url, spawns } = await rig(t, basic, { defaultModel: "a" });
    const viaAlias = await post(url, "/v1/chat/completions", {
      model: "GPT-4o-mini",
      messages: [{ role: "user", content: "x" }],
    });
    assert.equal(viaAlias.status, 200);
    assert.equal(((await viaAlias.json()) as { model: string }).model, "a");
    const unknown = await post(url, "/v1/chat/completions", { model: "nope", messages: [] });
    assert.equal(unknown.status, 404);
    const body = (await unknown.json()) as { error: { message: string; type: string; code: string } };
    assert.equal(body.error.type, "not_found_error");
    assert.equal(body.error.code, "model_not_found");
    assert.match(body.error.message, /a, e, r/);
    const dflt = await post(url, "/v1/chat/completions", { messages: [{ role: "user", content: "x" }] });
    assert.equal(dflt.status, 200, "no model → the default model");
    await dflt.arrayBuffer();
    assert.equal(spawns(), 1);
  });

  test("no model without a default → 400; malformed JSON → 400 (not llama-server's 500); too large → 413", async (t) => {
    const { url, spawns } = await rig(t, basic, { bodyLimit: "2KiB" });
    const none = await post(url, "/v1/chat/completions", { messages: [] });
    assert.equal(none.status, 400);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, "model_missing");
    const bad = await post(url, "/v1/chat/completions", '{"model":"a","messages":[');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { type: string } }).error.type, "invalid_request_error");
    const big = await post(url, "/v1/chat/completions", {
      model: "a",
      messages: [{ role: "user", content: "x".repeat(4096) }],
    });
    assert.equal(big.status, 413);
    assert.equal(spawns(), 0, "nothing was loaded for bad requests");
  });

  test("API keys: Bearer or x-api-key; 401 in OpenAI's shape otherwise; /health stays open", async (t) => {
    const { url } = await rig(t, basic, { apiKeys: ["k1", "k2"] });
    assert.equal((await fetch(`${url}/health`)).status, 200);
    const no = await fetch(`${url}/v1/models`);
    assert.equal(no.status, 401);
    assert.equal(((await no.json()) as { error: { type: string } }).error.type, "authentication_error");
    assert.equal((await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer wrong" } })).status, 401);
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    const ok1 = await post(
      url,
      "/v1/chat/completions",
      { model: "a", messages: [{ role: "user", content: "x" }] },
      { authorization: "Bearer k1" },
    );
    assert.equal(ok1.status, 200);
    await ok1.arrayBuffer();
    const ok2 = await fetch(`${url}/v1/models`, { headers: { "x-api-key": "k2" } });
    assert.equal(ok2.status, 200);
    await ok2.arrayBuffer();
  });

  test("a non-loopback bind needs an API key (or --insecure)", async (t) => {
    await assert.rejects(
      () => rig(t, basic, { host: "0.0.0.0" }),
      (e: unknown) =>
        isGglibError(e, "invalid_config") && /API key/.test(e.message) && /--insecure/.test(e.details.hint ?? ""),
    );
    const { url } = await rig(t, basic, { host: "0.0.0.0", insecure: true });
    assert.match(url, /0\.0\.0\.0|::/);
  });

  test("CORS is off by default (llama-server's own header is not passed on) and on when configured", async (t) => {
    const off = await rig(t, basic);
    const r1 = await fetch(`${off.url}/props?model=a`, { headers: { origin: "http://evil.example" } });
    assert.equal(r1.status, 200);
    assert.equal(r1.headers.get("access-control-allow-origin"), null);
    await r1.arrayBuffer();
    const on = await rig(t, basic, { corsOrigins: ["http://app.example"] });
    const r2 = await fetch(`${on.url}/v1/models`, { headers: { origin: "http://app.example" } });
    assert.equal(r2.headers.get("access-control-allow-origin"), "http://app.example");
    await r2.arrayBuffer();
    const pre = await fetch(`${on.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin: "http://app.example", "access-control-request-method": "POST" },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
  });

  test("a web page of another origin acts for nobody, a rebound DNS name reads nothing; curl, SDKs, the dashboard and --cors origins work", async (t) => {
    const { url, proxy, spawns } = await rig(t, basic);
    const port = Number(new URL(url).port);
    const send = (method: string, path: string, headers: Record<string, string>, body?: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const length = { "content-length": String(Buffer.byteLength(body ?? "")) };
        const r = httpRequest({ host: "127.0.0.1", port, method, path, headers: { ...length, ...headers } }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        });
        r.on("error", reject);
        r.end(body);
      });
    const page = { host: `127.0.0.1:${port}`, origin: "https://evil.example", "content-type": "text/plain" };
    const load = JSON.stringify({ model: "a" });
    // what a no-cors fetch from any web page sends: no preflight, text/plain, the page's Origin
    const writes: [string, string, string][] = [
      ["POST", "/models/load", load],
      ["POST", "/models/unload", load],
      ["POST", "/models/pin", JSON.stringify({ model: "a", pinned: true })],
      ["POST", "/api/config/reload", ""],
      ["POST", "/api/copy", JSON.stringify({ source: "a", destination: "b" })],
      ["POST", "/api/pull", JSON.stringify({ model: "x/y" })],
      ["POST", "/v1/chat/completions", JSON.stringify({ model: "a", messages: [] })],
      ["POST", "/api/chat", JSON.stringify({ model: "a", messages: [] })],
      ["POST", "/upstream/a/slots/0?action=erase", ""],
      ["DELETE", "/api/delete", JSON.stringify({ model: "a" })],
    ];
    for (const [method, path, body] of writes) {
      for (const headers of [page, { host: page.host, "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" }]) {
        const r = await send(method, path, headers, body);
        assert.equal(r.status, 403, `${method} ${path} ${JSON.stringify(headers)}: ${r.text}`);
        assert.match(r.text, /--cors/, path);
      }
    }
    // the Ollama routes answer in Ollama's shape, the others in OpenAI's
    const ollama = await send("POST", "/api/chat", page, "{}");
    assert.equal(typeof (JSON.parse(ollama.text) as { error: unknown }).error, "string");
    const openai = JSON.parse((await send("POST", "/models/load", page, load)).text) as { error: { code: string } };
    assert.equal(openai.error.code, "forbidden_origin");
    // a cross-site <img src> of a GET that would load a model
    const img = await send("GET", "/props?model=a", {
      host: page.host,
      "sec-fetch-site": "cross-site",
      "sec-fetch-mode": "no-cors",
    });
    assert.equal(img.status, 403);
    // DNS rebinding: the page's name now points at 127.0.0.1, so it is "same-origin": its Host gives it away
    const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
    for (const path of ["/api/status", "/api/logs/a", "/api/config", "/ui/", "/v1/models"]) {
      const r = await send("GET", path, rebound);
      assert.equal(r.status, 403, path);
      assert.match(r.text, /DNS rebinding/);
    }
    assert.equal((await send("POST", "/models/load", rebound, load)).status, 403);
    assert.equal(spawns(), 0, "nothing was loaded");
    assert.equal(proxy.controller.state("a")?.status ?? "unloaded", "unloaded");

    // curl and the SDKs (no Origin) and the proxy's own dashboard (same origin) work
    assert.equal((await send("POST", "/models/load", { host: `localhost:${port}` }, load)).status, 200);
    const own = { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin" };
    assert.equal((await send("POST", "/models/pin", own, JSON.stringify({ model: "a", pinned: true }))).status, 200);
    assert.equal((await send("POST", "/models/unload", own, load)).status, 200);
    const sdk = await post(url, "/v1/chat/completions", { model: "a", messages: [{ role: "user", content: "x" }] });
    assert.equal(sdk.status, 200);
    await sdk.arrayBuffer();
    const viaName = await send("GET", "/api/status", { host: `localhost:${port}`, "sec-fetch-site": "none" });
    assert.equal(viaName.status, 200);
    // a link from another site to the dashboard is a navigation: served
    const nav = await send("GET", "/ui/", {
      host: page.host,
      "sec-fetch-site": "cross-site",
      "sec-fetch-mode": "navigate",
    });
    assert.notEqual(nav.status, 403);

    // --cors lets the listed origin act; with a key, Host is not checked (a rebinding page has no key)
    const cors = await rig(t, basic, { corsOrigins: ["https://app.example"], apiKeys: ["k"] });
    const cport = Number(new URL(cors.url).port);
    const app = { origin: "https://app.example", "sec-fetch-site": "cross-site", authorization: "Bearer k" };
    const sendTo = (headers: Record<string, string>) =>
      fetch(`${cors.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "a", messages: [{ role: "user", content: "x" }] }),
      });
    const allowed = await sendTo(app);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example");
    await allowed.arrayBuffer();
    const other = await sendTo({ ...app, origin: "https://evil.example" });
    assert.equal(other.status, 403);
    await other.arrayBuffer();
    const named = await new Promise<number>((resolve, reject) => {
      const r = httpRequest(
        {
          host: "127.0.0.1",
          port: cport,
          path: "/api/status",
          headers: { host: "llm.example.com", authorization: "Bearer k" },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      r.on("error", reject);
      r.end();
    });
    assert.equal(named, 200);
  });

  test("a body nested deeper than llama-server can parse is a 400 in each API's shape, before any model loads", async (t) => {
    const { url, spawns } = await rig(t, basic);
    const deep = (levels: number) =>
      `{"model":"a","messages":[{"role":"user","content":"hi"}],"x":${"[".repeat(levels)}${"]".repeat(levels)}}`;
    const chat = deep(200_000);
    const paths = [
      "/v1/chat/completions",
      "/upstream/a/v1/chat/completions",
      "/tokenize",
      "/models/load",
      "/models/pin",
    ];
    for (const path of paths) {
      // the management routes take 64 KiB at most
      const r = await post(url, path, path.startsWith("/models/") ? deep(1_000) : chat);
      const body = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(r.status, 400, path);
      assert.equal(body.error.code, "json_too_deep", path);
      assert.match(body.error.message, /more than 128 levels/);
    }
    // Ollama's /api/chat answered 500 "Maximum call stack size exceeded"
    // a content type llama-server does not read as a form is scanned too (its test: a case-sensitive prefix)
    for (const type of ["multipart/mixed", "Multipart/Form-Data", "text/plain"]) {
      const r = await post(url, "/upstream/a/v1/chat/completions", chat, { "content-type": type });
      assert.equal(r.status, 400, type);
      await r.arrayBuffer();
    }
    const ollama = await post(url, "/api/chat", chat);
    assert.equal(ollama.status, 400);
    assert.match(((await ollama.json()) as { error: string }).error, /more than 128 levels/);
    assert.equal(spawns(), 0, "nothing was loaded or sent");
    // 128 levels in all pass (the body's own object is the first)
    const ok = await post(url, "/tokenize", `{"model":"a","content":"x","x":${"[".repeat(127)}${"]".repeat(127)}}`);
    assert.equal(ok.status, 200, await ok.text());
  });

  test("non-UTF-8 JSON is the proxy's 400 (not llama-server's 500), in OpenAI's and Ollama's shapes", async (t) => {
    const { url, spawns } = await rig(t, basic);
    const latin1 = Buffer.concat([
      Buffer.from('{"model":"a","messages":[{"role":"user","content":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}]}'),
    ]);
    const send = (path: string, body: Buffer, headers: Record<string, string> = {}) =>
      fetch(`${url}${path}`, { method: "POST", body, headers });
    const r1 = await send("/v1/chat/completions", latin1, { "content-type": "application/json" });
    assert.equal(r1.status, 400, "not llama-server's 500");
    assert.match(((await r1.json()) as { error: { message: string } }).error.message, /UTF-8/);
    const r2 = await send("/api/chat", latin1);
    assert.equal(r2.status, 400);
    assert.match(((await r2.json()) as { error: string }).error, /UTF-8/);
    assert.equal(spawns(), 0);
  });

  test("multipart to a JSON route is a 400 that says which content type to send; the audio route still takes it", async (t) => {
    const { url, spawns } = await rig(t, basic);
    const send = (path: string, body: FormData) => fetch(`${url}${path}`, { method: "POST", body });
    const form = () => {
      const f = new FormData();
      f.set("model", "a");
      f.set("messages", "hi");
      return f;
    };
    for (const path of ["/v1/chat/completions?model=a", "/models/load", "/models/pin"]) {
      const r = await send(path, form());
      const body = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(r.status, 400, path);
      assert.equal(body.error.code, "unsupported_content_type", path);
      assert.match(body.error.message, /Content-Type: application\/json.*not multipart\/form-data/, path);
    }
    const r3 = await send("/api/chat", form());
    assert.equal(r3.status, 400);
    assert.match(((await r3.json()) as { error: string }).error, /application\/json/);
    assert.equal(spawns(), 0);
    // the audio route takes multipart: it is passed on (the fake has no such endpoint; the error is not ours)
    const audio = await send("/v1/audio/transcriptions?model=a", form());
    assert.notEqual(((await audio.json()) as { error?: { code?: string } }).error?.code, "unsupported_content_type");
  });

  test("a request target that is not a path ('*') is the client's 400, not a 502 counted against llama-server", async (t) => {
    const { url } = await rig(t, basic);
    const port = Number(new URL(url).port);
    const star = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const body = JSON.stringify({ model: "a", messages: [{ role: "user", content: "x" }] });
      const r = httpRequest(
        { host: "127.0.0.1", port, method: "POST", path: "*", headers: { "content-length": Buffer.byteLength(body) } },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      r.on("error", reject);
      r.end(body);
    });
    assert.equal(star.status, 400, star.text);
    assert.equal((JSON.parse(star.text) as { error: { code: string } }).error.code, "bad_request_target");
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.doesNotMatch(metrics, /upstream_failed|status="502"/);
  });

  test("a management body over its 64 KiB limit: the 413 says 64 KiB (not '0 MiB') and not to raise bodyLimit", async (t) => {
    const { url } = await rig(t, basic);
    const big = await post(url, "/models/load", { model: "a", pad: "x".repeat(70_000) });
    assert.equal(big.status, 413);
    const msg = ((await big.json()) as { error: { message: string } }).error.message;
    assert.match(msg, /limit of 64 KiB for this route/);
    assert.doesNotMatch(msg, /0 MiB|bodyLimit/);
  });

  test("an empty API key is refused at start (it would count as a key and protect nothing)", async (t) => {
    await assert.rejects(
      () => rig(t, basic, { host: "0.0.0.0", apiKeys: [""] }),
      (e: unknown) => isGglibError(e, "invalid_config") && /API key is empty/.test(e.message),
    );
    await assert.rejects(() => rig(t, basic, { apiKeys: ["k", " "] }), /API key is empty/);
  });

  test("extraArgs that override the proxy's own flags (--host, --slot-save-path) are warned about at start", async (t) => {
    const { proxy } = await rig(
      t,
      (p) =>
        `models:\n  a:\n    path: ${JSON.stringify(p.a)}\n    extraArgs: ["--host", "0.0.0.0", "--slot-save-path=/tmp/x", "-c", "512"]\n`,
    );
    const w = proxy.report.warnings.join("\n");
    assert.match(w, /a: extraArgs set --host, which the proxy sets itself/);
    assert.match(w, /a: extraArgs set --slot-save-path/);
    assert.doesNotMatch(w, /set -c\b/);
  });

  test("Ollama's copy keeps a name in use (409) unless told to overwrite; a config model's name never", async (t) => {
    const modelsDir = mkdtempSync(join(tmpdir(), "gglib-proxy-copy-"));
    t.after(() => rmSync(modelsDir, { recursive: true, force: true }));
    const folderB = writeFakeModel(modelsDir, "b");
    const registry = Registry.open({ dbPath: ":memory:" });
    t.after(() => registry.close());
    const { url, proxy } = await rig(t, basic, { modelsDir, registry });
    const pathOf = (name: string) => proxy.controller.getModel(name)?.entry.path;
    assert.equal(pathOf("b"), folderB);
    const copy = (body: unknown) => post(url, "/api/copy", body);
    const taken = await copy({ source: "a", destination: "b:latest" });
    assert.equal(taken.status, 409);
    assert.match(
      ((await taken.json()) as { error: string }).error,
      /already names the model "b:latest".*"overwrite": true/,
    );
    assert.equal(pathOf("b"), folderB, "b still runs its own file");
    const cfg = await copy({ source: "a", destination: "e", overwrite: true });
    assert.equal(cfg.status, 409, "a config model's name cannot be taken by a copy");
    await cfg.arrayBuffer();
    const fresh = await copy({ source: "a", destination: "a-copy" });
    assert.equal(fresh.status, 200);
    await fresh.arrayBuffer();
    assert.equal(pathOf("a-copy"), pathOf("a"));
    const again = await copy({ source: "e", destination: "a-copy" });
    assert.equal(again.status, 409, "a registered name too");
    await again.arrayBuffer();
    const over = await copy({ source: "e", destination: "a-copy", overwrite: true });
    assert.equal(over.status, 200, await over.text());
    assert.equal(pathOf("a-copy"), pathOf("e"));
    const overB = await copy({ source: "a", destination: "b", overwrite: true });
    assert.equal(overB.status, 200);
    await overB.arrayBuffer();
    assert.equal(pathOf("b"), pathOf("a"), "asked explicitly: b runs a's file");
  });

  test("Ollama's pull with a reference that names no model is a 400 (not a 500), before any stream starts", async (t) => {
    const modelsDir = mkdtempSync(join(tmpdir(), "gglib-proxy-pull-"));
    t.after(() => rmSync(modelsDir, { recursive: true, force: true }));
    const { url } = await rig(t, basic, { modelsDir });
    for (const stream of [false, true]) {
      const r = await post(url, "/api/pull", { model: "::bad ref::", stream });
      assert.equal(r.status, 400, `stream ${stream}`);
      assert.match(((await r.json()) as { error: string }).error, /is not a Hugging Face model reference/);
    }
  });

  test("slow clients: a request whose headers never finish is cut at the headers timeout", async (t) => {
    const { url } = await rig(t, basic, { headersTimeoutMs: 1_000, requestTimeoutMs: 2_000 });
    const port = Number(new URL(url).port);
    const sock = connect(port, "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    sock.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n");
    const t0 = Date.now();
    let reply = "";
    sock.on("data", (d: Buffer) => (reply += d.toString()));
    await new Promise((r) => sock.once("close", r));
    assert.ok(Date.now() - t0 < 8_000, `closed after ${Date.now() - t0} ms`);
    assert.match(reply, /^HTTP\/1\.1 408/, "answered 408 before closing");
    assert.match(reply, /"code":"request_timeout"/);
  });

  test("config hot reload on file change: a model added to the file appears, a removed one goes", async (t) => {
    const { url, dir, proxy } = await rig(t, basic, { watchConfig: true });
    const p = (n: string) => join(dir, `${n}.gguf`);
    writeFileSync(
      join(dir, "gglib.yaml"),
      `models:\n  a: {path: ${JSON.stringify(p("a"))}}\n  e2: {path: ${JSON.stringify(p("e"))}}\n`,
    );
    assert.ok(
      await waitFor(() => proxy.controller.catalog().some((m) => m.name === "e2"), 8_000),
      "reloaded after the file changed",
    );
    const list = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.deepEqual(list.data.map((m) => m.id).sort(), ["a", "e2"]);
  });

  test("preload: models marked preload are loaded at start, without a request", async (t) => {
    const { proxy, spawns } = await rig(
      t,
      (p) => `models:\n  a: {path: ${JSON.stringify(p.a)}, preload: true}\n  e: {path: ${JSON.stringify(p.e)}}\n`,
    );
    assert.ok(await waitFor(() => proxy.controller.status().find((s) => s.name === "a")!.state === "ready", 5_000));
    assert.equal(proxy.controller.status().find((s) => s.name === "e")!.state, "unloaded");
    assert.equal(spawns(), 1);
  });

  test("management: /models/load waits for ready, /models/unload stops, /api/events streams lifecycle, /api/logs tails", async (t) => {
    const { url, proxy } = await rig(t, basic);
    const events: string[] = [];
    const ac = new AbortController();
    t.after(() => ac.abort());
    const es = await fetch(`${url}/api/events`, { signal: ac.signal });
    const reader = es.body!.getReader();
    void (async () => {
      const dec = new TextDecoder();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          events.push(dec.decode(value));
        }
      } catch {
        /* aborted */
      }
    })();
    const load = await post(url, "/models/load", { model: "a" });
    assert.equal(load.status, 200);
    assert.deepEqual(await load.json(), { success: true, model: "a", status: "loaded" });
    assert.equal(proxy.controller.status().find((s) => s.name === "a")!.state, "ready");
    const logs = await fetch(`${url}/api/logs/a?lines=50`);
    assert.equal(logs.status, 200);
    assert.match(await logs.text(), /llama_server|listening|model loaded/);
    const follow = await fetch(`${url}/api/logs/a?follow=1&lines=5`);
    assert.equal(follow.headers.get("content-type"), "text/event-stream");
    const fr = follow.body!.getReader();
    const first = new TextDecoder().decode((await fr.read()).value);
    assert.match(first, /^data: "/, "log lines as SSE events");
    await fr.cancel();
    const unload = await post(url, "/models/unload", { model: "a" });
    assert.equal(unload.status, 200);
    assert.ok(await waitFor(() => proxy.controller.status().find((s) => s.name === "a")!.state === "unloaded", 3_000));
    const again = await post(url, "/models/unload", { model: "a" });
    assert.equal(again.status, 400);
    await again.arrayBuffer();
    const missing = await post(url, "/models/load", { model: "nope" });
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
    assert.ok(await waitFor(() => events.join("").includes('"to":"unloaded"'), 2_000));
    const all = events.join("");
    for (const to of ["loading", "ready", "stopping", "unloaded"]) assert.match(all, new RegExp(`"to":"${to}"`));
    const list = (await (await fetch(`${url}/models`)).json()) as { data: { id: string; status: { value: string } }[] };
    assert.deepEqual(
      list.data.map((m) => m.id),
      ["a", "e", "r"],
    );
    const st = (await (await fetch(`${url}/api/status`)).json()) as {
      models: { name: string; estimatedBytes: number; loads: number }[];
      budget: { bytes: number };
    };
    assert.equal(st.models.find((m) => m.name === "a")!.loads, 1);
    assert.ok(st.budget.bytes > 0);
  });
});
