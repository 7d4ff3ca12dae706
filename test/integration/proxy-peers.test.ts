/**
 * Peers on loopback: a front proxy (startProxy, in this process) with two peers that are real `gglib proxy`
 * processes on the fake llama-server, each with its own API key. Placement by loaded state and by free memory
 * budget, qualified and unqualified names, a request not yet started retried on the other host when one dies, a
 * peer killed mid-stream (SSE error then [DONE], no hang), both down (a clear error). Then a peer down at start,
 * and keys: recording OpenAI-compatible servers check which headers reach which host.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/proxy/index.js";
import type { PeerStatus } from "../../src/proxy/api-types.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, freePort } from "../support/fake-llama.js";
import { postJson, sseData, startProxyProcess, streamCutBy, type ProxyProcess } from "../support/proxy-harness.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";

const KEY_B = "sk-peer-b-Secret";
const KEY_C = "sk-peer-c-Secret";
const CLIENT_KEY = "sk-front-client-Secret";

/** A front proxy in this process (no local models unless given), routing to `peers`. */
async function front(t: TestContext, opts: Partial<ProxyOptions>): Promise<RunningProxy> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-peers-front-"));
  mkdirSync(join(dir, "models"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const runner = new LlamaServerRunner({
    binaryPath: FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    healthIntervalMs: 0,
    stopGraceMs: 2_000,
    env: fakeLlamaEnv({ loadMs: 50 }),
    basePort: 20_000 + Math.floor(Math.random() * 20_000),
  });
  const proxy = await startProxy({
    port: 0,
    modelsDir: join(dir, "models"),
    memoryBudget: "1GiB",
    watchConfig: false,
    contextCache: false,
    ...opts,
    runner,
  });
  t.after(() => proxy.close(1_000));
  return proxy;
}

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 4,
  ...extra,
});

/** The chat requests a peer's fake llama-servers received, by model. */
const chats = (p: ProxyProcess, model: string) =>
  p.stats().filter((s) => s.path === "/v1/chat/completions" && s.model.startsWith(model)).length;

async function peerStatus(url: string, headers: Record<string, string> = {}): Promise<PeerStatus[]> {
  const r = await fetch(`${url}/api/status`, { headers });
  return ((await r.json()) as { peers: PeerStatus[] }).peers;
}

describe("peers: one endpoint over several gglib hosts (loopback)", { timeout: 120_000 }, () => {
  test("placement, names, failover before a start, a peer killed mid-stream, all down", async (t) => {
    // B: small budget, long streams; C: twice the budget
    const knobs = { loadMs: 50, tokens: -1, tokenIntervalMs: 15 };
    const [b, c] = await Promise.all([
      startProxyProcess(t, {
        models: ["m", "n", "x"],
        args: ["--api-key", KEY_B, "--memory-budget", "8GiB"],
        knobs,
      }),
      startProxyProcess(t, {
        models: ["m", "n", "y"],
        args: ["--api-key", KEY_C, "--memory-budget", "16GiB"],
        knobs,
      }),
    ]);
    // m is loaded on B before the front starts: its first discovery sees it there
    const load = await postJson(b.url, "/models/load", { model: "m" }, { authorization: `Bearer ${KEY_B}` });
    assert.equal(load.status, 200, await load.text());
    const proxy = await front(t, {
      apiKeys: [CLIENT_KEY],
      env: { KEY_B, KEY_C },
      // b: polling only, and slow: a killed b is found by the request (not by a poll or its events' end)
      peers: {
        b: { url: b.url, apiKeyEnv: "KEY_B", pollInterval: 60, events: false },
        c: { url: c.url, apiKey: "${env.KEY_C}", pollInterval: 60 },
      },
    });
    const auth = { authorization: `Bearer ${CLIENT_KEY}` };
    assert.deepEqual(
      proxy.report.peers.map((p) => [p.name, p.up, p.kind]),
      [
        ["b", true, "gglib"],
        ["c", true, "gglib"],
      ],
    );

    // /v1/models: every peer model, qualified, with where it lives
    const list = (await (await fetch(`${proxy.url}/v1/models`, { headers: auth })).json()) as {
      data: { id: string; location: string; aliases: string[]; status: { state: string } }[];
    };
    const ids = list.data.map((d) => d.id).sort();
    assert.deepEqual(ids, ["b/m", "b/n", "b/x", "c/m", "c/n", "c/y"]);
    const bm = list.data.find((d) => d.id === "b/m")!;
    assert.equal(bm.location, "b");
    assert.deepEqual(bm.aliases, ["m"]);
    assert.equal(bm.status.state, "ready");

    // loaded there wins over free memory: m → B (C has twice the budget)
    let r = await postJson(proxy.url, "/v1/chat/completions", chat("m"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.equal(chats(b, "m"), 1);
    assert.equal(chats(c, "m"), 0);

    // nowhere loaded: the most free memory budget: n → C
    r = await postJson(proxy.url, "/v1/chat/completions", chat("n"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.equal(chats(c, "n"), 1);
    assert.equal(chats(b, "n"), 0);

    // unqualified and unique → its host; qualified → that host; unknown → 404 naming what there is
    r = await postJson(proxy.url, "/v1/chat/completions", chat("y"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.equal(chats(c, "y"), 1);
    // qualified: that host, though n is loaded on C (and C has more room)
    r = await postJson(proxy.url, "/v1/chat/completions", chat("b/n"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.equal(chats(b, "n"), 1);
    r = await postJson(proxy.url, "/v1/chat/completions", chat("nope"), auth);
    assert.equal(r.status, 404);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /b\/m.*c\/y/);

    // a streamed answer through the front, whole
    r = await postJson(proxy.url, "/v1/chat/completions", chat("x", { stream: true }), auth);
    assert.equal(r.status, 200);
    assert.match(String(r.headers.get("content-type")), /text\/event-stream/);
    const whole = sseData(await r.text());
    assert.equal(whole.at(-1), "[DONE]");
    assert.ok(whole.length > 2);

    // /metrics: the peers' gauges and counters
    const metrics = await (await fetch(`${proxy.url}/metrics`, { headers: auth })).text();
    assert.match(metrics, /gglib_proxy_peer_up\{peer="b"\} 1/);
    assert.match(metrics, /gglib_proxy_peer_requests_total\{peer="c",status="200"\} 2/);
    assert.match(metrics, /gglib_proxy_requests_total\{model="b\/m",status="200"\} 1/);

    // B dies; the front still believes m is loaded there: the request cannot reach B → sent to C instead
    b.kill("SIGKILL");
    await b.exited;
    r = await postJson(proxy.url, "/v1/chat/completions", chat("m"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.equal(chats(c, "m"), 1);
    let st = (await peerStatus(proxy.url, auth)).find((p) => p.name === "b")!;
    assert.equal(st.up, false);
    // a new connection is refused; a kept-alive one the kill closed may be found closed as it is reused
    assert.match(String(st.lastError), /refused the connection|closed the connection/);
    assert.equal(st.requests.unreachable, 1);

    // C killed mid-stream: the client gets an SSE error event and [DONE], promptly
    r = await postJson(proxy.url, "/v1/chat/completions", chat("m", { stream: true, max_tokens: 100_000 }), auth);
    const err = await streamCutBy(r, () => c.kill("SIGKILL"));
    assert.equal(err.error.code, "upstream_failed");
    assert.match(err.error.message, /peer 'c'/);

    // both down: a clear error naming them (their models are no longer listed)
    await c.exited;
    st = (await peerStatus(proxy.url, auth)).find((p) => p.name === "c")!;
    assert.equal(st.up, false);
    r = await postJson(proxy.url, "/v1/chat/completions", chat("m"), auth);
    assert.ok(r.status === 404 || r.status === 503, String(r.status));
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /b \(.*\).*c \(/);
  });
});

describe("peers: a gglib peer's events", { timeout: 60_000 }, () => {
  test("a load on the peer and its death reach the front at once, not at the next poll", async (t) => {
    const b = await startProxyProcess(t, { models: ["m"], args: ["--api-key", KEY_B] });
    const proxy = await front(t, { peers: { b: { url: b.url, apiKey: KEY_B, pollInterval: 60 } } });
    const model = async () => (await peerStatus(proxy.url)).find((p) => p.name === "b")!;
    assert.equal((await model()).models[0]?.state, "idle");
    const load = await postJson(b.url, "/models/load", { model: "m" }, { authorization: `Bearer ${KEY_B}` });
    assert.equal(load.status, 200, await load.text());
    const t0 = Date.now();
    assert.ok(await waitFor(async () => (await model()).models[0]?.state === "ready", 10_000), "ready seen");
    t.diagnostic(`load seen by the front ${Date.now() - t0} ms after the peer answered`);
    b.kill("SIGKILL");
    await b.exited;
    const t1 = Date.now();
    assert.ok(await waitFor(async () => !(await model()).up, 10_000), "down seen");
    t.diagnostic(`death seen by the front ${Date.now() - t1} ms after the peer exited (no request, poll 60 s)`);
    // the events stream's end (a reset) or the check after it (refused) says so, whichever comes first
    assert.match(String((await model()).lastError), /refused the connection|closed the connection/);
  });
});

describe("peers: the dashboard's requests", { timeout: 60_000 }, () => {
  test("a same-origin page's request routed to a peer is served there (the page's Origin stays at the front)", async (t) => {
    const b = await startProxyProcess(t, { models: ["m"], args: ["--api-key", KEY_B] });
    const proxy = await front(t, { peers: { b: { url: b.url, apiKey: KEY_B, pollInterval: 60 } } });
    const page = { origin: proxy.url, "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors" };
    const r = await postJson(proxy.url, "/v1/chat/completions", chat("m"), page);
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(((await r.json()) as { model: string }).model, "m");
    assert.equal(chats(b, "m"), 1);
  });
});

describe("peers: a host that stops answering (no FIN)", { timeout: 60_000 }, () => {
  test("a frozen peer's open stream is cut with a clear error; new requests go to the other host", async (t) => {
    const knobs = { loadMs: 50, tokens: -1, tokenIntervalMs: 15 };
    const [b, c] = await Promise.all([
      startProxyProcess(t, { models: ["m", "x"], knobs }),
      startProxyProcess(t, { models: ["m"], knobs }),
    ]);
    const fast = { pollInterval: 0.3, timeouts: { health: 0.5 } };
    const proxy = await front(t, { peers: { b: { url: b.url, ...fast }, c: { url: c.url, ...fast } } });
    const r = await postJson(proxy.url, "/v1/chat/completions", chat("x", { stream: true, max_tokens: 100_000 }));
    assert.equal(r.status, 200);
    const reader = r.body!.getReader();
    assert.ok(!(await reader.read()).done);
    // SIGSTOP: the process and its sockets stay, nothing more is sent, no FIN
    b.kill("SIGSTOP");
    const t0 = Date.now();
    let text = "";
    for (let ch = await reader.read(); !ch.done; ch = await reader.read()) text += new TextDecoder().decode(ch.value);
    const took = Date.now() - t0;
    assert.ok(took < 15_000, `ended after ${took} ms`);
    const events = sseData(text);
    assert.equal(events.at(-1), "[DONE]");
    const err = JSON.parse(events.at(-2)!) as { error: { code: string; message: string } };
    assert.equal(err.error.code, "upstream_failed");
    assert.match(err.error.message, /peer b stopped answering \(2 health checks in a row/);
    // b is down: m goes to c
    const st = (await peerStatus(proxy.url)).find((p) => p.name === "b")!;
    assert.equal(st.up, false);
    const again = await postJson(proxy.url, "/v1/chat/completions", chat("m"));
    assert.equal(again.status, 200, await again.text());
    assert.equal(chats(c, "m"), 1);
    // thawed: up again at a later check, and serving
    b.kill("SIGCONT");
    assert.ok(
      await waitFor(async () => (await peerStatus(proxy.url)).find((p) => p.name === "b")!.up, 20_000),
      "b up again",
    );
    const back = await postJson(proxy.url, "/v1/chat/completions", chat("b/x"));
    assert.equal(back.status, 200, await back.text());
  });
});

/** An OpenAI-compatible server that records every request's method, path and headers. */
async function recordingServer(t: TestContext, models: string[]) {
  const seen: { method: string; path: string; headers: IncomingHttpHeaders; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      if (req.url === "/v1/models") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: models.map((id) => ({ id, object: "model" })) }));
      } else if (req.url === "/v1/chat/completions") {
        const j = JSON.parse(body) as { model: string; stream?: boolean };
        if (j.stream) {
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write(`data: ${JSON.stringify({ model: j.model, choices: [{ delta: { content: "hi" } }] })}\n\n`);
          res.end("data: [DONE]\n\n");
        } else {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ model: j.model, choices: [{ message: { role: "assistant", content: "hi" } }] }));
        }
      } else {
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"error":{"message":"not here"}}');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe("peers: keys and a peer down at start", { timeout: 60_000 }, () => {
  test("the client's key never leaves the front; each peer sees only its own key", async (t) => {
    const a = await recordingServer(t, ["gpt-a"]);
    const b = await recordingServer(t, ["gpt-b"]);
    const proxy = await front(t, {
      apiKeys: [CLIENT_KEY],
      env: { KEY_A: "sk-for-a-only" },
      peers: { a: { url: a.url, apiKeyEnv: "KEY_A" }, b: { url: b.url, kind: "openai" } },
    });
    assert.deepEqual(
      proxy.report.peers.map((p) => [p.name, p.up, p.kind, p.models]),
      [
        ["a", true, "openai", ["a/gpt-a"]],
        ["b", true, "openai", ["b/gpt-b"]],
      ],
    );
    const creds = { authorization: `Bearer ${CLIENT_KEY}`, "x-api-key": CLIENT_KEY, cookie: "session=client" };
    for (const model of ["gpt-a", "a/gpt-a", "gpt-b", "b/gpt-b"]) {
      for (const stream of [false, true]) {
        const r = await postJson(proxy.url, "/v1/chat/completions", chat(model, { stream }), creds);
        const text = await r.text();
        assert.equal(r.status, 200, text);
        // the peer was asked for its own name (the qualified one is ours)
        assert.match(text, new RegExp(`"model":"gpt-${model.endsWith("a") ? "a" : "b"}"`));
      }
    }
    // auto-detection asked A for /api/status first (404: not gglib), then /v1/models
    assert.deepEqual(
      a.seen.slice(0, 2).map((s) => s.path),
      ["/api/status", "/v1/models"],
    );
    assert.equal(b.seen[0]?.path, "/v1/models");
    const everything = (s: { headers: IncomingHttpHeaders; body: string }) => JSON.stringify(s.headers) + s.body;
    for (const s of a.seen) {
      assert.equal(s.headers.authorization, "Bearer sk-for-a-only", `${s.method} ${s.path}`);
      assert.equal(s.headers["x-api-key"], undefined);
      assert.equal(s.headers.cookie, undefined);
      assert.ok(!everything(s).includes(CLIENT_KEY));
    }
    for (const s of b.seen) {
      assert.equal(s.headers.authorization, undefined, `${s.method} ${s.path}`);
      assert.equal(s.headers["x-api-key"], undefined);
      assert.ok(!everything(s).includes(CLIENT_KEY));
      assert.ok(!everything(s).includes("sk-for-a-only"));
    }
    assert.equal(a.seen.filter((s) => s.path === "/v1/chat/completions").length, 4);
    assert.equal(b.seen.filter((s) => s.path === "/v1/chat/completions").length, 4);
  });

  test("a peer down at start is reported and skipped; a gglib peer without our key says so", async (t) => {
    const c = await startProxyProcess(t, { models: ["y"], args: ["--api-key", KEY_C] });
    const deadPort = await freePort();
    const proxy = await front(t, {
      peers: {
        gone: { url: `http://127.0.0.1:${deadPort}`, timeouts: { connect: 1, health: 1 } },
        nokey: { url: c.url, kind: "gglib" },
        c: { url: c.url, apiKey: KEY_C },
      },
    });
    const byName = new Map(proxy.report.peers.map((p) => [p.name, p]));
    assert.equal(byName.get("gone")?.up, false);
    assert.match(String(byName.get("gone")?.error), /refused the connection/);
    assert.equal(byName.get("nokey")?.up, false);
    assert.match(String(byName.get("nokey")?.error), /refused our key \(401.*needs an apiKey/);
    assert.equal(byName.get("c")?.up, true);
    assert.ok(proxy.report.warnings.some((w) => /peer gone is down/.test(w)));
    const r = await postJson(proxy.url, "/v1/chat/completions", chat("y"));
    assert.equal(r.status, 200, await r.text());
    const down = await postJson(proxy.url, "/v1/chat/completions", chat("gone/z"));
    assert.equal(down.status, 503);
    assert.match(
      ((await down.json()) as { error: { message: string } }).error.message,
      /The peer 'gone' is down \(.*refused the connection/,
    );
    const miss = await postJson(proxy.url, "/v1/chat/completions", chat("z"));
    assert.equal(miss.status, 404);
    assert.match(((await miss.json()) as { error: { message: string } }).error.message, /Peers down.*gone/);
    // the status tells where the models live and which peers are down
    const st = await peerStatus(proxy.url);
    assert.deepEqual(
      st.map((p) => [p.name, p.up, p.models.map((m) => m.id)]),
      [
        ["gone", false, []],
        ["nokey", false, []],
        ["c", true, ["c/y"]],
      ],
    );
  });

  test("peers from the config file: /api/config shows them without the key; a reload that changes them warns", async (t) => {
    const a = await recordingServer(t, ["gpt-a"]);
    const dir = mkdtempSync(join(tmpdir(), "gglib-peers-config-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const configPath = join(dir, "gglib.yaml");
    writeFileSync(configPath, `peers:\n  a:\n    url: ${a.url}\n    apiKey: \${env.A_KEY}\n`);
    const proxy = await front(t, { configPath, env: { A_KEY: "sk-config-secret" } });
    assert.deepEqual(
      proxy.report.peers.map((p) => [p.name, p.up]),
      [["a", true]],
    );
    const cfg = await (await fetch(`${proxy.url}/api/config`)).text();
    assert.match(cfg, /a → http:\/\/127\.0\.0\.1:\d+ \(auto, key set\)/);
    assert.ok(!cfg.includes("sk-config-secret"));
    let r = await proxy.reload("test");
    assert.ok(!r.warnings.some((w) => /peers changed/.test(w)), r.warnings.join("\n"));
    writeFileSync(configPath, `peers:\n  b:\n    url: ${a.url}\n`);
    r = await proxy.reload("test");
    assert.ok(
      r.warnings.some((w) => /the peers changed in the config file: restart the proxy/.test(w)),
      r.warnings.join("\n"),
    );
  });
});
