// Issue 22: the context cache on LFM2 (short-convolution layers + attention: a hybrid, llama.cpp's `lfm2`), on the
// REAL llama-server through the proxy with --max-models 1, the way proxy-context-archs.test.ts checks granitehybrid:
// a ~2,000-token prompt to A, a request to B (A is evicted and its slot saved), then the conversation plus one turn
// to A (its slot restored); llama-server's own timings.cache_n says what was reused. The rig's llama-server keeps
// context checkpoints in its slot files (our patch, src/llama/install/patches.ts), so the proxy lets the hybrid
// take part without a caveat, and a follow-up whose last answer differs from the generated tokens rolls the
// convolution state back to the checkpoint restored with the slot instead of prefilling everything again.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { writeArchModel } from "../support/archs/index.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

let dir: string;
let proxy: RunningProxy | undefined;

type Msg = { role: string; content: string };

/** About 2,000 tokens in the rig's byte-level vocabularies. */
const LONG = Array.from({ length: 125 }, (_, i) => `note ${i} on the plan`).join(", ");

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-context-lfm2-"));
  const models = join(dir, "models");
  mkdirSync(models);
  const a = await writeArchModel(models, { family: "lfm2", name: "lfm2" });
  const b = await writeTinyModel(models, { name: "tiny-b", kind: "chat", seed: 5 });
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, `maxModels: 1\nmodels:\n  a:\n    path: ${a}\n  b:\n    path: ${b}\n`);
  proxy = await startProxy({
    configPath,
    port: 0,
    memoryBudget: "8GiB",
    watchConfig: false,
    contextCacheDir: join(dir, "kv"),
    // tiny models prefill again faster than a save + restore: save anyway, this test is about the reuse
    contextCacheSaveAll: true,
    runner: new LlamaServerRunner({
      binaryPath: bin,
      pidsDir: join(dir, "pids"),
      basePort: 19900 + Math.floor(Math.random() * 200),
    }),
  });
});

after(async () => {
  await proxy?.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

async function chat(model: string, messages: Msg[], maxTokens = 4) {
  const r = await fetch(`${proxy!.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, max_tokens: maxTokens, temperature: 0 }),
    signal: AbortSignal.timeout(60_000),
  });
  assert.equal(r.status, 200, await r.clone().text());
  const j = (await r.json()) as {
    choices: { message: { content: string } }[];
    timings: { cache_n: number; prompt_n: number };
  };
  return { reply: j.choices[0]!.message.content, cacheN: j.timings.cache_n, promptN: j.timings.prompt_n };
}

interface ContextStatus {
  enabled: boolean;
  reason?: string;
  caveat?: string;
  savedTokens: number;
  lastRestore?: { tokens: number; checkpoints?: number };
}

async function contextOf(model: string): Promise<ContextStatus | undefined> {
  const st = (await (await fetch(`${proxy!.url}/api/status`)).json()) as {
    models: { name: string; context?: ContextStatus }[];
  };
  return st.models.find((m) => m.name === model)?.context;
}

void describe(
  "the context cache on lfm2 (short convolution + attention, real llama-server)",
  { timeout: 300_000 },
  () => {
    void test("takes part; A→B→A reuses every saved token, and ≥ 90 % when the last answer differs (checkpoint rollback)", async (t) => {
      const turn1: Msg[] = [{ role: "user", content: LONG }];
      // one token: the slot then holds exactly the rendered prompt, so the first follow-up extends every saved token
      const first = await chat("a", turn1, 1);
      const ctx = await contextOf("a");
      assert.equal(ctx?.enabled, true, JSON.stringify(ctx));
      assert.equal(ctx?.caveat, undefined, "no caveat with the slot-checkpoints patch");
      assert.ok(first.promptN >= 1500, `a long prompt (${first.promptN} tokens)`);

      await chat("b", [{ role: "user", content: "hello" }]);
      assert.ok(((await contextOf("a"))?.savedTokens ?? 0) >= first.promptN, "A was saved at the swap");
      const again = await chat("a", [
        ...turn1,
        { role: "assistant", content: first.reply },
        { role: "user", content: "and then?" },
      ]);
      t.diagnostic(`lfm2: old prompt ${first.promptN}, follow-up cache_n ${again.cacheN}, prompt_n ${again.promptN}`);
      assert.ok(again.cacheN >= 0.9 * first.promptN, `cache_n ${again.cacheN} of ${first.promptN}`);

      // a history whose last answer differs from the generated tokens: the convolution state rolls back to the
      // checkpoint saved with the slot
      await chat("b", [{ role: "user", content: "hello" }]);
      const dropped = await chat("a", [
        ...turn1,
        { role: "assistant", content: "ok" },
        { role: "user", content: "and then?" },
      ]);
      const restored = (await contextOf("a"))?.lastRestore;
      t.diagnostic(
        `lfm2, last answer differs: cache_n ${dropped.cacheN}, prompt_n ${dropped.promptN}, restore ${JSON.stringify(restored)}`,
      );
      assert.ok(dropped.cacheN >= 0.9 * first.promptN, `cache_n ${dropped.cacheN} of ${first.promptN}`);
    });
  },
);
