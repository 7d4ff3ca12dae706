// The context cache on the REAL llama-server with --max-models 1: a long prompt to A, a request to B (A is evicted
// and its KV cache saved), then the same conversation plus one turn to A: llama-server's own timings.cache_n covers
// the old prompt. The same after a restart of the proxy; a changed ctx discards the saved state.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

let dir: string;
let bin: string;
let configPath: string;
let paths: { a: string; b: string };
const open = new Set<RunningProxy>();

async function start(): Promise<RunningProxy> {
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 19300 + Math.floor(Math.random() * 300),
  });
  const p = await startProxy({
    configPath,
    port: 0,
    memoryBudget: "8GiB",
    watchConfig: false,
    contextCacheDir: join(dir, "kv-context"),
    // the tiny models prefill a conversation again faster than it is saved and restored, so the default policy
    // would not save it: this test is about the save and the restore on the real llama-server
    contextCacheSaveAll: true,
    runner,
  });
  open.add(p);
  return p;
}

async function close(p: RunningProxy): Promise<void> {
  open.delete(p);
  await p.close(5_000);
}

before(async () => {
  bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-context-"));
  mkdirSync(join(dir, "models"));
  paths = {
    a: await writeTinyModel(join(dir, "models"), { name: "tiny-a", kind: "chat" }),
    b: await writeTinyModel(join(dir, "models"), { name: "tiny-b", kind: "chat", seed: 5 }),
  };
  configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, `maxModels: 1\nmodels:\n  a:\n    path: ${paths.a}\n  b:\n    path: ${paths.b}\n`);
});

after(async () => {
  for (const p of open) await p.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

const LONG = Array.from({ length: 60 }, (_, i) => `note ${i} about the plan`).join(", ");

async function chat(p: RunningProxy, model: string, messages: { role: string; content: string }[]) {
  const r = await fetch(`${p.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, max_tokens: 4, temperature: 0 }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  const j = (await r.json()) as {
    choices: { message: { content: string } }[];
    timings: { cache_n: number; prompt_n: number };
  };
  return { reply: j.choices[0]!.message.content, cacheN: j.timings.cache_n, promptN: j.timings.prompt_n };
}

async function contextOf(p: RunningProxy, model: string) {
  const st = (await (await fetch(`${p.url}/api/status`)).json()) as {
    models: { name: string; context?: { savedTokens: number; lastDiscard?: { reason: string } } }[];
  };
  return st.models.find((m) => m.name === model)?.context;
}

describe("context cache on the real llama-server", { timeout: 240_000 }, () => {
  let turn2: { role: string; content: string }[] = [];
  let oldPrompt = 0;

  test("A → B → A with --max-models 1: the follow-up's cache_n covers the old prompt", async () => {
    const p = await start();
    const turn1 = [{ role: "user", content: LONG }];
    const first = await chat(p, "a", turn1);
    oldPrompt = first.promptN;
    assert.ok(oldPrompt > 500, `a long prompt (${oldPrompt} tokens)`);
    assert.equal(first.cacheN, 0);
    await chat(p, "b", [{ role: "user", content: "hello" }]);
    const saved = await contextOf(p, "a");
    assert.ok((saved?.savedTokens ?? 0) >= oldPrompt, `A was saved at the swap: ${JSON.stringify(saved)}`);
    turn2 = [...turn1, { role: "assistant", content: first.reply }, { role: "user", content: "and then?" }];
    const again = await chat(p, "a", turn2);
    assert.ok(again.cacheN >= oldPrompt - 1, `cache_n ${again.cacheN} covers the old prompt (${oldPrompt} tokens)`);
    assert.ok(again.promptN < 64, `only the new turn is evaluated (prompt_n ${again.promptN})`);
    await close(p);
  });

  test("the same after a restart of the proxy", async () => {
    assert.ok(oldPrompt > 0, "the first test ran");
    const p = await start();
    const again = await chat(p, "a", turn2);
    assert.ok(again.cacheN >= oldPrompt - 1, `after a restart: cache_n ${again.cacheN} (old prompt ${oldPrompt})`);
    await close(p);
  });

  test("a changed ctx discards the saved state instead of loading it", async () => {
    assert.ok(oldPrompt > 0, "the first test ran");
    writeFileSync(
      configPath,
      `maxModels: 1\nmodels:\n  a:\n    path: ${paths.a}\n    ctx: 4096\n  b:\n    path: ${paths.b}\n`,
    );
    const p = await start();
    const again = await chat(p, "a", turn2);
    assert.equal(again.cacheN, 0, "nothing was restored into a different context size");
    assert.match((await contextOf(p, "a"))?.lastDiscard?.reason ?? "", /ctx default → 4096/);
    await close(p);
  });
});
