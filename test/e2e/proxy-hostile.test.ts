// Hostile bodies on the REAL llama-server: a valid JSON request nested 200,000 levels deep overflows llama-server's
// parser stack (SIGSEGV: every request on the model fails). Through the proxy it is a 400 in each API's shape,
// before it is forwarded: the model keeps running (the same pid) and answers the next request.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

let dir: string;
let proxy: RunningProxy;
let crashes = 0;

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-hostile-"));
  const models = join(dir, "models");
  mkdirSync(models);
  await writeTinyModel(models, { name: "tiny-a", kind: "chat" });
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 19500 + Math.floor(Math.random() * 200),
  });
  proxy = await startProxy({ modelsDir: models, port: 0, memoryBudget: "8GiB", runner, contextCache: 0 });
  proxy.controller.on((e) => {
    if (e.type === "crash") crashes++;
  });
});

after(async () => {
  await proxy?.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

const post = (path: string, body: string) =>
  fetch(`${proxy.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });

const ask = JSON.stringify({
  model: "tiny-a",
  messages: [{ role: "user", content: "Hello" }],
  max_tokens: 4,
  temperature: 0,
});

describe("hostile bodies on the real llama-server", { timeout: 180_000 }, () => {
  test("a body nested 200,000 deep is a 400 before llama-server sees it; the model stays up and answers", async () => {
    const first = await post("/v1/chat/completions", ask);
    assert.equal(first.status, 200, await first.clone().text());
    await first.arrayBuffer();
    const pid = proxy.controller.status().find((s) => s.name === "tiny-a")?.pid;
    assert.ok(pid, "tiny-a runs");

    const levels = 200_000;
    const deep = `{"model":"tiny-a","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"x":${"[".repeat(levels)}${"]".repeat(levels)}}`;
    for (const path of [
      "/v1/chat/completions",
      "/v1/completions",
      "/upstream/tiny-a/v1/chat/completions",
      "/tokenize",
    ]) {
      const r = await post(path, deep);
      const body = (await r.json()) as { error: { code: string } };
      assert.equal(r.status, 400, path);
      assert.equal(body.error.code, "json_too_deep", path);
    }
    const ollama = await post("/api/chat", deep);
    assert.equal(ollama.status, 400);
    assert.match(((await ollama.json()) as { error: string }).error, /128 levels/);

    const next = await post("/v1/chat/completions", ask);
    assert.equal(next.status, 200);
    const answer = (await next.json()) as { model: string; choices: { message: { content: string } }[] };
    assert.equal(answer.model, "tiny-a");
    assert.ok((answer.choices[0]?.message.content ?? "").length > 0);
    const after = proxy.controller.status().find((s) => s.name === "tiny-a");
    assert.equal(after?.pid, pid, "the same llama-server process");
    assert.equal(after?.state, "ready");
    assert.equal(crashes, 0);
  });
});
