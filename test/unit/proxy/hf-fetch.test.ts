// The first-use fetch of a config `hf:` model (src/proxy/hf-fetch.ts): the pure decision (fetch, share, refuse
// during the cooldown), the cooldowns, and the fetcher with a pull the test plays (no hub, no processes, no timers:
// the clock is the test's).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HttpError } from "../../../src/core/errors.js";
import { HfFetcher, hfFetchStep, hfRetryDelay } from "../../../src/proxy/hf-fetch.js";

void test("hfFetchStep: fetch when unknown, share a running one, refuse during the cooldown, then fetch again", () => {
  assert.deepEqual(hfFetchStep(undefined, 0), { action: "fetch" });
  assert.deepEqual(hfFetchStep({ running: true, done: false, failures: 0 }, 0), { action: "join" });
  assert.deepEqual(hfFetchStep({ running: false, done: true, failures: 0 }, 0), { action: "none" });
  const failed = { running: false, done: false, failures: 1, lastError: "HTTP 404", retryAt: 1_000 };
  assert.deepEqual(hfFetchStep(failed, 400), { action: "refuse", reason: "HTTP 404", retryAfterMs: 600 });
  assert.deepEqual(hfFetchStep(failed, 1_000), { action: "fetch" });
});

void test("hfRetryDelay: grows per failure, the last delay repeats", () => {
  assert.equal(hfRetryDelay(1), 30_000);
  assert.equal(hfRetryDelay(2), 120_000);
  assert.equal(hfRetryDelay(3), 600_000);
  assert.equal(hfRetryDelay(9), 600_000);
  assert.equal(hfRetryDelay(2, [5]), 5);
});

void test("HfFetcher: one pull per reference for all its waiters, progress to each; a failure → 502, 503 until the cooldown ends", async () => {
  let now = 0;
  const pulls: { ref: string; progress: (v: number) => void; settle: (e?: Error) => void }[] = [];
  const fetched: string[] = [];
  const f = new HfFetcher({
    pull: (ref, _signal, progress) =>
      new Promise<void>((resolve, reject) => {
        pulls.push({ ref, progress, settle: (e) => (e ? reject(e) : resolve()) });
      }),
    fetched: async (ref) => {
      fetched.push(ref);
    },
    log: () => {},
    retryDelaysMs: [1_000, 5_000],
    now: () => now,
  });
  const seenA: number[] = [];
  const seenB: number[] = [];
  const a = f.fetch("hf:u/r:Q4_K_M", "m", (v) => seenA.push(v))!;
  pulls[0]!.progress(0.25);
  const b = f.fetch("hf:u/r:Q4_K_M", "m", (v) => seenB.push(v))!;
  pulls[0]!.progress(0.5);
  assert.equal(pulls.length, 1);
  assert.equal(pulls[0]!.ref, "u/r:Q4_K_M");
  pulls[0]!.settle();
  await Promise.all([a, b]);
  assert.deepEqual(seenA, [0.25, 0.5]);
  assert.deepEqual(seenB, [0.25, 0.5]); // a late waiter gets the progress so far at once
  assert.deepEqual(fetched, ["hf:u/r:Q4_K_M"]);
  // asked again once fetched: the catalog still lacks it (a tag naming no file of the repo), said so, not refetched
  assert.throws(
    () => f.fetch("hf:u/r:Q4_K_M", "m", () => {}),
    (e: unknown) => e instanceof HttpError && e.status === 502 && /cache still has no model/.test(e.message),
  );
  assert.equal(pulls.length, 1);

  // a failing reference
  const c = f.fetch("hf:u/gone", "g", () => {})!;
  pulls[1]!.settle(new Error("HTTP 404 Repository not found"));
  await assert.rejects(c, (e: unknown) => {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 502);
    assert.equal(e.retryAfterS, 1);
    assert.match(e.message, /fetching u\/gone from the Hugging Face hub failed: HTTP 404 Repository not found/);
    return true;
  });
  now = 500;
  assert.throws(
    () => f.fetch("hf:u/gone", "g", () => {}),
    (e: unknown) => e instanceof HttpError && e.status === 503 && /HTTP 404/.test(e.message),
  );
  assert.equal(pulls.length, 2);
  now = 1_000;
  const d = f.fetch("hf:u/gone", "g", () => {})!;
  assert.equal(pulls.length, 3);
  pulls[2]!.settle(new Error("HTTP 404"));
  await assert.rejects(d, (e: unknown) => e instanceof HttpError && e.retryAfterS === 5);
  f.close();
});
