// A preset on the REAL llama-server: `chat_template_kwargs: {enable_thinking: false}` over the tiny think model
// (its template closes the think block when enable_thinking is false) removes the thinking, through the `openai`
// client, on the model's one process; the model itself still thinks.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

let dir: string;
let proxy: RunningProxy;
let spawns = 0;

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-presets-"));
  const models = join(dir, "models");
  mkdirSync(models);
  const path = await writeTinyModel(models, { name: "tiny-think", kind: "think" });
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(
    configPath,
    [
      "models:",
      `  tiny-think: {path: ${JSON.stringify(path)}, reasoningFormat: deepseek}`,
      "presets:",
      "  tiny-nothink: {model: tiny-think, set: {chat_template_kwargs: {enable_thinking: false}}}",
      "",
    ].join("\n"),
  );
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 20400 + Math.floor(Math.random() * 300),
  });
  runner.on((e) => {
    if (e.type === "spawned") spawns++;
  });
  proxy = await startProxy({ configPath, port: 0, memoryBudget: "8GiB", runner, watchConfig: false });
});

after(async () => {
  await proxy?.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

async function answer(model: string): Promise<{ reasoning: string; content: string }> {
  const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "none", maxRetries: 0 });
  const r = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Hello" }],
    max_tokens: 12,
    seed: 3,
    temperature: 0,
  });
  const msg = r.choices[0]!.message as { content: string | null; reasoning_content?: string };
  return { reasoning: msg.reasoning_content ?? "", content: msg.content ?? "" };
}

test("enable_thinking: false in a preset removes the thinking; the model itself thinks; one process", async () => {
  const thinking = await answer("tiny-think");
  assert.ok(thinking.reasoning.length > 0, `the model thinks: ${JSON.stringify(thinking)}`);
  const plain = await answer("tiny-nothink");
  assert.equal(plain.reasoning, "", JSON.stringify(plain));
  assert.ok(plain.content.length > 0);
  assert.equal(spawns, 1, "the preset runs on the model's process");
});
