/**
 * Peers over a real network: four test hosts (test/support/netns.ts: a network namespace each, on a bridge), a
 * front `gglib proxy` and two peer `gglib proxy` processes bound to their hosts' addresses with API keys, each on
 * the fake llama-server, and a host where nothing listens (a peer down at start). The front's config names the
 * peers as a new user would write it. Placement by loaded state and by free memory, a peer killed mid-stream.
 * Where namespaces cannot be made (not root, no iproute2), the hosts are loopback addresses and the test says so.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTestNet, type TestHost } from "../support/netns.js";
import { postJson, proxyDir, startProxyProcess, streamCutBy, type ProxyProcess } from "../support/proxy-harness.js";
import type { PeerStatus } from "../../src/proxy/api-types.js";

const KEYS = { front: "sk-front-net", p1: "sk-p1-net", p2: "sk-p2-net" };

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 4,
  ...extra,
});
const chats = (p: ProxyProcess, model: string) =>
  p.stats().filter((s) => s.path === "/v1/chat/completions" && s.model.startsWith(model)).length;

test(
  "peers across network hosts: placement, a peer down at start, a peer killed mid-stream",
  { timeout: 120_000 },
  async (t) => {
    const net = await createTestNet(["front", "p1", "p2", "down"]);
    t.after(() => net.close());
    t.diagnostic(net.mode === "netns" ? "hosts: network namespaces" : `loopback mode: ${net.reason}`);
    const [hf, h1, h2, hdown] = net.hosts as [TestHost, TestHost, TestHost, TestHost];
    const knobs = { loadMs: 50, tokens: -1, tokenIntervalMs: 15 };
    const peer = (h: TestHost, models: string[], key: string, budget: string) =>
      startProxyProcess(t, {
        models,
        args: ["--host", h.ip, "--api-key", key, "--memory-budget", budget],
        knobs,
        wrap: (cmd, args) => h.argv(cmd, args),
      });
    const [p1, p2] = await Promise.all([
      peer(h1, ["m", "n", "x"], KEYS.p1, "8GiB"),
      peer(h2, ["m", "n", "y"], KEYS.p2, "16GiB"),
    ]);
    assert.ok(p1.url.includes(h1.ip) && p2.url.includes(h2.ip), `${p1.url} ${p2.url}`);
    const loaded = await postJson(p1.url, "/models/load", { model: "m" }, { authorization: `Bearer ${KEYS.p1}` });
    assert.equal(loaded.status, 200, await loaded.text());

    // the front, configured the way the README says
    const dir = proxyDir(t, []);
    const config = join(dir, "gglib.yaml");
    writeFileSync(
      config,
      [
        "peers:",
        "  p1:",
        `    url: ${p1.url}`,
        "    apiKeyEnv: P1_KEY",
        "  p2:",
        `    url: ${p2.url}`,
        "    apiKey: ${env.P2_KEY}",
        "  down:",
        `    url: http://${hdown.ip}:8080`,
        "    timeouts: { connect: 1, health: 1 }",
        "",
      ].join("\n"),
    );
    const front = await startProxyProcess(t, {
      dir,
      args: ["--config", config, "--host", hf.ip, "--api-key", KEYS.front],
      env: { P1_KEY: KEYS.p1, P2_KEY: KEYS.p2 },
      wrap: (cmd, args) => hf.argv(cmd, args),
    });
    const ready = JSON.parse(
      front
        .stdout()
        .split("\n")
        .find((l) => l.includes('"event":"ready"'))!,
    ) as {
      peers: { name: string; up: boolean; error: string | null }[];
    };
    assert.deepEqual(
      ready.peers.map((p) => [p.name, p.up]),
      [
        ["p1", true],
        ["p2", true],
        ["down", false],
      ],
    );
    const auth = { authorization: `Bearer ${KEYS.front}` };

    // loaded there: m → p1 (p2 has twice the budget)
    let r = await postJson(front.url, "/v1/chat/completions", chat("m"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.deepEqual([chats(p1, "m"), chats(p2, "m")], [1, 0]);
    // loaded nowhere: the most free budget: n → p2
    r = await postJson(front.url, "/v1/chat/completions", chat("n"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.deepEqual([chats(p1, "n"), chats(p2, "n")], [0, 1]);
    // the status says where each model lives, and which peer is down
    const st = (await (await fetch(`${front.url}/api/status`, { headers: auth })).json()) as { peers: PeerStatus[] };
    const down = st.peers.find((p) => p.name === "down")!;
    assert.equal(down.up, false);
    assert.match(String(down.lastError), /refused the connection|did not accept a connection|unreachable/);
    assert.deepEqual(
      st.peers
        .find((p) => p.name === "p1")!
        .models.map((m) => [m.id, m.state])
        .sort(),
      [
        ["p1/m", "ready"],
        ["p1/n", "idle"],
        ["p1/x", "idle"],
      ],
    );

    // p2 killed mid-stream: SSE error event and [DONE], no hang
    r = await postJson(front.url, "/v1/chat/completions", chat("y", { stream: true, max_tokens: 100_000 }), auth);
    const err = await streamCutBy(r, () => p2.kill("SIGKILL"));
    assert.equal(err.error.code, "upstream_failed");
    assert.match(err.error.message, /peer 'p2'/);

    // n again: p2 is gone (found by the request or by a poll); p1 serves it
    await p2.exited;
    r = await postJson(front.url, "/v1/chat/completions", chat("n"), auth);
    assert.equal(r.status, 200, await r.text());
    assert.equal(chats(p1, "n"), 1);
  },
);
