import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { planSave, skipWholeSave, type SkipInput } from "../../../../src/proxy/context/save-plan.js";
import type { Manifest } from "../../../../src/proxy/context/store.js";

/** A model that prefills 1000 tokens/s, and saves + restores at 2 ms fixed, 0.01 ms per token: 100 tokens take
 * 100 ms to prefill and 2 × (2 + 1) = 6 ms to keep; 5 tokens take 5 ms to prefill and 4.1 ms to keep. */
const costs = { promptTokensPerS: 1000, actionFixedMs: 2, actionMsPerToken: 0.01 };
/** Too fast to prefill for any slot to be worth keeping. */
const fast = { promptTokensPerS: 1e9, actionFixedMs: 2 };

const usage = (tokens: Record<number, number>, used = Object.keys(tokens).map(Number)) => ({
  used: new Set(used),
  tokens: new Map(Object.entries(tokens).map(([k, v]) => [Number(k), v])),
});

const manifest = (key: string, slots: number[]): Manifest => ({
  version: 1,
  model: "m",
  modelPath: "/m.gguf",
  key,
  identity: {} as Manifest["identity"],
  slots: Object.fromEntries(
    slots.map((id) => [
      String(id),
      { file: `slot-${id}.bin`, tokens: 10, bytes: 1, sha256: "x", savedAt: 0, lastUsedAt: 0 },
    ]),
  ),
});

describe("the save plan before a stop (save-plan.ts)", () => {
  test("planSave: used slots worth keeping are saved, the others dropped; unused slots are left alone", () => {
    assert.deepEqual(planSave({ count: 4, usage: usage({ 0: 100, 2: 0, 3: 1 }), costs, saveAll: false }), [
      { id: 0, action: "save" },
      { id: 2, action: "save" }, // 0 tokens known: the save itself tells (it empties the slot's entry)
      { id: 3, action: "drop" }, // 1 token: prefilled again in 1 ms, kept in 4 ms
    ]);
  });

  test("planSave: without GET /slots every slot is saved; saveAll saves what is not worth it too", () => {
    assert.deepEqual(planSave({ count: 3, usage: undefined, costs: fast, saveAll: false }), [
      { id: 0, action: "save" },
      { id: 1, action: "save" },
      { id: 2, action: "save" },
    ]);
    assert.deepEqual(planSave({ count: 2, usage: usage({ 0: 5, 1: 5 }), costs: fast, saveAll: false }), [
      { id: 0, action: "drop" },
      { id: 1, action: "drop" },
    ]);
    assert.deepEqual(planSave({ count: 2, usage: usage({ 0: 5, 1: 5 }), costs: fast, saveAll: true }), [
      { id: 0, action: "save" },
      { id: 1, action: "save" },
    ]);
    assert.deepEqual(planSave({ count: 2, usage: usage({}, [1]), costs: fast, saveAll: false }), [
      { id: 1, action: "save" },
    ]);
  });

  test("planSave: an unmeasured model keeps every used slot (worth.ts)", () => {
    assert.deepEqual(planSave({ count: 1, usage: usage({ 0: 3 }), costs: {}, saveAll: false }), [
      { id: 0, action: "save" },
    ]);
  });

  const skip = (more: Partial<SkipInput>): boolean =>
    skipWholeSave({
      saveAll: false,
      served: 2,
      seen: { requests: 2, maxTokens: 5 },
      saved: undefined,
      key: "k",
      costs: fast,
      ...more,
    });

  test("skipWholeSave: only when every request was seen, none worth keeping, and nothing saved to replace", () => {
    assert.equal(skip({}), true);
    assert.equal(skip({ served: 0, seen: { requests: 0, maxTokens: 0 } }), true, "a process that served nothing");
    assert.equal(skip({ saved: manifest("old-key", [0]) }), true, "what is saved is another identity's");
    assert.equal(skip({ saved: manifest("k", []) }), true);
    assert.equal(skip({ saved: manifest("k", [0]) }), false, "a saved slot may need dropping");
    assert.equal(skip({ served: 3 }), false, "a request whose usage was not seen");
    assert.equal(skip({ served: undefined }), false);
    assert.equal(skip({ saveAll: true }), false);
    assert.equal(skip({ costs, seen: { requests: 2, maxTokens: 100 } }), false, "one request was worth keeping");
  });
});
