/**
 * The context cache on the fake llama-server: a model's KV cache saved at a swap and restored at its next load
 * (and after a proxy restart), the flags the proxy passes, and every way a save or a restore can fail or hang: the
 * stop and the request always proceed.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/proxy/index.js";
import type { ProxyEvent } from "../../src/proxy/controller.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel, type FakeLlamaKnobs } from "../support/fake-llama.js";
import { pidsWithArg, killQuietly } from "../support/procs.js";

interface Rig {
  dir: string;
  cacheDir: string;
  configPath: string;
  paths: Record<string, string>;
  start(opts?: Partial<ProxyOptions>, knobs?: FakeLlamaKnobs): Promise<RunningProxy>;
}

function rig(t: TestContext, yaml?: (p: Record<string, string>) => string): Rig {
  const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-context-"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const paths = Object.fromEntries(["a", "b"].map((n) => [n, writeFakeModel(dir, n)]));
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(
    configPath,
    (yaml ?? ((p) => `maxModels: 1\nmodels:\n  a:\n    path: ${p.a}\n  b:\n    path: ${p.b}\n`))(paths),
  );
  const cacheDir = join(dir, "kv-context");
  return {
    dir,
    cacheDir,
    configPath,
    paths,
    async start(opts = {}, knobs = {}) {
      const runner = new LlamaServerRunner({
        binaryPath: FAKE_LLAMA_SERVER,
        pidsDir: join(dir, "pids"),
        healthIntervalMs: 0,
        stopGraceMs: 2_000,
        env: fakeLlamaEnv({ loadMs: 30, ...knobs }),
        basePort: 20_000 + Math.floor(Math.random() * 20_000),
      });
      const proxy = await startProxy({
        port: 0,
        memoryBudget: "64GiB",
        watchConfig: false,
        configPath,
        contextCacheDir: cacheDir,
        // these tests are about the save and the restore: every used slot is saved, however cheap to prefill
        // (the default policy, which skips those, has tests of its own below)
        contextCacheSaveAll: true,
        runner,
        ...opts,
      });
      t.after(() => proxy.close(2_000));
      return proxy;
    },
  };
}

const words = (w: string, n: number) => Array.from({ length: n }, (_, i) => `${w}${i}`).join(" ");
const LONG = words("context", 300);

interface ChatAnswer {
  status: number;
  cacheN: number;
  promptN: number;
}
async function chat(
  p: RunningProxy,
  model: string,
  messages: { role: string; content: string }[],
): Promise<ChatAnswer> {
  const r = await fetch(`${p.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, max_tokens: 4 }),
  });
  const j = (await r.json()) as { timings?: { cache_n: number; prompt_n: number } };
  return { status: r.status, cacheN: j.timings?.cache_n ?? -1, promptN: j.timings?.prompt_n ?? -1 };
}

interface ContextStatusJson {
  enabled: boolean;
  reason?: string;
  savedSlots: number;
  savedTokens: number;
  bytesOnDisk: number;
  lastSave?: { slots: number; tokens: number; failures: number; skipped?: number; cheap?: boolean };
  lastRestore?: { slots: number; tokens: number; reusedTokens?: number; verified?: boolean };
  lastDiscard?: { reason: string };
}
async function contextOf(p: RunningProxy, model: string): Promise<ContextStatusJson | undefined> {
  const st = (await (await fetch(`${p.url}/api/status`)).json()) as {
    models: { name: string; context?: ContextStatusJson }[];
  };
  return st.models.find((m) => m.name === model)?.context;
}

function events(p: RunningProxy): ProxyEvent[] {
  const out: ProxyEvent[] = [];
  p.controller.on((e) => out.push(e));
  return out;
}

const turn1 = [{ role: "user", content: LONG }];
const turn2 = [...turn1, { role: "assistant", content: "ok" }, { role: "user", content: "and one more thing" }];

describe("proxy context cache (fake llama-server)", { timeout: 60_000 }, () => {
  test("A → B → A: A's KV cache is saved at the swap and restored before its next request, which reuses it", async (t) => {
    const r = rig(t);
    const p = await r.start();
    const seen = events(p);
    const first = await chat(p, "a", turn1);
    assert.equal(first.status, 200);
    assert.equal(first.cacheN, 0);
    const oldPrompt = first.promptN;
    assert.equal((await chat(p, "b", [{ role: "user", content: "hi" }])).status, 200);
    const saved = await contextOf(p, "a");
    assert.equal(saved?.enabled, true);
    assert.equal(saved?.savedSlots, 1, "one slot held tokens");
    assert.ok(saved.savedTokens >= oldPrompt, `saved ${saved?.savedTokens} ≥ ${oldPrompt}`);
    assert.ok(saved.bytesOnDisk > 0);
    const again = await chat(p, "a", turn2);
    assert.equal(again.status, 200);
    assert.ok(again.cacheN >= oldPrompt - 1, `cache_n ${again.cacheN} covers the old prompt (${oldPrompt})`);
    const st = await contextOf(p, "a");
    assert.equal(st?.lastRestore?.verified, true);
    assert.equal(st?.lastRestore?.reusedTokens, again.cacheN);
    const actions = seen
      .filter((e) => e.type === "context" && e.model === "a")
      .map((e) => e.type === "context" && e.action);
    assert.deepEqual(actions, ["saved", "restored", "reused"]);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    assert.match(metrics, /gglib_proxy_context_saves_total\{model="a",result="ok"\} 1/);
    // the other three of the fake's four slots never ran a task: GET /slots says so and they are not asked to save
    assert.doesNotMatch(metrics, /gglib_proxy_context_saves_total\{model="a",result="empty"\}/);
    assert.match(metrics, /gglib_proxy_context_restores_total\{model="a",result="ok"\} 1/);
    assert.match(metrics, new RegExp(`gglib_proxy_context_reused_tokens_total\\{model="a"\\} ${again.cacheN}`));
    assert.match(metrics, /gglib_proxy_context_disk_bytes [1-9]/);
  });

  test("default policy: a short conversation on a fast model is not saved; one slow to prefill is", async (t) => {
    const r = rig(t);
    // no prefill delay: a few tokens are prefilled again in far less time than a save and a restore take
    const fast = await r.start({ contextCacheSaveAll: false });
    assert.equal((await chat(fast, "a", [{ role: "user", content: "hi" }])).status, 200);
    assert.equal((await chat(fast, "b", [{ role: "user", content: "hi" }])).status, 200);
    const st = await contextOf(fast, "a");
    // every request seen, none worth saving, nothing saved before: the slots are not even read
    assert.equal(st?.lastSave?.cheap, true, "nothing worth saving");
    assert.equal(st.lastSave.slots, 0);
    assert.equal(st.savedSlots, 0);
    const files = readdirSync(r.cacheDir, { recursive: true }).filter((f) => String(f).endsWith(".bin"));
    assert.deepEqual(files, [], "no slot file written");
    assert.match(await (await fetch(`${fast.url}/metrics`)).text(), /result="not_worth"/);
    await fast.close(2_000);

    // 1 ms per prompt token: ~300 tokens take ~0.3 s to prefill again, far more than a save and a restore
    const slow = await r.start({ contextCacheSaveAll: false }, { promptTokenMs: 1 });
    assert.equal((await chat(slow, "a", turn1)).status, 200);
    assert.equal((await chat(slow, "b", [{ role: "user", content: "hi" }])).status, 200);
    const kept = await contextOf(slow, "a");
    assert.equal(kept?.savedSlots, 1, "the conversation slow to prefill is saved");
    assert.equal(kept.lastSave?.skipped, undefined);
    const again = await chat(slow, "a", turn2);
    assert.ok(again.cacheN > 0, `and restored for its next turn (cache_n ${again.cacheN})`);
  });

  test("the saved state survives a restart of the proxy; a changed ctx discards it instead of loading it", async (t) => {
    const r = rig(t);
    const p1 = await r.start();
    const first = await chat(p1, "a", turn1);
    await p1.close(2_000); // shutdown saves too
    const p2 = await r.start();
    const again = await chat(p2, "a", turn2);
    assert.ok(again.cacheN >= first.promptN - 1, `after a restart: cache_n ${again.cacheN}`);
    await p2.close(2_000);
    writeFileSync(r.configPath, `maxModels: 1\nmodels:\n  a:\n    path: ${r.paths.a}\n    ctx: 8192\n`);
    const p3 = await r.start();
    const changed = await chat(p3, "a", turn2);
    assert.equal(changed.status, 200);
    assert.equal(changed.cacheN, 0, "nothing restored into a different context size");
    assert.match((await contextOf(p3, "a"))?.lastDiscard?.reason ?? "", /ctx default → 8192/);
  });

  test("the proxy passes --no-cache-idle-slots: two conversations both survive; a model's own --cache-idle-slots wins", async (t) => {
    const r = rig(
      t,
      (p) =>
        `maxModels: 1\nmodels:\n  a:\n    path: ${p.a}\n  b:\n    path: ${p.b}\n    extraArgs: ["--cache-idle-slots"]\n`,
    );
    const p = await r.start();
    for (const m of ["a", "b"]) {
      await chat(p, m, [{ role: "user", content: words("first", 120) }]);
      await chat(p, m, [{ role: "user", content: words("second", 120) }]);
    }
    await chat(p, "a", [{ role: "user", content: "hi" }]); // b is saved at this swap
    assert.equal(
      (await contextOf(p, "a"))?.savedSlots,
      2,
      "--no-cache-idle-slots: both of a's slots kept their tokens",
    );
    assert.equal((await contextOf(p, "b"))?.savedSlots, 1, "llama-server's default cleared b's other idle slot");
  });

  test("a failing save never fails the swap; a failing restore never fails the request", async (t) => {
    const r = rig(t);
    const p = await r.start({}, { saveFail: true, restoreFail: true });
    await chat(p, "a", turn1);
    assert.equal((await chat(p, "b", [{ role: "user", content: "hi" }])).status, 200);
    const st = await contextOf(p, "a");
    assert.ok((st?.lastSave?.failures ?? 0) > 0, "the failures are counted");
    assert.equal(st?.savedSlots, 0);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    assert.match(metrics, /gglib_proxy_context_saves_total\{model="a",result="failed"\} [1-9]/);
    // a restore that fails: write a state with a working fake, then restart with restores failing
    const good = await r.start({}, {});
    await chat(good, "a", turn1);
    await good.close(2_000);
    const failing = await r.start({}, { restoreFail: true });
    const seen = events(failing);
    const again = await chat(failing, "a", turn2);
    assert.equal(again.status, 200, "the request is served without the cache");
    assert.equal(again.cacheN, 0);
    assert.ok(seen.some((e) => e.type === "context" && e.action === "restore_failed"));
  });

  test("a hanging save or restore is cut at its deadline: the stop and the request go on", async (t) => {
    const r = rig(t);
    const p = await r.start({ contextSaveTimeoutMs: 400 }, { saveHang: true });
    await chat(p, "a", turn1);
    const t0 = Date.now();
    assert.equal((await chat(p, "b", [{ role: "user", content: "hi" }])).status, 200);
    assert.ok(Date.now() - t0 < 10_000, `the swap took ${Date.now() - t0} ms`);
    assert.equal((await contextOf(p, "a"))?.savedSlots, 0);
    await p.close(2_000);
    assert.deepEqual(
      readdirSync(r.cacheDir).flatMap((d) => readdirSync(join(r.cacheDir, d)).filter((f) => f.endsWith(".tmp"))),
      [],
      "no temp file left behind",
    );
    const good = await r.start();
    await chat(good, "a", turn1);
    await good.close(2_000);
    const hanging = await r.start({ contextRestoreTimeoutMs: 400 }, { restoreHang: true });
    const seen = events(hanging);
    const t1 = Date.now();
    const again = await chat(hanging, "a", turn2);
    assert.equal(again.status, 200);
    assert.ok(Date.now() - t1 < 10_000, `the request waited ${Date.now() - t1} ms`);
    // the restore never finished: llama-server may be wedged on it, so the request went to a fresh process
    const failed = seen.find((e) => e.type === "context" && e.action === "restore_failed");
    assert.match(failed?.type === "context" ? failed.detail : "", /did not finish .* llama-server restarted/);
    assert.match((await (await fetch(`${hanging.url}/api/logs/a`)).text()) ?? "", /restarted before its first request/);
    assert.equal((await contextOf(hanging, "a"))?.savedSlots, 0, "the file that wedged it is dropped");
  });

  test("slot actions on the public routes are refused (403, OpenAI's shape) and write nothing; GET /slots stays", async (t) => {
    const r = rig(t);
    const p = await r.start();
    await chat(p, "a", turn1);
    await chat(p, "b", [{ role: "user", content: "hi" }]); // a is saved
    const folder = readdirSync(r.cacheDir).find((d) => d.startsWith("a-"))!;
    const before = readdirSync(join(r.cacheDir, folder)).sort();
    const manifestBefore = readFileSync(join(r.cacheDir, folder, "state.json"), "utf8");
    const post = (path: string, body: unknown) =>
      fetch(`${p.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const attempts: [string, unknown][] = [
      ["/upstream/a/slots/0?action=save", { filename: "state.json" }],
      ["/upstream/a/slots/0?action=save", { filename: "planted.bin" }],
      ["/upstream/a/slots/0?action=restore", { filename: "slot-0.bin" }],
      ["/upstream/a/slots/0?action=erase", {}],
      ["/upstream/a//slots/0?action=save", { filename: "x.bin" }],
      ["/upstream/a/%73lots/0?action=save", { filename: "x.bin" }],
      ["/slots/0?action=save", { model: "a", filename: "state.json" }],
      ["/slots/1?action=save", { model: "b", filename: "slot-1.bin" }],
      ["//slots/0?action=save", { model: "a", filename: "x.bin" }],
      ["/sl%6Fts/0?action=save", { model: "a", filename: "x.bin" }],
    ];
    for (const [path, body] of attempts) {
      const res = await post(path, body);
      assert.equal(res.status, 403, path);
      const j = (await res.json()) as { error: { message: string; type: string; code: string } };
      assert.equal(j.error.code, "slot_actions_reserved", path);
      assert.match(j.error.message, /saves and restores each model's slots itself/);
    }
    assert.deepEqual(readdirSync(join(r.cacheDir, folder)).sort(), before, "no file written into the cache folder");
    assert.equal(readFileSync(join(r.cacheDir, folder, "state.json"), "utf8"), manifestBefore, "state.json intact");
    const list = await fetch(`${p.url}/slots?model=b`);
    assert.equal(list.status, 200, "the listing stays");
    assert.ok(Array.isArray(await list.json()));
  });

  test("a restore that is not reused (cache_n 0 on a longer prompt) twice turns the feature off for that model", async (t) => {
    const r = rig(t);
    const p = await r.start({}, { restoreUnused: true });
    const seen = events(p);
    for (let i = 0; i < 2; i++) {
      const t1 = [{ role: "user", content: `${i} ${LONG}` }];
      await chat(p, "a", t1);
      await chat(p, "b", [{ role: "user", content: "hi" }]);
      const again = await chat(p, "a", [
        ...t1,
        { role: "assistant", content: "ok" },
        { role: "user", content: "more" },
      ]);
      assert.equal(again.cacheN, 0);
      await chat(p, "b", [{ role: "user", content: "hi" }]);
    }
    const st = await contextOf(p, "a");
    assert.equal(st?.enabled, false);
    assert.match(st?.reason ?? "", /not reused twice/);
    assert.ok(seen.some((e) => e.type === "context" && e.action === "disabled"));
  });

  test("the disk budget removes the least recently used slot files first", async (t) => {
    const r = rig(t);
    // one long conversation's slot file is ~160 KB on the fake: the budget holds one, not two
    const p = await r.start({ contextCache: "250KiB" });
    await chat(p, "a", turn1);
    await chat(p, "b", [{ role: "user", content: words("other", 300) }]); // a is saved
    assert.equal((await contextOf(p, "a"))?.savedSlots, 1);
    await chat(p, "a", [{ role: "user", content: "hi" }]); // b is saved; a's older file goes
    assert.equal((await contextOf(p, "b"))?.savedSlots, 1);
    assert.equal((await contextOf(p, "a"))?.savedSlots, 0, "a's file was the least recently used");
    await chat(p, "b", [{ role: "user", content: "hi" }]); // a is saved again (a small conversation now)
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    assert.match(metrics, /gglib_proxy_context_evicted_files_total [1-9]/);
    assert.ok(p.controller.status().every((m) => ((m.context?.bytesOnDisk as number) ?? 0) <= 250 * 1024));
  });

  test("contextCache: 0 turns it off: no --slot-save-path, nothing on disk", async (t) => {
    const r = rig(t);
    const p = await r.start({ contextCache: 0 });
    assert.deepEqual(p.report.contextCache, { off: "turned off (contextCache: 0)" });
    await chat(p, "a", turn1);
    await chat(p, "b", [{ role: "user", content: "hi" }]);
    assert.equal(await contextOf(p, "a"), undefined);
    assert.deepEqual(readdirSync(r.dir).includes("kv-context") ? readdirSync(r.cacheDir) : [], []);
  });
});
