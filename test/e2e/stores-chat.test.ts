// A model from Ollama's store, served in place (no copy) by `gglib proxy` (in-process startProxy) on the REAL
// llama-server: the store written as Ollama writes it (manifest + sha256 blobs, params and template layers), the
// chat answered through the OpenAI route under Ollama's name and through Ollama's /api/chat by the official
// client, with llama-server loading the blob itself. The store is untouched afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ollama } from "ollama";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";
import { writeOllamaModel } from "../support/tool-stores.js";

function treeState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(`${p} ${statSync(p).size} ${statSync(p).mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

void test("chat with an Ollama-store model through the proxy on the real llama-server", async (t) => {
  const bin = await ensureLlamaServer();
  const dir = mkdtempSync(join(tmpdir(), "gglib-e2e-stores-"));
  const store = join(dir, "ollama");
  mkdirSync(join(dir, "src"));
  const gguf = await writeTinyModel(join(dir, "src"), { name: "tiny-a", kind: "chat" });
  writeOllamaModel(store, {
    model: "tiny",
    tag: "latest",
    gguf,
    params: { temperature: 0.2, stop: ["<|im_end|>"] },
    template: "{{ .Prompt }}",
  });
  rmSync(join(dir, "src"), { recursive: true }); // only the store's blob is left
  const before = treeState(store);
  const proxy = await startProxy({
    port: 0,
    memoryBudget: "8GiB",
    stores: { ollama: [store] },
    runner: new LlamaServerRunner({
      binaryPath: bin,
      pidsDir: join(dir, "pids"),
      basePort: 20400 + Math.floor(Math.random() * 300),
    }),
  });
  t.after(async () => {
    await proxy.close(2_000);
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  assert.deepEqual(
    proxy.report.models.map((m) => [m.name, m.source]),
    [["tiny", "ollama"]],
  );
  assert.match(proxy.report.models[0]!.path, /ollama\/blobs\/sha256-[0-9a-f]{64}$/);

  const r = await fetch(`${proxy.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny:latest", messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  const body = (await r.json()) as {
    choices: { message: { content: string } }[];
    usage: { completion_tokens: number };
  };
  assert.ok(body.usage.completion_tokens > 0, "llama-server generated from the blob");
  assert.equal(typeof body.choices[0]!.message.content, "string");

  const ollama = new Ollama({ host: proxy.url });
  const chat = await ollama.chat({
    model: "tiny:latest",
    messages: [{ role: "user", content: "hi" }],
    options: { num_predict: 4 },
  });
  assert.equal(chat.done, true);
  const tags = await ollama.list();
  assert.deepEqual(
    tags.models.map((m) => m.name),
    ["tiny:latest"],
  );
  await assert.rejects(ollama.delete({ model: "tiny" }), /belongs to Ollama/);
  assert.deepEqual(treeState(store), before, "the store is untouched");
});
