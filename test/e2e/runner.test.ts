// The runtime core against the REAL llama-server with tiny generated models.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:net";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { GglibError } from "../../src/core/errors.js";
import type { ServerEvent } from "../../src/core/events.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel, writeTruncatedGguf } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg, running, waitFor } from "../support/procs.js";

let bin: string;
let dir: string;
let dataDir: string;
let tinyA: string;
let think: string;
const runners: LlamaServerRunner[] = [];

function newRunner(opts: ConstructorParameters<typeof LlamaServerRunner>[0] = {}): LlamaServerRunner {
  const r = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dataDir, "pids"),
    basePort: 19100 + Math.floor(Math.random() * 500),
    ...opts,
  });
  runners.push(r);
  return r;
}

before(async () => {
  bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-runner-"));
  dataDir = join(dir, "data");
  tinyA = await writeTinyModel(dir, { name: "tiny-a", kind: "chat" });
  think = await writeTinyModel(dir, { name: "tiny-think", kind: "think", seed: 7 });
});

after(async () => {
  for (const r of runners) await r.stopAll({ graceMs: 1000 }).catch(() => undefined);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("LlamaServerRunner on the real llama-server", () => {
  test("start → ready → chat (non-streaming and streaming, openai client) → stop", async () => {
    const runner = newRunner();
    const events: ServerEvent["type"][] = [];
    const progress: number[] = [];
    runner.on((e) => e.type !== "log" && e.type !== "progress" && events.push(e.type));
    const h = await runner.start(
      { modelPath: tinyA, contextSize: 1024, parallel: 1 },
      { onProgress: (p) => progress.push(p.value) },
    );
    assert.equal(h.model, "tiny-a");
    assert.ok(running(h.pid));
    assert.equal(readdirSync(join(dataDir, "pids")).length >= 1, true, "pidfile written");
    // the binary supports the child protocol: readiness and progress came from it
    assert.equal(progress.at(-1), 1);
    const client = new OpenAI({ baseURL: h.url + "/v1", apiKey: "none" });
    const r = await client.chat.completions.create({
      model: "tiny-a",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
      seed: 1,
    });
    assert.equal(r.model, "tiny-a", "llama-server reports our alias");
    assert.equal(typeof r.choices[0]!.message.content, "string");
    assert.ok(r.usage && r.usage.completion_tokens > 0);

    const stream = await client.chat.completions.create({
      model: "tiny-a",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 8,
      stream: true,
    });
    let chunks = 0;
    let text = "";
    for await (const c of stream) {
      chunks++;
      text += c.choices[0]?.delta?.content ?? "";
    }
    assert.ok(chunks >= 2);
    assert.ok(text.length > 0);

    await runner.stop(h);
    assert.ok(!running(h.pid), "process gone after stop");
    assert.ok(!runner.isRunning(h));
    assert.deepEqual(events.slice(0, 2), ["spawned", "ready"]);
    assert.ok(events.includes("stopping") && events.includes("exited"));
    assert.ok(await waitFor(() => readdirSync(join(dataDir, "pids")).length === 0, 2000), "pidfile removed");
  });

  test("the thinking model's reasoning_content comes apart from its answer", async () => {
    const runner = newRunner();
    const h = await runner.start({ modelPath: think, reasoningFormat: "deepseek", contextSize: 2048, parallel: 1 });
    try {
      const client = new OpenAI({ baseURL: h.url + "/v1", apiKey: "none" });
      // the tiny think model closes its think block after a dozen tokens or so, at random: over a few seeds
      // some answers have both parts
      let both = 0;
      for (let seed = 0; seed < 8; seed++) {
        const r = await client.chat.completions.create({
          model: h.model,
          messages: [{ role: "user", content: "Think" }],
          max_tokens: 64,
          seed,
        });
        const m = r.choices[0]!.message as { content: string | null; reasoning_content?: string };
        if ((m.reasoning_content ?? "").length > 0 && (m.content ?? "").length > 0) both++;
      }
      assert.ok(both >= 2, `answers with reasoning and content: ${both}/8`);
      const stream = await client.chat.completions.create({
        model: h.model,
        messages: [{ role: "user", content: "Think" }],
        max_tokens: 48,
        seed: 1,
        stream: true,
      });
      let reasoning = "";
      for await (const c of stream)
        reasoning += (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? "";
      assert.ok(reasoning.length > 0, "reasoning_content deltas arrived");
    } finally {
      await runner.stop(h);
    }
  });

  test("a truncated GGUF fails fast with llama-server's own reason and leaves nothing running", async (t) => {
    const runner = newRunner();
    const bad = await writeTruncatedGguf(tinyA, join(dir, "broken.gguf"), 1000);
    const t0 = Date.now();
    await assert.rejects(runner.start({ modelPath: bad }), (e: unknown) => {
      assert.ok(e instanceof GglibError);
      assert.equal(e.kind, "exited_during_load");
      assert.match(e.message, /broken\.gguf/);
      assert.match(e.message, /exit code 1/);
      const tail = e.details.logTail ?? [];
      assert.ok(tail.length > 0);
      // llama.cpp writes its log from a worker thread, and a process that exits at once can lose the last lines
      // (seen once under heavy load: no error line in the tail); the reason must be in the message whenever
      // llama-server's log has it
      if (tail.some((l) => /failed to read|gguf_init/.test(l))) assert.match(e.message, /failed to read|gguf_init/);
      else t.diagnostic(`llama-server's error line was not in its log: ${JSON.stringify(tail)}`);
      assert.match(e.details.hint ?? "", /truncated or corrupt/);
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000, "no waiting for a deadline");
    assert.deepEqual(runner.listRunning(), []);
    assert.deepEqual(pidsWithArg(join(dir, "broken.gguf")), []);
  });

  test("a missing model file is refused before spawning", async () => {
    const runner = newRunner();
    await assert.rejects(
      runner.start({ modelPath: join(dir, "nope.gguf") }),
      (e: unknown) => e instanceof GglibError && e.kind === "model_not_found" && /nope\.gguf/.test(e.message),
    );
  });

  test("a taken port is skipped; an explicitly requested taken port is a clear error", async () => {
    const blockers: Server[] = [];
    const block = (port: number) =>
      new Promise<void>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve());
        blockers.push(s);
      });
    const base = 19700 + Math.floor(Math.random() * 200);
    try {
      await block(base);
      const runner = newRunner({ basePort: base });
      const h = await runner.start({ modelPath: tinyA, contextSize: 512, parallel: 1 });
      assert.notEqual(h.port, base);
      assert.ok(h.port > base);
      await runner.stop(h);
      await assert.rejects(runner.start({ modelPath: tinyA, port: base }), (e: unknown) => {
        assert.ok(e instanceof GglibError && e.kind === "port_in_use", String(e));
        assert.match(e.message, new RegExp(`Port ${base}`));
        return true;
      });
      assert.deepEqual(runner.listRunning(), []);
    } finally {
      for (const s of blockers) s.close();
    }
  });

  test("stopping while a stream runs ends the stream promptly and the process exits", async () => {
    const runner = newRunner({ stopGraceMs: 5000 });
    const h = await runner.start({ modelPath: tinyA, contextSize: 8192, parallel: 1 });
    const client = new OpenAI({ baseURL: h.url + "/v1", apiKey: "none", maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: h.model,
      messages: [{ role: "user", content: "Go" }],
      max_tokens: 100000,
      stream: true,
    });
    let chunks = 0;
    let stopPromise: Promise<void> | undefined;
    let t0 = 0;
    let streamError: unknown;
    try {
      for await (const _c of stream) {
        chunks++;
        if (chunks === 3) {
          t0 = Date.now();
          stopPromise = runner.stop(h);
        }
      }
    } catch (e) {
      streamError = e; // the connection ends without the chunked terminator: the client reports it
    }
    const ended = Date.now() - t0;
    await stopPromise;
    assert.ok(chunks >= 3);
    assert.ok(ended < 4000, `stream ended ${ended} ms after stop (grace 5000 ms): not held until SIGKILL`);
    assert.ok(!running(h.pid));
    void streamError;
  });

  test("health monitor reports a SIGSTOPped (hung) server as unhealthy, and an exit at once", async () => {
    const runner = newRunner({ healthIntervalMs: 200 });
    const h = await runner.start({ modelPath: tinyA, contextSize: 512, parallel: 1 });
    const seen: string[] = [];
    let exitedAt = 0;
    runner.on((e) => {
      if (e.type === "health" && e.handle.id === h.id) seen.push(e.status.status);
      if (e.type === "exited" && e.handle.id === h.id) exitedAt = Date.now();
    });
    try {
      process.kill(h.pid, "SIGSTOP");
      // three failed checks in a row (2 s timeout each, 200 ms apart) with no progress: ~7 s
      assert.ok(await waitFor(() => seen.includes("unhealthy"), 15_000), `saw ${seen.join(",")}`);
      process.kill(h.pid, "SIGCONT");
      assert.ok(await waitFor(() => seen.at(-1) === "healthy", 8000), `saw ${seen.join(",")}`);
      const t = Date.now();
      process.kill(h.pid, "SIGKILL");
      assert.ok(await waitFor(() => exitedAt > 0, 2000));
      assert.ok(exitedAt - t < 1000, "exit noticed at once, not at the next poll");
      assert.equal(seen.at(-1), "exited");
      assert.ok(!runner.isRunning(h));
    } finally {
      killQuietly(h.pid);
    }
  });

  test("SIGKILL of the parent leaves no llama-server alive 2 s later (gglib serve)", async () => {
    const child = spawn(
      process.execPath,
      [
        "bin/gglib.js",
        "serve",
        tinyA,
        "--json",
        "--ctx",
        "512",
        "--base-port",
        String(19300 + Math.floor(Math.random() * 300)),
      ],
      {
        env: { ...process.env, GGLIB_LLAMA_SERVER: bin, GGLIB_DATA_DIR: dataDir },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      assert.ok(await waitFor(() => out.includes('"event":"ready"'), 60_000), "gglib serve became ready: " + out);
      const ready = JSON.parse(out.split("\n").find((l) => l.includes('"ready"'))!) as { pid: number; url: string };
      assert.ok(running(ready.pid));
      child.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 2000));
      assert.ok(!running(ready.pid), "llama-server survived its parent");
    } finally {
      child.kill("SIGKILL");
      for (const pid of pidsWithArg(tinyA)) killQuietly(pid);
    }
  });

  test("gglib serve: SIGTERM stops llama-server and exits 0; the URL answers chat before that", async () => {
    const port = 19050 + Math.floor(Math.random() * 40);
    const child = spawn(process.execPath, ["bin/gglib.js", "serve", tinyA, "--port", String(port), "--ctx", "512"], {
      env: { ...process.env, GGLIB_LLAMA_SERVER: bin, GGLIB_DATA_DIR: dataDir, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      assert.ok(await waitFor(() => out.includes(`http://127.0.0.1:${port}`), 60_000), out + err);
      assert.match(err, /loading tiny-a/);
      const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "none" });
      const r = await client.chat.completions.create({
        model: "tiny-a",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 4,
      });
      assert.equal(r.model, "tiny-a");
      const llamaPids = pidsWithArg(tinyA).filter((p) => p !== child.pid);
      assert.equal(llamaPids.length, 1);
      child.kill("SIGTERM");
      assert.equal(await exit, 0, err);
      assert.ok(!running(llamaPids[0]!));
      assert.match(err, /stopped/);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
