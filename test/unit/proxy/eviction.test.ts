import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fits, planRoom, type Occupant } from "../../../src/proxy/eviction.js";

const GB = 1024 ** 3;

interface M extends Occupant {
  bytes: number;
}

function m(
  name: string,
  status: string,
  o: { inFlight?: number; lastUsed?: number; pinned?: boolean; gb?: number } = {},
): M {
  return {
    spec: { name, pinned: o.pinned },
    status,
    inFlight: o.inFlight ?? 0,
    lastUsed: o.lastUsed ?? 0,
    bytes: (o.gb ?? 1) * GB,
  };
}
const need = (x: M) => x.bytes;
const names = (plan: ReturnType<typeof planRoom<M>>) =>
  plan.kind === "evict" ? plan.victims.map((v) => v.spec.name) : plan.kind;

describe("eviction policy", () => {
  test("fits: count and memory limits; a model larger than the budget fits alone", () => {
    const t = m("t", "unloaded", { gb: 8 });
    assert.equal(fits([t], t, { maxModels: 4, budgetBytes: 4 * GB }, need), true);
    assert.equal(fits([m("a", "ready"), t], t, { maxModels: 4, budgetBytes: 4 * GB }, need), false);
    assert.equal(
      fits([m("a", "ready"), m("b", "ready")], m("b", "ready"), { maxModels: 1, budgetBytes: Infinity }, need),
      false,
    );
  });

  test("idle before busy, then least recently used; pinned models are never chosen", () => {
    const t = m("t", "unloaded");
    const holding = [
      m("busy-old", "ready", { inFlight: 2, lastUsed: 1 }),
      m("idle-new", "ready", { lastUsed: 50 }),
      m("idle-old", "ready", { lastUsed: 10 }),
      m("pinned", "ready", { pinned: true }),
    ];
    const limits = { maxModels: 4, budgetBytes: Infinity };
    assert.deepEqual(names(planRoom(t, holding, limits, need)), ["idle-old"]);
    assert.deepEqual(names(planRoom(t, holding, { ...limits, maxModels: 2 }, need)), [
      "idle-old",
      "idle-new",
      "busy-old",
    ]);
  });

  test("models already freeing their room are waited for, not chosen again", () => {
    const t = m("t", "unloaded");
    assert.deepEqual(names(planRoom(t, [m("a", "stopping")], { maxModels: 1, budgetBytes: Infinity }, need)), []);
  });

  test("no room when even every evictable model gone would not do (pinned, loading, stuck hold it)", () => {
    const t = m("t", "unloaded");
    for (const holder of [m("p", "ready", { pinned: true }), m("l", "loading"), m("s", "stuck")]) {
      assert.equal(
        names(planRoom(t, [holder, m("r", "ready")], { maxModels: 1, budgetBytes: Infinity }, need)),
        "noRoom",
      );
    }
  });

  test("a model that fits now starts without evicting anything", () => {
    assert.equal(
      names(planRoom(m("t", "unloaded"), [m("a", "ready")], { maxModels: 2, budgetBytes: Infinity }, need)),
      "start",
    );
  });
});
