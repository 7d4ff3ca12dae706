// Faults and races of the runtime core, on the fake llama-server (test/support/fake-llama-server.mjs).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { request } from "node:http";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LlamaServerRunner, type RunnerOptions } from "../../src/runner/llama-server-runner.js";
import { GglibError } from "../../src/core/errors.js";
import type { ServerConfig } from "../../src/core/config.js";
import type { ServerEvent } from "../../src/core/events.js";
import { listPidfiles, sweepOrphans, writePidfile } from "../../src/process/pidfile.js";
import { killQuietly, pidsWithArg, running, waitFor } from "../support/procs.js";

const FAKE = resolve("test/support/fake-llama-server.mjs");
let dir: string;
let model: string;
const runners: LlamaServerRunner[] = [];

function newRunner(opts: RunnerOptions = {}): LlamaServerRunner {
  const r = new LlamaServerRunner({
    binaryPath: FAKE,
    pidsDir: join(dir, "pids"),
    basePort: 20100 + Math.floor(Math.random() * 2000),
    healthIntervalMs: 0,
    ...opts,
  });
  runners.push(r);
  return r;
}
const cfg = (env: Record<string, string> = {}, extra: Partial<ServerConfig> = {}): ServerConfig => ({
  modelPath: model,
  env,
  ...extra,
});

function expectKind(kind: GglibError["kind"], check?: (e: GglibError) => void) {
  return (e: unknown) => {
    assert.ok(e instanceof GglibError, String(e));
    assert.equal(e.kind, kind, e.message);
    check?.(e);
    return true;
  };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "gglib-faults-"));
  model = join(dir, "fake-a.gguf");
  // the fake only checks the magic unless FAKE_LLAMA_STRICT_GGUF is set
  writeFileSync(model, Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(60)]));
});

after(async () => {
  for (const r of runners) await r.stopAll({ graceMs: 500 }).catch(() => undefined);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("runner faults (fake llama-server)", () => {
  test("failure during load: error carries the exit code and llama-server's message; nothing is left", async () => {
    const runner = newRunner();
    await assert.rejects(
      runner.start(
        cfg({
          FAKE_LLAMA_LOAD_MS: "30",
          FAKE_LLAMA_FAIL_LOAD: "3:llama_model_load: error loading model: out of memory",
        }),
      ),
      expectKind("exited_during_load", (e) => {
        assert.match(e.message, /exit code 3/);
        assert.match(e.message, /out of memory/);
        assert.equal(e.details.exitCode, 3);
        assert.match(e.details.hint ?? "", /memory/);
      }),
    );
    assert.deepEqual(runner.listRunning(), []);
    assert.deepEqual(await listPidfiles(join(dir, "pids")), []);
  });

  test("a crash by signal during load is reported as such", async () => {
    const runner = newRunner();
    await assert.rejects(
      runner.start(cfg({ FAKE_LLAMA_FAIL_LOAD: "SIGSEGV:ggml_abort" })),
      expectKind("exited_during_load", (e) => assert.match(e.message, /killed by SIGSEGV/)),
    );
  });

  test("a port llama-server cannot bind is retried on other ports, bounded", async () => {
    const runner = newRunner({ portRetries: 3 });
    const ports: number[] = [];
    runner.on((e) => e.type === "spawned" && ports.push(e.handle.port));
    await assert.rejects(runner.start(cfg({ FAKE_LLAMA_REFUSE_BIND: "1" })), expectKind("port_in_use"));
    assert.equal(ports.length, 3);
    assert.equal(new Set(ports).size, 3, "each try used another port");
  });

  test("readiness deadline: a load that takes too long is stopped with a clear error", async () => {
    const runner = newRunner();
    const t0 = Date.now();
    let pid = 0;
    runner.on((e) => e.type === "spawned" && (pid = e.handle.pid));
    await assert.rejects(
      runner.start(cfg({ FAKE_LLAMA_LOAD_MS: "20000" }), { readyTimeoutMs: 400 }),
      expectKind("ready_timeout", (e) => assert.match(e.message, /not ready within/)),
    );
    assert.ok(Date.now() - t0 < 5000);
    assert.ok(pid > 0 && !running(pid), "the slow process was stopped");
  });

  test("stop during load (abort) ends the process at once", async () => {
    const runner = newRunner();
    const ac = new AbortController();
    let pid = 0;
    runner.on((e) => e.type === "spawned" && (pid = e.handle.pid));
    const p = runner.start(cfg({ FAKE_LLAMA_LOAD_MS: "20000" }), { signal: ac.signal });
    assert.ok(await waitFor(() => pid > 0, 5000));
    const t0 = Date.now();
    ac.abort();
    await assert.rejects(p, expectKind("not_running"));
    assert.ok(Date.now() - t0 < 2000);
    assert.ok(!running(pid));
  });

  test("load progress arrives through the child protocol before ready", async () => {
    const runner = newRunner();
    const values: number[] = [];
    const h = await runner.start(cfg({ FAKE_LLAMA_LOAD_MS: "700" }), { onProgress: (p) => values.push(p.value) });
    assert.ok(values.length >= 3, `progress values: ${values.join(",")}`);
    assert.equal(values[0], 0);
    assert.equal(values.at(-1), 1);
    await runner.stop(h);
  });

  test("without the child protocol readiness comes from polling /health", async () => {
    const runner = newRunner({ childProtocol: false });
    const t0 = Date.now();
    const h = await runner.start(cfg({ FAKE_LLAMA_LOAD_MS: "300" }));
    assert.ok(runner.isRunning(h));
    assert.ok(Date.now() - t0 >= 250, "ready only once the model has loaded");
    await runner.stop(h);
  });

  test("a server that ignores SIGTERM is SIGKILLed at the grace deadline", async () => {
    const runner = newRunner({ childProtocol: false });
    const h = await runner.start(cfg({ FAKE_LLAMA_IGNORE_SIGTERM: "1" }));
    const t0 = Date.now();
    await runner.stop(h, { graceMs: 600 });
    const took = Date.now() - t0;
    assert.ok(!running(h.pid));
    assert.ok(took >= 550 && took < 3000, `took ${took} ms`);
  });

  test("stop while a stream is open: llama-server waits for the client, so the runner ends it well before the grace", async () => {
    const runner = newRunner();
    const h = await runner.start(cfg({ FAKE_LLAMA_TOKENS: "-1", FAKE_LLAMA_TOKEN_INTERVAL_MS: "20" }));
    let chunks = 0;
    const streamEnded = new Promise<string>((resolveEnd) => {
      const req = request(
        `${h.url}/v1/chat/completions`,
        { method: "POST", headers: { "content-type": "application/json" } },
        (res) => {
          res.on("data", () => chunks++);
          res.on("end", () => resolveEnd("end"));
          res.on("error", () => resolveEnd("error"));
          res.on("close", () => resolveEnd("close"));
        },
      );
      req.on("error", () => resolveEnd("req-error"));
      req.end(JSON.stringify({ messages: [{ role: "user", content: "x" }], stream: true, max_tokens: 100000 }));
    });
    assert.ok(await waitFor(() => chunks >= 3, 5000));
    const t0 = Date.now();
    await runner.stop(h, { graceMs: 8000 });
    await streamEnded;
    assert.ok(Date.now() - t0 < 3000, `stop took ${Date.now() - t0} ms with an 8 s grace`);
    assert.ok(!running(h.pid));
  });

  test("an unexpected exit after ready is noticed at once and reported as unexpected", async () => {
    const runner = newRunner({ healthIntervalMs: 60_000 });
    const h = await runner.start(cfg());
    const exits: Extract<ServerEvent, { type: "exited" }>[] = [];
    runner.on((e) => e.type === "exited" && exits.push(e));
    process.kill(h.pid, "SIGKILL");
    assert.ok(await waitFor(() => exits.length === 1, 2000));
    assert.equal(exits[0]!.expected, false);
    assert.equal(exits[0]!.signal, "SIGKILL");
    assert.equal(runner.isRunning(h), false);
    assert.ok(runner.logs(h).length > 0, "logs of an exited server stay readable");
    // a stop after the fact is harmless
    await runner.stop(h);
  });

  test("the concurrent-server limit is enforced", async () => {
    const runner = newRunner({ maxServers: 2 });
    const a = await runner.start(cfg());
    const b = await runner.start(cfg());
    await assert.rejects(runner.start(cfg()), expectKind("too_many_servers"));
    await runner.stop(a);
    const c = await runner.start(cfg());
    assert.notEqual(c.port, b.port);
    await runner.stopAll();
    assert.deepEqual(runner.listRunning(), []);
  });

  test("concurrent starts get distinct ports", async () => {
    const runner = newRunner();
    const hs = await Promise.all([1, 2, 3, 4].map(() => runner.start(cfg())));
    assert.equal(new Set(hs.map((h) => h.port)).size, 4);
    await runner.stopAll();
  });

  test("the parent's SIGKILL during load leaves no child (parent-death signal)", async () => {
    const script = join(dir, "parent.mts");
    writeFileSync(
      script,
      `import { LlamaServerRunner } from ${JSON.stringify(resolve("src/runner/llama-server-runner.ts"))};
const r = new LlamaServerRunner({ binaryPath: ${JSON.stringify(FAKE)}, pidsDir: ${JSON.stringify(join(dir, "pids2"))}, basePort: 22400 });
r.on((e) => { if (e.type === "spawned") console.log("PID " + e.handle.pid); });
await r.start({ modelPath: ${JSON.stringify(model)}, env: { FAKE_LLAMA_LOAD_MS: "30000" } });
`,
    );
    const parent = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    parent.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      assert.ok(await waitFor(() => /PID \d+/.test(out), 15_000), out);
      const pid = Number(/PID (\d+)/.exec(out)![1]);
      assert.ok(running(pid));
      parent.kill("SIGKILL");
      assert.ok(await waitFor(() => !running(pid), 2000), "child outlived its parent during load");
    } finally {
      parent.kill("SIGKILL");
    }
  });

  test("orphan sweep kills only our servers whose owner is gone, and cleans stale files", async () => {
    const pids = join(dir, "pids-sweep");
    // an orphan: a fake server whose owner (a dead pid) is gone
    const orphan = spawn(FAKE, ["-m", model, "--port", "22501"], { detached: true, stdio: "ignore" });
    // a stranger that happens to have a pid in a stale file: must not be killed
    const stranger = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    try {
      const deadOwner = 2 ** 22 - 3;
      await writePidfile(pids, "orphan", {
        pid: orphan.pid!,
        port: 22501,
        binaryPath: FAKE,
        model: "fake-a",
        modelPath: model,
        startedAt: Date.now(),
        ownerPid: deadOwner,
      });
      await writePidfile(pids, "stranger", {
        pid: stranger.pid!,
        port: 22502,
        binaryPath: FAKE,
        model: "x",
        modelPath: model,
        startedAt: Date.now(),
        ownerPid: deadOwner,
      });
      // owned by a live gglib (this test process): left alone
      await writePidfile(pids, "mine", {
        pid: stranger.pid!,
        port: 22503,
        binaryPath: FAKE,
        model: "y",
        modelPath: model,
        startedAt: Date.now(),
        ownerPid: process.pid,
      });
      writeFileSync(join(pids, "garbage.json"), "{not json");
      assert.ok(await waitFor(() => running(orphan.pid!), 2000));
      const res = await sweepOrphans(pids, { waitMs: 1000 });
      assert.equal(res.killed.length, 1);
      assert.equal(res.killed[0]!.pid, orphan.pid);
      assert.ok(await waitFor(() => !running(orphan.pid!), 2000));
      assert.ok(running(stranger.pid!), "an unrelated process was killed");
      assert.deepEqual(readdirSync(pids).sort(), ["mine.json"]);
    } finally {
      killQuietly(orphan.pid);
      killQuietly(stranger.pid);
    }
  });
});
