// The proxy on the REAL llama-server with two tiny models and --max-models 1: alternating streaming and
// non-streaming requests through the `openai` client all succeed, and each answer comes from the model asked for.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg, running } from "../support/procs.js";

let dir: string;
let proxy: RunningProxy;
const spawned: string[] = [];

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-proxy-"));
  const models = join(dir, "models");
  mkdirSync(models);
  await writeTinyModel(models, { name: "tiny-a", kind: "chat" });
  await writeTinyModel(models, { name: "tiny-b", kind: "chat", seed: 5 });
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 19700 + Math.floor(Math.random() * 200),
  });
  runner.on((e) => {
    if (e.type === "spawned") spawned.push(e.handle.model);
  });
  proxy = await startProxy({ modelsDir: models, maxModels: 1, port: 0, memoryBudget: "8GiB", runner });
});

after(async () => {
  await proxy?.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("proxy on the real llama-server", { timeout: 180_000 }, () => {
  test("--max-models 1: alternating streaming / non-streaming requests via the openai client all come from the model asked for", async () => {
    const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
    const order = ["tiny-a", "tiny-b", "tiny-a", "tiny-b", "tiny-b", "tiny-a"];
    for (const [i, model] of order.entries()) {
      if (i % 2 === 0) {
        const stream = await client.chat.completions.create({
          model,
          messages: [{ role: "user", content: "Hello" }],
          max_tokens: 8,
          stream: true,
          temperature: 0,
        });
        let text = "";
        const models = new Set<string>();
        for await (const chunk of stream) {
          models.add(chunk.model);
          text += chunk.choices[0]?.delta?.content ?? "";
        }
        assert.deepEqual([...models], [model], `stream ${i} answered by ${[...models].join(",")}`);
        assert.ok(text.length > 0, `stream ${i} produced text`);
      } else {
        const r = await client.chat.completions.create({
          model,
          messages: [{ role: "user", content: "Hello" }],
          max_tokens: 8,
          temperature: 0,
        });
        assert.equal(r.model, model, `request ${i}`);
        assert.ok((r.choices[0]?.message.content ?? "").length > 0);
      }
      const loaded = proxy.controller.status().filter((s) => s.state === "ready");
      assert.deepEqual(
        loaded.map((s) => s.name),
        [model],
        "exactly the model asked for is loaded",
      );
    }
    // each switch started the other model: a, b, a, b, (b stays), a
    assert.deepEqual(spawned, ["tiny-a", "tiny-b", "tiny-a", "tiny-b", "tiny-a"]);
    const models = await client.models.list();
    const ids = models.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ["tiny-a", "tiny-b"]);
  });

  test("concurrent first requests for an unloaded model start one llama-server; /metrics counts tokens without loading anything", async () => {
    const before = spawned.length;
    const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
    const res = await Promise.all(
      Array.from({ length: 6 }, () =>
        client.chat.completions.create({ model: "tiny-b", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
      ),
    );
    assert.ok(res.every((r) => r.model === "tiny-b"));
    assert.equal(spawned.length - before, 1);
    const pids = proxy.controller
      .status()
      .map((s) => s.pid)
      .filter((p): p is number => p !== undefined);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    assert.match(metrics, /gglib_proxy_generated_tokens_total\{model="tiny-b"\} \d+/);
    assert.match(metrics, /gglib_proxy_model_load_duration_seconds_count\{model="tiny-a",result="ok"\} \d+/);
    assert.equal(spawned.length - before, 1, "/metrics loaded nothing");
    assert.ok(pids.every((p) => running(p)));
  });
});

describe("gglib proxy command on the real llama-server (the issue's acceptance run)", { timeout: 180_000 }, () => {
  test("10 concurrent first requests for A → one llama-server; B stops A and answers; /v1/models states; /metrics loads nothing; SIGKILL leaves no llama-server", async (t) => {
    const bin = await ensureLlamaServer();
    const d = mkdtempSync(join(tmpdir(), "gglib-e2e-proxycli-"));
    t.after(() => {
      for (const pid of pidsWithArg(d)) killQuietly(pid);
      rmSync(d, { recursive: true, force: true });
    });
    await writeTinyModel(d, { name: "tiny-a", kind: "chat" });
    await writeTinyModel(d, { name: "tiny-b", kind: "chat", seed: 9 });
    const main = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
    const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));
    const child = spawn(tsx, [main, "proxy", "--models-dir", d, "--max-models", "1", "--port", "0", "--json"], {
      env: { ...process.env, GGLIB_LLAMA_SERVER: bin, GGLIB_DATA_DIR: join(d, "data") },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    t.after(() => killQuietly(child.pid));
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    const ok = await (async () => {
      for (let i = 0; i < 400 && !out.includes('"event":"ready"'); i++) await new Promise((r) => setTimeout(r, 50));
      return out.includes('"event":"ready"');
    })();
    assert.ok(ok, `proxy ready: ${out}`);
    const url = (JSON.parse(out.split("\n").find((l) => l.includes('"event":"ready"'))!) as { url: string }).url;
    const llamas = () => pidsWithArg(d).filter((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith(bin));
    const metrics0 = await fetch(`${url}/metrics`);
    assert.equal(metrics0.status, 200);
    await metrics0.text();
    assert.deepEqual(llamas(), [], "/metrics loaded nothing");
    const body = (model: string) =>
      JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 4 });
    const res = await Promise.all(
      Array.from({ length: 10 }, () =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: body("tiny-a"),
        }),
      ),
    );
    const answers = (await Promise.all(res.map((r) => r.json()))) as { model: string }[];
    assert.ok(answers.every((a) => a.model === "tiny-a"));
    const starts = out.split("\n").filter((l) => l.includes('"to":"loading"') && l.includes('"model":"tiny-a"'));
    assert.equal(starts.length, 1, "exactly one load of tiny-a");
    assert.equal(llamas().length, 1);
    const [pidA] = llamas();
    let list = (await (await fetch(`${url}/v1/models`)).json()) as {
      data: { id: string; status: { value: string } }[];
    };
    assert.deepEqual(
      list.data.map((m) => [m.id, m.status.value]),
      [
        ["tiny-a", "loaded"],
        ["tiny-b", "unloaded"],
      ],
    );
    const b = (await (
      await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body("tiny-b"),
      })
    ).json()) as { model: string };
    assert.equal(b.model, "tiny-b");
    assert.ok(!running(pidA!), "A was stopped");
    list = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string; status: { value: string } }[] };
    assert.deepEqual(
      list.data.map((m) => [m.id, m.status.value]),
      [
        ["tiny-a", "unloaded"],
        ["tiny-b", "loaded"],
      ],
    );
    const left = llamas();
    assert.equal(left.length, 1);
    process.kill(-child.pid!, "SIGKILL");
    await new Promise((r) => setTimeout(r, 2_000));
    assert.deepEqual(
      left.filter((p) => running(p)),
      [],
      "no llama-server 2 s after SIGKILL of the proxy",
    );
  });
});
