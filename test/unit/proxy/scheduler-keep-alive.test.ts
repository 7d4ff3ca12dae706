// The scheduler's per-request TTL (Ollama's keep_alive): a request's keepAliveMs replaces the model's TTL until
// the model stops; 0 stops it as soon as it is idle, < 0 never by TTL; pinned models ignore it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Scheduler, type ModelSpec, type SchedulerAction } from "../../../src/proxy/scheduler.js";

const spec = (name: string, extra: Partial<ModelSpec> = {}): ModelSpec => ({
  name,
  estimateBytes: 1,
  fingerprint: "v1",
  ...extra,
});

function rig(specs: ModelSpec[], ttlMs = 0) {
  const s = new Scheduler(specs, { ttlMs });
  let now = 1_000;
  return {
    s,
    at: () => now,
    advance(ms: number): SchedulerAction[] {
      now += ms;
      return s.handle({ type: "tick", now });
    },
    req(id: string, model: string, keepAliveMs?: number): SchedulerAction[] {
      return s.handle({ type: "request", id, model, now, ...(keepAliveMs !== undefined ? { keepAliveMs } : {}) });
    },
    done(id: string): SchedulerAction[] {
      return s.handle({ type: "requestDone", id, now });
    },
    loaded(model: string): SchedulerAction[] {
      return s.handle({ type: "loadSucceeded", model, instance: s.model(model)!.instance, now });
    },
    stopped(model: string): SchedulerAction[] {
      return s.handle({ type: "stopped", model, instance: s.model(model)!.instance, now });
    },
  };
}

const stops = (acts: SchedulerAction[]) =>
  acts.filter((a) => a.type === "stop").map((a) => (a.type === "stop" ? `${a.model}:${a.reason}` : ""));

describe("scheduler: per-request TTL (keep_alive)", () => {
  test("keep-alive 0: the model stops when its last request is done, not before", () => {
    const r = rig([spec("a")]);
    r.req("a1", "a", 0);
    r.loaded("a");
    r.req("a2", "a"); // a second request in flight, without keep-alive
    assert.deepEqual(stops(r.done("a1")), [], "a2 still runs");
    assert.deepEqual(stops(r.done("a2")), ["a:ttl"]);
    assert.equal(r.s.model("a")!.status, "stopping");
  });

  test("a duration replaces the model's TTL, counted from the end of the request", () => {
    const r = rig([spec("a")], 60_000);
    r.req("a1", "a", 5_000);
    r.loaded("a");
    r.done("a1");
    assert.equal(r.s.ttlOf("a"), 5_000);
    assert.equal(r.s.nextWakeAt(), r.at() + 5_000);
    assert.deepEqual(stops(r.advance(4_999)), []);
    assert.deepEqual(stops(r.advance(1)), ["a:ttl"]);
  });

  test("negative keeps it loaded past the global TTL; the next start forgets it", () => {
    const r = rig([spec("a")], 1_000);
    r.req("a1", "a", -1);
    r.loaded("a");
    r.done("a1");
    assert.equal(r.s.ttlOf("a"), 0);
    assert.deepEqual(stops(r.advance(3_600_000)), []);
    r.s.handle({ type: "unload", model: "a", now: r.at() });
    r.stopped("a");
    r.req("a2", "a");
    r.loaded("a");
    r.done("a2");
    assert.equal(r.s.ttlOf("a"), 1_000, "back to the configured TTL");
  });

  test("a request without keep-alive leaves the last one in force; a later one replaces it", () => {
    const r = rig([spec("a")]);
    r.req("a1", "a", 10_000);
    r.loaded("a");
    r.done("a1");
    r.req("a2", "a");
    r.done("a2");
    assert.equal(r.s.ttlOf("a"), 10_000);
    r.req("a3", "a", 0);
    assert.deepEqual(stops(r.done("a3")), ["a:ttl"]);
  });

  test("the keepAlive event (the load idiom) sets it on a ready model and counts as use", () => {
    const r = rig([spec("a")]);
    r.req("a1", "a");
    r.loaded("a");
    r.done("a1");
    r.advance(500);
    r.s.handle({ type: "keepAlive", model: "a", keepAliveMs: 2_000, now: r.at() });
    assert.equal(r.s.model("a")!.lastUsed, r.at());
    assert.deepEqual(stops(r.advance(1_999)), []);
    assert.deepEqual(stops(r.advance(1)), ["a:ttl"]);
  });

  test("pinned models ignore a request's keep-alive", () => {
    const r = rig([spec("p", { pinned: true })]);
    r.req("p1", "p", 0);
    r.loaded("p");
    assert.deepEqual(stops(r.done("p1")), []);
    assert.equal(r.s.stopsWhenIdle("p"), false);
  });

  test("keep-alive 0 on a queued request applies once it is dispatched and done", () => {
    const r = rig([spec("a")]);
    r.req("a1", "a", 0);
    assert.equal(r.s.model("a")!.status, "loading");
    assert.equal(r.s.model("a")!.keepAliveMs, undefined, "set on dispatch");
    r.loaded("a");
    assert.equal(r.s.model("a")!.keepAliveMs, 0);
    assert.deepEqual(stops(r.done("a1")), ["a:ttl"]);
  });
});
