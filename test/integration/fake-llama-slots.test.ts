/**
 * The fake llama-server's prompt cache and slot actions (POST /slots/{id}?action=save|restore|erase), checked
 * against what the real binary (80fb11a) answered (test/fixtures/llama-server/slot-actions.md), and its fault
 * knobs for save and restore.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeLlama, writeFakeModel, type FakeLlamaOptions, type FakeLlamaProcess } from "../support/fake-llama.js";

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "fake-slots-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function start(t: TestContext, opts: FakeLlamaOptions): Promise<FakeLlamaProcess> {
  const fake = await startFakeLlama(opts);
  t.after(() => fake.kill());
  return fake;
}

const words = (w: string, n: number) => Array.from({ length: n }, (_, i) => `${w}${i}`).join(" ");

async function chat(fake: FakeLlamaProcess, content: string) {
  const r = await fetch(`${fake.baseUrl}/v1/chat/completions`, {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: 2 }),
  });
  assert.equal(r.status, 200);
  return (await r.json()) as {
    timings: { cache_n: number; prompt_n: number };
    usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- an answer's fields differ per action and are checked field by field
type SlotAnswer = Record<string, any>;

async function action(fake: FakeLlamaProcess, slot: number | string, act: string, body?: unknown) {
  const r = await fetch(`${fake.baseUrl}/slots/${slot}?action=${act}`, {
    method: "POST",
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, connection: r.headers.get("connection"), json: (await r.json()) as SlotAnswer };
}

describe("fake llama-server: prompt cache and slot actions", () => {
  test("a repeated prompt prefix is reported as cache_n / cached_tokens; prompt_n is the rest", async (t) => {
    const fake = await start(t, { args: ["-np", "1"] });
    const first = await chat(fake, words("apple", 100));
    assert.equal(first.timings.cache_n, 0);
    assert.equal(first.timings.prompt_n, first.usage.prompt_tokens);
    const second = await chat(fake, words("apple", 100) + " and one more");
    assert.ok(second.timings.cache_n > 90, `cache_n ${second.timings.cache_n}`);
    assert.equal(second.timings.cache_n + second.timings.prompt_n, second.usage.prompt_tokens);
    assert.equal(second.usage.prompt_tokens_details.cached_tokens, second.timings.cache_n);
  });

  test("save, then restore into a new process: the next prompt reuses the restored tokens", async (t) => {
    const dir = tempDir(t);
    const model = writeFakeModel(tempDir(t), "kept");
    const a = await start(t, { model, args: ["-np", "1", "--slot-save-path", dir] });
    const prompt = words("berry", 120);
    await chat(a, prompt);
    const saved = await action(a, 0, "save", { filename: "s0.bin" });
    assert.equal(saved.status, 200);
    assert.deepEqual(Object.keys(saved.json), ["id_slot", "filename", "n_saved", "n_written", "timings"]);
    assert.equal(saved.json.id_slot, 0);
    assert.equal(saved.json.filename, "s0.bin");
    assert.ok(saved.json.n_saved > 120);
    assert.ok(saved.json.n_written > saved.json.n_saved, "a state file holds K and V per token");
    assert.equal(typeof saved.json.timings.save_ms, "number");
    await a.kill();

    const b = await start(t, { model, args: ["-np", "1", "--slot-save-path", dir] });
    const restored = await action(b, 0, "restore", { filename: "s0.bin" });
    assert.equal(restored.status, 200);
    assert.deepEqual(Object.keys(restored.json), ["id_slot", "filename", "n_restored", "n_read", "timings"]);
    assert.equal(restored.json.n_restored, saved.json.n_saved);
    assert.equal(restored.json.n_read, saved.json.n_written);
    const next = await chat(b, prompt + " and a follow-up");
    assert.ok(next.timings.cache_n > 120, `cache_n ${next.timings.cache_n}`);

    const erased = await action(b, 0, "erase");
    assert.equal(erased.status, 200);
    assert.deepEqual(Object.keys(erased.json), ["id_slot", "n_erased"]);
  });

  test("errors: the real statuses and messages", async (t) => {
    const dir = tempDir(t);
    const off = await start(t, {});
    const r501 = await action(off, 0, "save", { filename: "x.bin" });
    assert.equal(r501.status, 501);
    assert.match(r501.json.error.message, /--slot-save-path/);
    const fake = await start(t, { args: ["--slot-save-path", dir] });
    const cases: [string | number, string, unknown, number, RegExp][] = [
      ["abc", "save", { filename: "x.bin" }, 400, /^Invalid slot ID$/],
      [0, "frobnicate", { filename: "x.bin" }, 400, /^Invalid action$/],
      [0, "save", undefined, 500, /attempting to parse an empty input/],
      [0, "save", {}, 500, /key 'filename' not found/],
      [0, "save", { filename: "../x.bin" }, 400, /^Invalid filename$/],
      [0, "restore", { filename: "missing.bin" }, 400, /^Unable to restore slot: .*invalid slot save file$/],
    ];
    for (const [slot, act, body, status, re] of cases) {
      const r = await action(fake, slot, act, body);
      assert.equal(r.status, status, `${slot} ${act} ${JSON.stringify(body)}`);
      assert.equal(r.connection, "close", "errors close the connection");
      assert.match(r.json.error.message, re);
    }
    assert.deepEqual(readdirSync(dir), [], "nothing written by a refused action");
  });

  test("--cache-idle-slots (default) with a unified KV cache clears the other idle slots; --no-cache-idle-slots keeps them", async (t) => {
    for (const keep of [false, true]) {
      const dir = tempDir(t);
      const fake = await start(t, { args: ["--slot-save-path", dir, ...(keep ? ["--no-cache-idle-slots"] : [])] });
      await chat(fake, words("apple", 80));
      await chat(fake, words("berry", 80));
      const saved = [];
      for (let s = 0; s < 4; s++) saved.push((await action(fake, s, "save", { filename: `s${s}.bin` })).json.n_saved);
      const holding = saved.filter((n) => n > 0).length;
      assert.equal(holding, keep ? 2 : 1, `slots holding tokens: ${JSON.stringify(saved)}`);
    }
  });

  test("fault knobs: save fails / hangs, restore fails / hangs", async (t) => {
    const dir = tempDir(t);
    const failing = await start(t, { args: ["--slot-save-path", dir], knobs: { saveFail: true, restoreFail: true } });
    const s = await action(failing, 0, "save", { filename: "x.bin" });
    assert.equal(s.status, 500);
    assert.equal(s.json.error.message, "Unable to save slot");
    const r = await action(failing, 0, "restore", { filename: "x.bin" });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /^Unable to restore slot: /);
    const hanging = await start(t, { args: ["--slot-save-path", dir], knobs: { saveHang: true, restoreHang: true } });
    for (const act of ["save", "restore"]) {
      const t0 = Date.now();
      await assert.rejects(
        fetch(`${hanging.baseUrl}/slots/0?action=${act}`, {
          method: "POST",
          body: JSON.stringify({ filename: "x.bin" }),
          signal: AbortSignal.timeout(300),
        }),
        /abort|timeout/i,
      );
      assert.ok(Date.now() - t0 >= 250);
    }
    // the server still answers everything else
    assert.equal((await fetch(`${hanging.baseUrl}/health`)).status, 200);
  });
});
