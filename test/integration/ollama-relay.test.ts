/**
 * Ollama's requests ride the relay like the OpenAI ones (issue 25): each /api/chat, /api/generate and /api/embed
 * request, streamed or not, is an /api/activity entry with llama-server's prompt, cached and generated tokens, and
 * its usage reaches the context cache's cost rule (a conversation cheap to prefill again is not saved at a swap).
 * In-process proxy on the fake llama-server.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/proxy/index.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../support/fake-llama.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

async function rig(t: TestContext, opts: Partial<ProxyOptions> = {}): Promise<RunningProxy> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-ollama-relay-"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const a = writeFakeModel(dir, "a");
  const b = writeFakeModel(dir, "b");
  const configPath = join(dir, "gglib.yaml");
  // a also embeds (llama-server serves /v1/embeddings only with --embeddings)
  writeFileSync(
    configPath,
    `maxModels: 1\nmodels:\n  a:\n    path: ${a}\n    extraArgs: ["--embeddings"]\n  b:\n    path: ${b}\n`,
  );
  const runner = new LlamaServerRunner({
    binaryPath: FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    healthIntervalMs: 0,
    stopGraceMs: 2_000,
    env: fakeLlamaEnv({ loadMs: 20 }),
    basePort: 20_000 + Math.floor(Math.random() * 20_000),
  });
  const proxy = await startProxy({
    port: 0,
    memoryBudget: "64GiB",
    watchConfig: false,
    configPath,
    runner,
    contextCacheDir: join(dir, "kv-context"),
    ...opts,
  });
  t.after(() => proxy.close(2_000));
  return proxy;
}

async function post(p: RunningProxy, path: string, body: unknown): Promise<string> {
  const r = await fetch(`${p.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `${path}: ${text}`);
  return text;
}

interface Activity {
  model: string;
  method: string;
  path: string;
  status: number;
  promptTokens: number | null;
  completionTokens: number | null;
  cachedTokens: number | null;
  promptPerSecond: number | null;
}

async function activity(p: RunningProxy): Promise<Activity[]> {
  const j = (await (await fetch(`${p.url}/api/activity`)).json()) as { records: Activity[] };
  // oldest first
  return j.records
    .slice()
    .sort((x, y) => (x as unknown as { seq: number }).seq - (y as unknown as { seq: number }).seq);
}

const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
const turn1 = [{ role: "user", content: long }];
const turn2 = [...turn1, { role: "assistant", content: "ok" }, { role: "user", content: "and one more thing" }];

describe("Ollama requests through the relay", { timeout: 60_000 }, () => {
  test("/api/chat, /api/generate and /api/embed, streamed and not, are /api/activity entries with their tokens", async (t) => {
    const p = await rig(t);
    await post(p, "/api/chat", { model: "a", messages: turn1, stream: false });
    // the same conversation, one turn on: its prefix comes from the cache
    const streamed = await post(p, "/api/chat", { model: "a", messages: turn2, stream: true });
    assert.equal((JSON.parse(streamed.trim().split("\n").at(-1)!) as { done: boolean }).done, true);
    await post(p, "/api/generate", { model: "a", prompt: long, stream: false });
    await post(p, "/api/generate", { model: "a", prompt: long, stream: true });
    await post(p, "/api/embed", { model: "a", input: ["one", "two"] });
    const rows = await activity(p);
    assert.deepEqual(
      rows.map((r) => `${r.method} ${r.path} ${r.status} ${r.model}`),
      [
        "POST /api/chat 200 a",
        "POST /api/chat 200 a",
        "POST /api/generate 200 a",
        "POST /api/generate 200 a",
        "POST /api/embed 200 a",
      ],
    );
    for (const r of rows.slice(0, 4)) {
      assert.ok((r.promptTokens ?? 0) > 0, `${r.path}: prompt tokens ${r.promptTokens}`);
      assert.ok((r.completionTokens ?? 0) > 0, `${r.path}: generated tokens ${r.completionTokens}`);
      assert.equal(typeof r.cachedTokens, "number", `${r.path}: cached tokens`);
      assert.equal(typeof r.promptPerSecond, "number", `${r.path}: prompt speed`);
    }
    assert.equal(rows[0]!.cachedTokens, 0, "the first request found nothing cached");
    assert.ok(rows[1]!.cachedTokens! > 0, `the next turn reused the cache (cached ${rows[1]!.cachedTokens})`);
    assert.ok(rows[1]!.promptTokens! > rows[1]!.cachedTokens!, "prompt tokens count the cached ones too");
    assert.ok((rows[4]!.promptTokens ?? 0) > 0, `embed: prompt tokens ${rows[4]!.promptTokens}`);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    assert.match(metrics, /gglib_proxy_requests_total\{model="a",status="200"\} 5/);
  });

  test("Ollama's usage reaches the context cache's cost rule: a conversation cheap to prefill is not saved at a swap", async (t) => {
    const p = await rig(t);
    await post(p, "/api/chat", { model: "a", messages: [{ role: "user", content: "hi" }], stream: true });
    await post(p, "/api/generate", { model: "a", prompt: "hello", stream: false });
    // b takes a's room: a is stopped, and its context cache decides what to save
    await post(p, "/api/chat", { model: "b", messages: [{ role: "user", content: "hi" }], stream: false });
    const st = (await (await fetch(`${p.url}/api/status`)).json()) as {
      models: { name: string; context?: { lastSave?: { cheap?: boolean; slots: number }; savedSlots: number } }[];
    };
    const ctx = st.models.find((m) => m.name === "a")?.context;
    assert.equal(
      ctx?.lastSave?.cheap,
      true,
      `every request's usage was seen, none worth saving: ${JSON.stringify(ctx)}`,
    );
    assert.equal(ctx.savedSlots, 0);
  });
});
