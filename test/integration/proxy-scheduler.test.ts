/**
 * The proxy's scheduling rules end to end on the fake llama-server (real processes, real HTTP): single flight,
 * swaps that never cut requests, crash mid-stream, client disconnect, TTL, load failure backoff, hot reload,
 * `/metrics` that never loads a model, and no llama-server left after the proxy is SIGKILLed.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ServerEvent } from "../../src/core/events.js";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/proxy/index.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel, type FakeLlamaKnobs } from "../support/fake-llama.js";
import { pidsWithArg, running, waitFor, killQuietly } from "../support/procs.js";

interface Rig {
  dir: string;
  proxy: RunningProxy;
  url: string;
  events: ServerEvent[];
  spawns: (model?: string) => number;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-it-"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A proxy over fake llama-servers. `models`: name → knobs for that model (env of its process). */
async function rig(
  t: TestContext,
  models: Record<string, FakeLlamaKnobs & { sizeBytes?: number }>,
  opts: Partial<ProxyOptions> & { yaml?: (dir: string) => string } = {},
): Promise<Rig> {
  const dir = tempDir(t);
  const lines: string[] = [`models:`];
  for (const [name, knobs] of Object.entries(models)) {
    const path = writeFakeModel(dir, name, knobs.sizeBytes !== undefined ? { sizeBytes: knobs.sizeBytes } : {});
    const env = fakeLlamaEnv({ loadMs: 100, ...knobs }, {});
    lines.push(`  ${name}:`, `    path: ${JSON.stringify(path)}`, `    env:`);
    for (const [k, v] of Object.entries(env)) if (v !== undefined) lines.push(`      ${k}: ${JSON.stringify(v)}`);
  }
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, opts.yaml ? opts.yaml(dir) : lines.join("\n") + "\n");
  const runner = new LlamaServerRunner({
    binaryPath: FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    healthIntervalMs: 0,
    stopGraceMs: 3_000,
    basePort: 20_000 + Math.floor(Math.random() * 20_000),
  });
  const events: ServerEvent[] = [];
  runner.on((e) => events.push(e));
  const proxy = await startProxy({ port: 0, memoryBudget: "64GiB", watchConfig: false, ...opts, configPath, runner });
  t.after(() => proxy.close(2_000));
  return {
    dir,
    proxy,
    url: proxy.url,
    events,
    spawns: (model?: string) =>
      events.filter((e) => e.type === "spawned" && (model === undefined || e.handle.model === model)).length,
  };
}

function chat(url: string, model: string, extra: Record<string, unknown> = {}, init: RequestInit = {}) {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 8, ...extra }),
    ...init,
  });
}

function sseEvents(text: string): string[] {
  return text
    .split("\n\n")
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
}

function statusOf(p: RunningProxy, model: string) {
  return p.controller.status().find((s) => s.name === model)!;
}

describe("proxy scheduling on the fake llama-server", { timeout: 60_000 }, () => {
  test("20 concurrent first requests start exactly one llama-server and all get its answer", async (t) => {
    const r = await rig(t, { a: { loadMs: 400 } });
    const res = await Promise.all(Array.from({ length: 20 }, () => chat(r.url, "a")));
    const bodies = await Promise.all(res.map((x) => x.json() as Promise<{ model: string }>));
    assert.deepEqual(
      res.map((x) => x.status),
      Array(20).fill(200),
    );
    assert.ok(bodies.every((b) => b.model === "a"));
    assert.equal(r.spawns("a"), 1);
  });

  test("--max-models 1: a request for b waits for a's streams to finish, then a stops and b answers; nothing is cut", async (t) => {
    const r = await rig(t, { a: { tokens: 15, tokenIntervalMs: 40 }, b: {} }, { maxModels: 1 });
    const streams = [0, 1, 2].map(() =>
      chat(r.url, "a", { stream: true, max_tokens: 100 }).then(async (x) => ({
        status: x.status,
        text: await x.text(),
      })),
    );
    await waitFor(() => statusOf(r.proxy, "a").inFlight === 3, 10_000);
    const b = await chat(r.url, "b");
    const bBody = (await b.json()) as { model: string };
    assert.equal(b.status, 200);
    assert.equal(bBody.model, "b");
    for (const s of await Promise.all(streams)) {
      assert.equal(s.status, 200);
      const ev = sseEvents(s.text);
      assert.equal(ev.at(-1), "data: [DONE]", "every stream of a ran to its end");
      assert.ok(!s.text.includes('"error"'), "no stream got an error");
      assert.equal(ev.filter((e) => e.includes('"content"')).length >= 15, true);
    }
    assert.equal(statusOf(r.proxy, "a").state, "unloaded");
    assert.equal(statusOf(r.proxy, "b").state, "ready");
  });

  test("a request for a loaded model is not held behind another model's slow load", async (t) => {
    const r = await rig(t, { a: {}, slow: { loadMs: 3_000 } }, { maxModels: 2 });
    assert.equal((await chat(r.url, "a")).status, 200);
    const slow = chat(r.url, "slow");
    await waitFor(() => statusOf(r.proxy, "slow").state === "loading", 5_000);
    const t0 = Date.now();
    const fast = await chat(r.url, "a");
    assert.equal(fast.status, 200);
    assert.ok(Date.now() - t0 < 1_500, `a answered in ${Date.now() - t0} ms while slow was loading`);
    assert.equal(statusOf(r.proxy, "slow").state, "loading");
    assert.equal((await slow).status, 200);
  });

  test("a streaming request that waits for a load gets ': loading' comments first, then the stream", async (t) => {
    const r = await rig(t, { a: { loadMs: 1_500 } }, { keepAliveMs: 300 });
    const res = await chat(r.url, "a", { stream: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-accel-buffering"), "no");
    const ev = sseEvents(await res.text());
    assert.match(ev[0]!, /^: (loading|waiting for room to load) a/);
    assert.ok(ev.filter((e) => e.startsWith(":")).length >= 2, "several keep-alive comments during a 1.5 s load");
    assert.equal(ev.at(-1), "data: [DONE]");
  });

  test("crash mid-stream: the stream gets an SSE error then [DONE]; the model is marked gone; the next request restarts it", async (t) => {
    const r = await rig(t, { a: { crashAfterChunks: 3, tokens: 20, tokenIntervalMs: 20 } });
    const res = await chat(r.url, "a", { stream: true });
    const ev = sseEvents(await res.text());
    assert.equal(ev.at(-1), "data: [DONE]");
    const err = ev.at(-2)!;
    assert.match(err, /^data: \{"error":/);
    assert.match(err, /exited unexpectedly|SIGSEGV/);
    await waitFor(() => statusOf(r.proxy, "a").state === "unloaded", 3_000);
    assert.equal(statusOf(r.proxy, "a").crashes, 1);
    // non-streaming on the same crashing model: 502 with the cause, not a hang
    const ns = await chat(r.url, "a", {});
    assert.equal(r.spawns("a"), 2, "restarted on the next request");
    assert.equal(ns.status, 502);
    const body = (await ns.json()) as { error: { message: string; type: string } };
    assert.match(body.error.message, /exited unexpectedly|llama-server/);
  });

  test("a client that disconnects mid-stream aborts its upstream request (the slot frees) and the model stays up", async (t) => {
    const r = await rig(t, { a: { tokens: -1, tokenIntervalMs: 20 } });
    assert.equal((await chat(r.url, "a", { max_tokens: 2 })).status, 200);
    const ac = new AbortController();
    const res = await chat(r.url, "a", { stream: true, max_tokens: 100_000 }, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    assert.equal(statusOf(r.proxy, "a").inFlight, 1);
    const port = statusOf(r.proxy, "a").port!;
    ac.abort();
    const freed = await waitFor(async () => {
      const st = (await (await fetch(`http://127.0.0.1:${port}/__fake/state`)).json()) as { inFlight: number };
      return st.inFlight === 0 && statusOf(r.proxy, "a").inFlight === 0;
    }, 3_000);
    assert.ok(freed, "upstream generation stopped and the proxy's in-flight count is back to 0");
    assert.equal(statusOf(r.proxy, "a").state, "ready");
  });

  test("a client that disconnects while waiting for a load leaves the queue", async (t) => {
    const r = await rig(t, { a: { loadMs: 1_500 } });
    const ac = new AbortController();
    const p = chat(r.url, "a", {}, { signal: ac.signal }).catch(() => undefined);
    await waitFor(() => statusOf(r.proxy, "a").queued === 1, 3_000);
    ac.abort();
    await p;
    assert.ok(await waitFor(() => statusOf(r.proxy, "a").queued === 0, 2_000));
  });

  test("TTL: an idle model is unloaded after its TTL (its process is gone)", async (t) => {
    const r = await rig(t, { a: {} }, { ttlS: 1 });
    assert.equal((await chat(r.url, "a")).status, 200);
    const pid = statusOf(r.proxy, "a").pid!;
    assert.ok(running(pid));
    assert.ok(await waitFor(() => statusOf(r.proxy, "a").state === "unloaded", 5_000), "unloaded by TTL");
    assert.ok(await waitFor(() => !running(pid), 3_000), "process gone");
  });

  test("a failed load answers its waiters with llama-server's reason, then backs off with 503 + Retry-After", async (t) => {
    const r = await rig(t, {
      bad: { failLoad: { exitCode: 1, message: "llama_model_load: error loading model: tensor 'x' is corrupted" } },
    });
    const [x, y] = await Promise.all([chat(r.url, "bad"), chat(r.url, "bad")]);
    assert.equal(x.status, 502);
    assert.equal(y.status, 502);
    const body = (await x.json()) as { error: { message: string; code: string } };
    assert.equal(body.error.code, "model_load_failed");
    assert.match(body.error.message, /tensor 'x' is corrupted/, "llama-server's own reason reaches the client");
    const again = await chat(r.url, "bad");
    assert.equal(again.status, 503);
    assert.ok(Number(again.headers.get("retry-after")) >= 1);
    assert.equal(r.spawns("bad"), 1, "no new start during the cooldown");
    const list = (await (await fetch(`${r.url}/v1/models`)).json()) as {
      data: { id: string; status: { value: string } }[];
    };
    assert.equal(list.data.find((m) => m.id === "bad")!.status.value, "failed");
  });

  test("queue deadline and pinned models: a request that cannot get room gets 503 + Retry-After", async (t) => {
    const dir = tempDir(t);
    const a = writeFakeModel(dir, "a");
    const b = writeFakeModel(dir, "b");
    const r = await rig(
      t,
      {},
      {
        maxModels: 1,
        queueTimeoutS: 1,
        yaml: () => `models:\n  a: {path: ${JSON.stringify(a)}, pinned: true}\n  b: {path: ${JSON.stringify(b)}}\n`,
      },
    );
    assert.equal((await chat(r.url, "a")).status, 200);
    const res = await chat(r.url, "b");
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    assert.equal(statusOf(r.proxy, "a").state, "ready", "the pinned model stayed");
  });

  test("memory budget: models are evicted by size, not count", async (t) => {
    const MiB = 1024 * 1024;
    // the estimates (file sizes) and then the measured RSS (the fake touches rssMb MiB while loading) both say:
    // big + small fit in the budget, big + small + big2 do not
    const r = await rig(
      t,
      {
        big: { sizeBytes: 200 * MiB, rssMb: 200 },
        big2: { sizeBytes: 200 * MiB, rssMb: 200 },
        small: { sizeBytes: 1 * MiB },
      },
      { memoryBudget: "520MiB" },
    );
    for (const m of ["big", "small"]) assert.equal((await chat(r.url, m)).status, 200);
    assert.equal(statusOf(r.proxy, "big").state, "ready");
    assert.equal(statusOf(r.proxy, "small").state, "ready");
    const measured = statusOf(r.proxy, "big").measuredBytes!;
    assert.ok(measured > 200 * MiB && measured < 400 * MiB, `measured ${measured / MiB} MiB replaces the estimate`);
    assert.equal((await chat(r.url, "big2")).status, 200);
    assert.equal(statusOf(r.proxy, "big").state, "unloaded", "the least recently used model made room");
    assert.equal(statusOf(r.proxy, "small").state, "ready");
  });

  test("/metrics and /v1/models never load or wake a model", async (t) => {
    const r = await rig(t, { a: {} });
    const m = await fetch(`${r.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /gglib_proxy_model_state\{model="a",state="unloaded"\} 1/);
    const own = await fetch(`${r.url}/metrics?model=a`);
    assert.equal(own.status, 503);
    await fetch(`${r.url}/v1/models`);
    await fetch(`${r.url}/api/status`);
    assert.equal(r.spawns(), 0);
  });

  test("hot reload keeps unchanged running models (same process, requests continue), restarts changed ones, adds and removes", async (t) => {
    const dir = tempDir(t);
    const paths = Object.fromEntries(["a", "b", "c", "d"].map((n) => [n, writeFakeModel(dir, n)]));
    const env = `{FAKE_LLAMA_TOKENS: "10", FAKE_LLAMA_TOKEN_INTERVAL_MS: "60"}`;
    const yaml1 = `models:\n  a: {path: ${JSON.stringify(paths.a)}, env: ${env}}\n  b: {path: ${JSON.stringify(paths.b)}, ctx: 1024}\n  c: {path: ${JSON.stringify(paths.c)}}\n`;
    const r = await rig(t, {}, { yaml: () => yaml1 });
    for (const m of ["a", "b", "c"]) assert.equal((await chat(r.url, m)).status, 200);
    const pidA = statusOf(r.proxy, "a").pid;
    const pidB = statusOf(r.proxy, "b").pid;
    const stream = chat(r.url, "a", { stream: true }).then((x) => x.text());
    await waitFor(() => statusOf(r.proxy, "a").inFlight === 1, 3_000);
    const yaml2 = `models:\n  a: {path: ${JSON.stringify(paths.a)}, env: ${env}}\n  b: {path: ${JSON.stringify(paths.b)}, ctx: 2048}\n  d: {path: ${JSON.stringify(paths.d)}}\n`;
    writeFileSync(join(r.dir, "gglib.yaml"), yaml2);
    const rep = await r.proxy.reload();
    assert.deepEqual(rep.added, ["d"]);
    assert.deepEqual(rep.removed, ["c"]);
    assert.deepEqual(rep.changed, ["b"]);
    assert.deepEqual(rep.unchanged, ["a"]);
    const text = await stream;
    assert.equal(sseEvents(text).at(-1), "data: [DONE]", "a's stream was not cut");
    assert.equal(statusOf(r.proxy, "a").pid, pidA, "a kept its process");
    assert.ok(
      await waitFor(() => statusOf(r.proxy, "b").state === "unloaded", 3_000),
      "b stops to apply its new settings",
    );
    assert.equal((await chat(r.url, "b")).status, 200);
    assert.notEqual(statusOf(r.proxy, "b").pid, pidB);
    assert.equal((await chat(r.url, "c")).status, 404);
    assert.equal((await chat(r.url, "d")).status, 200);
  });
});

describe("gglib proxy command on the fake llama-server", { timeout: 60_000 }, () => {
  test("10 concurrent first requests → one spawn; b swaps a out; SIGKILL of the proxy leaves no llama-server 2 s later", async (t) => {
    const dir = tempDir(t);
    writeFakeModel(dir, "tiny-a");
    writeFakeModel(dir, "tiny-b");
    const stats = join(dir, "stats.jsonl");
    const main = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
    const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
    const child = spawn(tsx, [main, "proxy", "--models-dir", dir, "--max-models", "1", "--port", "0", "--json"], {
      env: {
        ...fakeLlamaEnv({ loadMs: 300, statsFile: stats }),
        GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
        GGLIB_DATA_DIR: join(dir, "data"),
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    t.after(() => killQuietly(child.pid));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    assert.ok(await waitFor(() => out.includes('"event":"ready"'), 20_000), `proxy ready: ${out}`);
    const ready = JSON.parse(out.split("\n").find((l) => l.includes('"event":"ready"'))!) as { url: string };
    const url = ready.url;
    const res = await Promise.all(Array.from({ length: 10 }, () => chat(url, "tiny-a")));
    assert.deepEqual(
      res.map((x) => x.status),
      Array(10).fill(200),
    );
    const models = (await (await fetch(`${url}/v1/models`)).json()) as {
      data: { id: string; status: { value: string } }[];
    };
    assert.deepEqual(models.data.map((m) => [m.id, m.status.value]).sort(), [
      ["tiny-a", "loaded"],
      ["tiny-b", "unloaded"],
    ]);
    const st1 = (await (await fetch(`${url}/api/status`)).json()) as { models: { name: string; pid?: number }[] };
    const pidA = st1.models.find((m) => m.name === "tiny-a")!.pid!;
    const b = await chat(url, "tiny-b");
    assert.equal(((await b.json()) as { model: string }).model, "tiny-b");
    assert.ok(!running(pidA), "a was stopped for b");
    const servers = pidsWithArg(dir).filter((p) => p !== child.pid && !String(p).includes(" "));
    const llamas = servers.filter((p) => {
      try {
        return require_cmd(p).includes("fake-llama-server");
      } catch {
        return false;
      }
    });
    assert.equal(llamas.length, 1, "exactly one llama-server running (b)");
    // metrics answer without loading anything
    assert.equal((await fetch(`${url}/metrics`)).status, 200);
    process.kill(-child.pid!, "SIGKILL");
    // the process group is gone with the kill; llama-servers are in their own groups and must die with the proxy
    await waitFor(() => llamas.every((p) => !running(p)), 2_000);
    const left = llamas.filter((p) => running(p));
    assert.deepEqual(left, [], "no llama-server left 2 s after SIGKILL of the proxy");
  });
});

describe("gglib proxy shutdown", { timeout: 60_000 }, () => {
  test("SIGTERM drains a stream in flight, stops every llama-server and exits 0", async (t) => {
    const dir = tempDir(t);
    const model = writeFakeModel(dir, "slow");
    const cfg = join(dir, "c.yaml");
    writeFileSync(
      cfg,
      `models:\n  slow: {path: ${JSON.stringify(model)}, env: {FAKE_LLAMA_TOKENS: "12", FAKE_LLAMA_TOKEN_INTERVAL_MS: "100"}}\n`,
    );
    const main = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
    const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
    const child = spawn(tsx, [main, "proxy", "--config", cfg, "--port", "0", "--json"], {
      env: {
        ...fakeLlamaEnv({ loadMs: 50 }),
        GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
        GGLIB_DATA_DIR: join(dir, "data"),
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    t.after(() => killQuietly(child.pid));
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    assert.ok(await waitFor(() => out.includes('"event":"ready"'), 20_000), out);
    const url = (JSON.parse(out.split("\n").find((l) => l.includes('"event":"ready"'))!) as { url: string }).url;
    const res = await chat(url, "slow", { stream: true, max_tokens: 100 });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let text = "";
    for (;;) {
      const { value } = await reader.read();
      text += dec.decode(value);
      if (text.includes('"content"')) break;
    }
    const st = (await (await fetch(`${url}/api/status`)).json()) as { models: { pid?: number }[] };
    const pid = st.models[0]!.pid!;
    // the signal goes to the node process running the CLI (tsx's child), as a service manager would send it
    const nodePid = pidsWithArg(main).find(
      (p) => p !== child.pid && readFileSync(`/proc/${p}/cmdline`, "utf8").includes("proxy"),
    )!;
    process.kill(nodePid, "SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    assert.equal(sseEvents(text).at(-1), "data: [DONE]", "the stream in flight finished");
    assert.ok(!text.includes('"error"'));
    assert.equal(
      await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 40_000))]),
      0,
      `exit code 0; stderr: ${err}; stdout tail: ${out.slice(-600)}`,
    );
    assert.ok(!running(pid), "llama-server stopped");
  });
});

function require_cmd(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8");
}
