// Issue 22: the context cache on the families people run, on the REAL llama-server through the proxy with
// --max-models 1. A ~2,000-token prompt to A, a request to B (A is evicted and its slot saved), then the
// conversation plus one turn to A (its slot restored): llama-server's own timings.cache_n says what was reused.
//   - gemma3 (sliding window 128): the rig's llama-server keeps context checkpoints in slot files (our patch), so
//     the window cache is restored and rolled back to a checkpoint: no --swa-full (its memory is not spent), with
//     any budget; a user's `swaFull: true` runs it with --swa-full, reused as well. (Without the patch the proxy
//     passes --swa-full when the budget allows, else skips the model: the pure rules' unit tests and the dashboard
//     test on the fake llama-server cover that.)
//   - gemma4 likewise (sliding-window and KV-sharing layers);
//   - granitehybrid (Mamba-2 + attention), lfm2 (short convolutions + attention) and qwen35 (Gated DeltaNet +
//     attention): the rig's llama-server carries our slot-checkpoints patch (src/llama/install/patches.ts), found
//     in the binary, so they take part with no caveat; a follow-up whose history renders every saved token again
//     reuses them all, and one whose last answer differs (qwen35's template drops the earlier <think>) rolls back
//     to the checkpoint llama.cpp made 4 tokens before the old prompt's end, restored from the slot file. Without
//     the patch that follow-up reused nothing.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { readModelMetadata } from "../../src/gguf/reader.js";
import { estimateMemory } from "../../src/models/estimator.js";
import { probeCapabilities } from "../../src/llama/capabilities.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { writeArchModel } from "../support/archs/index.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

let dir: string;
let bin: string;
let paths: { gemma: string; gemma4: string; granite: string; lfm2: string; qwen35: string; other: string };
const open = new Set<RunningProxy>();

async function start(config: string, memoryBudget: string | number): Promise<RunningProxy> {
  const configPath = join(dir, `gglib-${open.size}-${Date.now()}.yaml`);
  writeFileSync(configPath, config);
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 19700 + Math.floor(Math.random() * 200),
  });
  const p = await startProxy({
    configPath,
    port: 0,
    memoryBudget,
    watchConfig: false,
    contextCacheDir: join(dir, `kv-${Date.now()}`),
    // tiny models prefill again faster than a save + restore: save anyway, this test is about the reuse
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
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-context-archs-"));
  mkdirSync(join(dir, "models"));
  paths = {
    gemma: await writeArchModel(join(dir, "models"), { family: "gemma3", name: "g3" }),
    gemma4: await writeArchModel(join(dir, "models"), { family: "gemma4", name: "g4" }),
    granite: await writeArchModel(join(dir, "models"), { family: "granitehybrid", name: "gh" }),
    lfm2: await writeArchModel(join(dir, "models"), { family: "lfm2", name: "lf" }),
    qwen35: await writeArchModel(join(dir, "models"), { family: "qwen35", name: "q35" }),
    other: await writeTinyModel(join(dir, "models"), { name: "tiny-b", kind: "chat", seed: 5 }),
  };
});

after(async () => {
  for (const p of open) await p.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

/** About 2,000 tokens in the rig's byte-level vocabularies. */
const LONG = Array.from({ length: 125 }, (_, i) => `note ${i} on the plan`).join(", ");

type Msg = { role: string; content: string };

async function chat(p: RunningProxy, model: string, messages: Msg[], maxTokens = 4) {
  const r = await fetch(`${p.url}/v1/chat/completions`, {
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

interface ModelStatus {
  name: string;
  estimatedBytes: number;
  swaFull?: { on: boolean; extraBytes: number; reason: string; by: string };
  context?: {
    enabled: boolean;
    reason?: string;
    caveat?: string;
    savedTokens: number;
    lastRestore?: { tokens: number; checkpoints?: number };
  };
}

async function statusOf(p: RunningProxy, model: string): Promise<ModelStatus | undefined> {
  const st = (await (await fetch(`${p.url}/api/status`)).json()) as { models: ModelStatus[] };
  return st.models.find((m) => m.name === model);
}

const config = (a: string, settings = "") =>
  `maxModels: 1\nmodels:\n  a:\n    path: ${a}\n${settings ? `    ${settings}\n` : ""}  b:\n    path: ${paths.other}\n`;

void describe("the context cache on sliding-window and hybrid models (real llama-server)", { timeout: 300_000 }, () => {
  /**
   * A → B → A on model `path` (with `settings`, YAML lines under it): a ~2,000-token chat answered with `maxTokens`,
   * B loaded (A saved), then the chat plus one turn with the first answer as a client sends it back; the follow-up
   * must reuse ≥ 90 % of the old prompt. Returns the running proxy (the caller closes it) and what it saw.
   */
  async function roundTrip(
    t: TestContext,
    label: string,
    path: string,
    o: { settings?: string; budget?: string | number; maxTokens?: number } = {},
  ) {
    const p = await start(config(path, o.settings), o.budget ?? "8GiB");
    const turn1: Msg[] = [{ role: "user", content: LONG }];
    const first = await chat(p, "a", turn1, o.maxTokens);
    const st = await statusOf(p, "a");
    assert.equal(st?.context?.enabled, true, JSON.stringify(st?.context));
    assert.ok(first.promptN >= 1500, `a long prompt (${first.promptN} tokens)`);
    await chat(p, "b", [{ role: "user", content: "hello" }]);
    assert.ok(((await statusOf(p, "a"))?.context?.savedTokens ?? 0) >= first.promptN, "A was saved at the swap");
    const again = await chat(p, "a", [
      ...turn1,
      { role: "assistant", content: first.reply },
      { role: "user", content: "and then?" },
    ]);
    t.diagnostic(`${label}: old prompt ${first.promptN}, follow-up cache_n ${again.cacheN}, prompt_n ${again.promptN}`);
    assert.ok(again.cacheN >= 0.9 * first.promptN, `cache_n ${again.cacheN} of ${first.promptN}`);
    return { p, st, first, turn1 };
  }

  async function gemmaRoundTrip(t: TestContext, settings: string, budget: string | number) {
    const { p, st } = await roundTrip(t, `gemma3 ${settings || "(defaults)"}`, paths.gemma, { settings, budget });
    await close(p);
    return st;
  }

  void test("gemma3: the window cache is restored through the saved checkpoints, no --swa-full; reuses ≥ 90 %", async (t) => {
    const st = await gemmaRoundTrip(t, "", "8GiB");
    assert.equal(st?.swaFull?.on, false, JSON.stringify(st?.swaFull));
    assert.ok((st?.swaFull?.extraBytes ?? 0) > 0, "what it would cost is shown");
    assert.match(st?.swaFull?.reason ?? "", /keeps context checkpoints/);
  });

  void test("gemma4 (sliding-window and KV-sharing layers): restored through the saved checkpoints, reuses ≥ 90 %", async (t) => {
    const { p, st } = await roundTrip(t, "gemma4", paths.gemma4);
    assert.equal(st?.swaFull?.on, false, JSON.stringify(st?.swaFull));
    await close(p);
  });

  void test("gemma3 with swaFull: true (the user's choice): run with --swa-full, reuses ≥ 90 %", async (t) => {
    const st = await gemmaRoundTrip(t, "swaFull: true", "8GiB");
    assert.equal(st?.swaFull?.on, true, JSON.stringify(st?.swaFull));
    assert.equal(st?.swaFull?.by, "user");
  });

  void test("gemma3 with a budget too small for --swa-full: still restorable, through the checkpoints", async (t) => {
    const meta = await readModelMetadata(paths.gemma);
    const e = estimateMemory({ metadata: meta });
    // room for the model with its window cache, not for the full one
    const budget = Math.round(e.totalBytes + (e.swa?.fullExtraBytes ?? 0) / 2);
    const st = await gemmaRoundTrip(t, "", budget);
    assert.equal(st?.swaFull?.on, false);
  });

  void test("the rig's llama-server keeps context checkpoints in its slot files (our patch, found in the binary)", async () => {
    const caps = await probeCapabilities(bin, { cacheFile: null });
    assert.equal(caps.slotCheckpoints, true);
  });

  for (const [family, label] of [
    ["granite", "granitehybrid"],
    ["lfm2", "lfm2"],
  ] as const)
    void test(`${label}: takes part; a follow-up extending every saved token reuses them all, one that drops the answer rolls back`, async (t) => {
      // one token: the slot then holds exactly the rendered prompt, so the follow-up extends every saved token
      // whatever the random weights generate (a longer reply of byte tokens may not tokenize back the same way,
      // and a recurrent state cannot roll back over the difference without a checkpoint)
      const { p, st, first, turn1 } = await roundTrip(t, label, paths[family], { maxTokens: 1 });
      assert.equal(st?.context?.caveat, undefined, "no caveat with the slot-checkpoints patch");
      // a history whose last answer differs from the tokens generated: the recurrent (Mamba-2 / convolution)
      // state rolls back to the checkpoint saved with the slot (before the patch: cache_n 0)
      await chat(p, "b", [{ role: "user", content: "hello" }]);
      const dropped = await chat(p, "a", [
        ...turn1,
        { role: "assistant", content: "ok" },
        { role: "user", content: "and then?" },
      ]);
      t.diagnostic(`${label}, generated tail dropped: cache_n ${dropped.cacheN}, prompt_n ${dropped.promptN}`);
      assert.ok(dropped.cacheN >= 0.9 * first.promptN, `cache_n ${dropped.cacheN} of ${first.promptN}`);
      await close(p);
    });

  void test("qwen35: a chat follow-up whose template re-renders the thinking answer rolls back to a saved checkpoint", async (t) => {
    // the answer goes back as a client sends it: content only, the <think> part left out by the client and the
    // template, so the follow-up differs from the saved tokens right after the assistant turn's start
    const { p, st } = await roundTrip(t, "qwen35", paths.qwen35, { maxTokens: 8 });
    assert.equal(st?.context?.caveat, undefined);
    const restored = (await statusOf(p, "a"))?.context?.lastRestore;
    assert.ok((restored?.checkpoints ?? 0) >= 1, `checkpoints came back with the slot: ${JSON.stringify(restored)}`);
    await close(p);
  });
});
