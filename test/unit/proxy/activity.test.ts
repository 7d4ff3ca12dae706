import { test } from "node:test";
import assert from "node:assert/strict";
import { ActivityLog } from "../../../src/proxy/activity.js";

const rec = (a: ActivityLog, model: string, status = 200) =>
  a.record(model, "POST", "/v1/chat/completions", status, performance.now() - 5, 0.002, {
    promptTokens: 10,
    completionTokens: 3,
    cachedTokens: 7,
    predictedPerSecond: 55.5,
  });

test("a bounded ring: the newest `capacity` records, oldest first, with seq numbers", () => {
  const a = new ActivityLog(3);
  for (const m of ["a", "b", "c", "d", "e"]) rec(a, m);
  assert.equal(a.size, 3);
  assert.equal(a.total, 5);
  assert.deepEqual(
    a.list().map((r) => [r.seq, r.model]),
    [
      [3, "c"],
      [4, "d"],
      [5, "e"],
    ],
  );
  const r = a.list()[0]!;
  assert.equal(r.ttfbMs, 2);
  assert.ok(r.durationMs >= 5);
  assert.equal(r.cachedTokens, 7);
  assert.equal(r.tokensPerSecond, 55.5);
  assert.ok(Math.abs(r.at - Date.now()) < 1000);
});

test("filters: since, model, limit; copies are not overwritten by later records", () => {
  const a = new ActivityLog(10);
  for (const m of ["a", "b", "a", "b", "a"]) rec(a, m);
  assert.deepEqual(
    a.list({ model: "a" }).map((r) => r.seq),
    [1, 3, 5],
  );
  assert.deepEqual(
    a.list({ since: 3 }).map((r) => r.seq),
    [4, 5],
  );
  assert.deepEqual(
    a.list({ limit: 2 }).map((r) => r.seq),
    [4, 5],
  );
  const kept = a.list();
  for (let i = 0; i < 10; i++) rec(a, "z", 500);
  assert.deepEqual(
    kept.map((r) => r.model),
    ["a", "b", "a", "b", "a"],
  );
});

test("no usage → nulls; listeners see each record; capacity must be a positive integer", () => {
  const a = new ActivityLog(2);
  const seen: string[] = [];
  const off = a.on((r) => seen.push(`${r.seq}:${r.status}`));
  a.record("m", "GET", "/props", 503, performance.now(), undefined, undefined);
  off();
  rec(a, "m");
  assert.deepEqual(seen, ["1:503"]);
  const r = a.list()[0]!;
  assert.equal(r.promptTokens, null);
  assert.equal(r.ttfbMs, null);
  assert.throws(() => new ActivityLog(0), RangeError);
});
