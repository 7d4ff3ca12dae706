import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Scheduler,
  type ModelSpec,
  type SchedulerAction,
  type SchedulerOptions,
} from "../../../src/proxy/scheduler.js";
import { rejectionMessage } from "../../../src/proxy/http/rejections.js";

const GB = 1024 ** 3;

function spec(name: string, extra: Partial<ModelSpec> = {}): ModelSpec {
  return { name, estimateBytes: 1 * GB, fingerprint: "v1", ...extra };
}

/** A scheduler plus a log of actions, with helpers that feed events. */
function rig(specs: ModelSpec[], options: SchedulerOptions = {}) {
  const s = new Scheduler(specs, options);
  let now = 1_000;
  const log: SchedulerAction[] = [];
  const run = (acts: SchedulerAction[]) => {
    log.push(...acts);
    return acts;
  };
  const r = {
    s,
    log,
    get now() {
      return now;
    },
    advance(ms: number) {
      now += ms;
      return run(s.handle({ type: "tick", now }));
    },
    req(id: string, model: string, extra: { kind?: "request" | "load"; activity?: boolean } = {}) {
      return run(s.handle({ type: "request", id, model, now, ...extra }));
    },
    done(id: string) {
      return run(s.handle({ type: "requestDone", id, now }));
    },
    cancel(id: string) {
      return run(s.handle({ type: "cancel", id, now }));
    },
    loaded(model: string) {
      return run(s.handle({ type: "loadSucceeded", model, instance: s.model(model)!.instance, now }));
    },
    failed(model: string, reason = "boom") {
      return run(s.handle({ type: "loadFailed", model, instance: s.model(model)!.instance, reason, now }));
    },
    stopped(model: string) {
      return run(s.handle({ type: "stopped", model, instance: s.model(model)!.instance, now }));
    },
    crashed(model: string, reason = "signal SIGSEGV") {
      return run(s.handle({ type: "crashed", model, instance: s.model(model)!.instance, reason, now }));
    },
    status(model: string) {
      return s.model(model)?.status;
    },
  };
  return r;
}

const of = <T extends SchedulerAction["type"]>(acts: SchedulerAction[], type: T) =>
  acts.filter((a): a is Extract<SchedulerAction, { type: T }> => a.type === type);

describe("scheduler: single flight and fast path", () => {
  test("20 concurrent first requests start the model once and all join that load", () => {
    const r = rig([spec("a")]);
    const acts: SchedulerAction[] = [];
    for (let i = 0; i < 20; i++) acts.push(...r.req(`r${i}`, "a"));
    assert.equal(of(acts, "start").length, 1);
    assert.equal(of(acts, "dispatch").length, 0);
    const after = r.loaded("a");
    assert.deepEqual(
      of(after, "dispatch").map((d) => d.id),
      Array.from({ length: 20 }, (_, i) => `r${i}`),
    );
    assert.equal(r.s.model("a")!.inFlight, 20);
  });

  test("a request for a resident model is served at once while another model loads", () => {
    const s2 = rig([spec("x"), spec("y")], { maxModels: 2 });
    s2.req("x1", "x");
    s2.loaded("x");
    s2.done("x1");
    s2.req("y1", "y");
    assert.equal(s2.status("y"), "loading");
    const fast = s2.req("x2", "x");
    assert.deepEqual(
      of(fast, "dispatch").map((d) => d.id),
      ["x2"],
    );
  });

  test("a resident model's requests are not held behind another model's queued eviction", () => {
    const r = rig([spec("a"), spec("b"), spec("c")], { maxModels: 2 });
    r.req("a1", "a");
    r.loaded("a");
    r.req("b1", "b");
    r.loaded("b");
    r.done("a1"); // a idle (older), b busy
    r.req("c1", "c"); // evicts a (idle, LRU)
    assert.equal(r.status("a"), "stopping");
    assert.equal(r.status("c"), "pending");
    const fast = r.req("b2", "b");
    assert.deepEqual(
      of(fast, "dispatch").map((d) => d.id),
      ["b2"],
    );
  });
});

describe("scheduler: capacity and eviction", () => {
  test("--max-models 1: a request for b stops idle a, then starts b once a is gone", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    r.done("a1");
    const acts = r.req("b1", "b");
    assert.deepEqual(
      of(acts, "stop").map((x) => [x.model, x.reason, x.abort]),
      [["a", "evict", false]],
    );
    assert.equal(of(acts, "start").length, 0, "b must not start before a has stopped");
    const after = r.stopped("a");
    assert.deepEqual(
      of(after, "start").map((x) => x.model),
      ["b"],
    );
    assert.deepEqual(
      of(r.loaded("b"), "dispatch").map((d) => d.id),
      ["b1"],
    );
  });

  test("a swap waits for requests in flight: the busy model drains, takes no new request, then stops", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    const acts = r.req("b1", "b");
    assert.equal(of(acts, "stop").length, 0, "a busy model is never stopped under its requests");
    assert.equal(r.status("a"), "draining");
    const late = r.req("a2", "a");
    assert.equal(of(late, "dispatch").length, 0, "a draining model takes no new requests (FIFO: b first)");
    const done = r.done("a1");
    assert.deepEqual(
      of(done, "stop").map((x) => [x.model, x.abort]),
      [["a", false]],
    );
    assert.deepEqual(
      of(r.stopped("a"), "start").map((x) => x.model),
      ["b"],
    );
    assert.deepEqual(
      of(r.loaded("b"), "dispatch").map((d) => d.id),
      ["b1"],
    );
    // b1 in flight: a2 waits for b to drain, then a comes back.
    assert.equal(r.status("b"), "draining");
    r.done("b1");
    r.stopped("b");
    assert.deepEqual(
      of(r.loaded("a"), "dispatch").map((d) => d.id),
      ["a2"],
    );
  });

  test("waiters are served first-in first-out across models", () => {
    const r = rig([spec("a"), spec("b"), spec("c")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    r.req("b1", "b");
    r.req("c1", "c");
    r.req("b2", "b");
    r.done("a1");
    r.stopped("a");
    assert.equal(r.status("b"), "loading");
    assert.equal(r.status("c"), "unloaded");
    const d = r.loaded("b");
    assert.deepEqual(
      of(d, "dispatch").map((x) => x.id),
      ["b1", "b2"],
      "both b requests join b's load",
    );
    r.done("b1");
    r.done("b2");
    r.stopped("b");
    assert.deepEqual(
      of(r.loaded("c"), "dispatch").map((x) => x.id),
      ["c1"],
    );
  });

  test("memory budget: evicts by bytes, not by count; a small model fits next to a big one", () => {
    const r = rig(
      [
        spec("big", { estimateBytes: 6 * GB }),
        spec("big2", { estimateBytes: 6 * GB }),
        spec("small", { estimateBytes: 3 * GB }),
      ],
      {
        budgetBytes: 10 * GB,
      },
    );
    r.req("1", "big");
    r.loaded("big");
    r.done("1");
    const s = r.req("2", "small");
    assert.deepEqual(
      of(s, "start").map((x) => x.model),
      ["small"],
      "6 + 3 ≤ 10: no eviction",
    );
    r.loaded("small");
    r.done("2");
    const b = r.req("3", "big2");
    // 6+3+6 > 10 → must free 6: LRU idle first is big (used earlier), and that is enough.
    assert.deepEqual(
      of(b, "stop").map((x) => x.model),
      ["big"],
    );
    assert.equal(r.status("small"), "ready");
  });

  test("eviction picks the least recently used idle model, and idle ones before busy ones", () => {
    const r = rig([spec("a"), spec("b"), spec("c"), spec("d")], { maxModels: 3 });
    for (const m of ["a", "b", "c"]) {
      r.req(`${m}1`, m);
      r.loaded(m);
      r.advance(10);
    }
    r.done("b1");
    r.advance(10);
    r.done("c1");
    // a: busy (oldest), b: idle, used before c; c: idle
    const acts = r.req("d1", "d");
    assert.deepEqual(
      of(acts, "stop").map((x) => x.model),
      ["b"],
    );
    assert.equal(r.status("a"), "ready");
  });

  test("pinned models are never evicted; the waiter times out with 503 and Retry-After", () => {
    const r = rig([spec("a", { pinned: true }), spec("b")], { maxModels: 1, queueTimeoutMs: 5_000 });
    r.req("a1", "a");
    r.loaded("a");
    r.done("a1");
    const acts = r.req("b1", "b");
    assert.equal(of(acts, "stop").length, 0);
    assert.equal(r.s.nextWakeAt(), r.now + 5_000);
    const t = r.advance(5_000);
    const rej = of(t, "reject");
    assert.equal(rej.length, 1);
    assert.equal(rej[0]!.status, 503);
    assert.equal(rej[0]!.code, "queue_timeout");
    assert.ok((rej[0]!.retryAfterS ?? 0) >= 1);
    assert.equal(r.status("a"), "ready");
  });

  test("a model larger than the whole budget still loads when it is alone", () => {
    const r = rig([spec("huge", { estimateBytes: 50 * GB }), spec("a")], { budgetBytes: 8 * GB });
    assert.deepEqual(
      of(r.req("1", "huge"), "start").map((x) => x.model),
      ["huge"],
    );
    r.loaded("huge");
    r.done("1");
    // a fits only once huge is gone.
    assert.deepEqual(
      of(r.req("2", "a"), "stop").map((x) => x.model),
      ["huge"],
    );
  });

  test("a measured size replaces the estimate", () => {
    const r = rig([spec("a", { estimateBytes: 2 * GB }), spec("b", { estimateBytes: 2 * GB })], {
      budgetBytes: 5 * GB,
    });
    r.req("1", "a");
    r.loaded("a");
    r.done("1");
    r.log.push(
      ...r.s.handle({
        type: "memoryMeasured",
        model: "a",
        instance: r.s.model("a")!.instance,
        bytes: 4 * GB,
        now: r.now,
      }),
    );
    assert.equal(r.s.usedBytes(), 4 * GB);
    assert.deepEqual(
      of(r.req("2", "b"), "stop").map((x) => x.model),
      ["a"],
      "4 + 2 > 5 → a must go",
    );
  });

  test("drain timeout: a busy model is never cut to make room; the waiters get 503 model_busy", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1, drainTimeoutMs: 10_000 });
    r.req("a1", "a");
    r.loaded("a");
    r.req("b1", "b");
    assert.equal(r.status("a"), "draining");
    const t = r.advance(10_000);
    assert.equal(of(t, "stop").length, 0, "in-flight requests are never cut by an eviction");
    assert.equal(r.status("a"), "ready");
    assert.equal(r.status("b"), "unloaded");
    const rej = of(t, "reject");
    assert.deepEqual(
      rej.map((x) => [x.id, x.status, x.code]),
      [["b1", 503, "model_busy"]],
    );
    // a serves new requests again.
    assert.equal(of(r.req("a2", "a"), "dispatch").length, 1);
  });

  test("a waiter that leaves the queue releases the room and calls its evictions off", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    r.req("b1", "b");
    assert.equal(r.status("a"), "draining");
    r.cancel("b1");
    assert.equal(r.status("b"), "unloaded");
    assert.equal(r.status("a"), "ready");
    assert.equal(r.s.waiting().length, 0);
    r.done("a1");
    assert.equal(r.status("a"), "ready", "no stop once nobody needs the room");
  });
});

describe("scheduler: TTL", () => {
  test("unloads after the idle time from the end of the last request; a request in flight counts as activity", () => {
    const r = rig([spec("a", { ttlMs: 60_000 })]);
    r.req("a1", "a");
    r.loaded("a");
    assert.equal(r.s.nextWakeAt(), undefined, "no TTL while a request is in flight");
    r.advance(120_000); // a long stream
    assert.equal(r.status("a"), "ready");
    r.done("a1");
    assert.equal(r.s.nextWakeAt(), r.now + 60_000);
    assert.equal(of(r.advance(59_999), "stop").length, 0);
    const t = r.advance(1);
    assert.deepEqual(
      of(t, "stop").map((x) => [x.model, x.reason]),
      [["a", "ttl"]],
    );
  });

  test("the global TTL applies to models without their own; pinned models have none", () => {
    const r = rig([spec("a"), spec("p", { pinned: true })], { ttlMs: 1_000 });
    r.req("1", "a");
    r.req("2", "p");
    r.loaded("a");
    r.loaded("p");
    r.done("1");
    r.done("2");
    const t = r.advance(1_000);
    assert.deepEqual(
      of(t, "stop").map((x) => x.model),
      ["a"],
    );
  });

  test("monitoring requests (activity: false) do not keep a model awake", () => {
    const r = rig([spec("a", { ttlMs: 1_000 })]);
    r.req("1", "a");
    r.loaded("a");
    r.done("1");
    r.advance(900);
    r.req("m", "a", { activity: false });
    r.done("m");
    // done() still refreshes lastUsed at the end of a request; the start did not. Requests that must not wake a
    // model (GET /metrics) are never routed through the scheduler at all.
    assert.equal(r.s.model("a")!.lastUsed, r.now);
  });
});

describe("scheduler: limits and failures", () => {
  test("per-model queue limit → 503 queue_full with Retry-After", () => {
    const r = rig([spec("a")], { maxQueuePerModel: 2 });
    r.req("1", "a");
    r.req("2", "a");
    const rej = of(r.req("3", "a"), "reject");
    assert.equal(rej.length, 1);
    assert.equal(rej[0]!.code, "queue_full");
    assert.equal(rej[0]!.status, 503);
    assert.ok(rej[0]!.retryAfterS! >= 1);
  });

  test("a failed load rejects every waiter with the reason, then backs off with a doubling cooldown", () => {
    const r = rig([spec("a")], { backoffBaseMs: 1_000, backoffMaxMs: 3_000 });
    r.req("1", "a");
    r.req("2", "a");
    const f = r.failed("a", "gguf_init_from_file: failed to open GGUF file");
    const rej = of(f, "reject");
    assert.deepEqual(
      rej.map((x) => [x.id, x.status, x.code]),
      [
        ["1", 502, "model_load_failed"],
        ["2", 502, "model_load_failed"],
      ],
    );
    assert.match(rejectionMessage("a", rej[0]!), /failed to open GGUF file/);
    assert.equal(r.status("a"), "failed");
    // During the cooldown: immediate 503 with the reason, no start.
    const c = r.req("3", "a");
    assert.equal(of(c, "start").length, 0);
    assert.equal(of(c, "reject")[0]!.status, 503);
    assert.match(rejectionMessage("a", of(c, "reject")[0]!), /failed to open GGUF file/);
    r.advance(1_000);
    assert.equal(of(r.req("4", "a"), "start").length, 1, "after the cooldown it tries again");
    r.failed("a");
    assert.equal(r.s.model("a")!.cooldownUntil - r.now, 2_000, "doubled");
    r.advance(2_000);
    r.req("5", "a");
    r.failed("a");
    assert.equal(r.s.model("a")!.cooldownUntil - r.now, 3_000, "bounded");
    r.advance(3_000);
    r.req("6", "a");
    r.loaded("a");
    assert.equal(r.s.model("a")!.failures, 0, "success resets the backoff");
  });

  test("a crash marks the model gone at once; the next request starts it again; stale completions are ignored", () => {
    const r = rig([spec("a")]);
    r.req("1", "a");
    r.req("2", "a");
    r.loaded("a");
    const first = r.s.model("a")!.instance;
    const c = r.crashed("a");
    assert.equal(r.status("a"), "unloaded");
    assert.equal(of(c, "stop").length, 0);
    assert.equal(r.s.model("a")!.crashes, 1);
    const again = r.req("3", "a");
    assert.deepEqual(
      of(again, "start").map((x) => x.instance),
      [first + 1],
    );
    r.loaded("a");
    r.done("1"); // completion of a request on the crashed instance
    assert.equal(r.s.model("a")!.inFlight, 1, "only request 3 is in flight on the new instance");
  });

  test("unload: waiters are refused, a busy model drains and stops when its requests are done", () => {
    const r = rig([spec("a")]);
    r.req("1", "a");
    r.loaded("a");
    const u = r.s.handle({ type: "unload", model: "a", now: r.now });
    assert.equal(of(u, "stop").length, 0);
    assert.equal(r.status("a"), "draining");
    assert.deepEqual(
      of(r.done("1"), "stop").map((x) => [x.reason, x.abort]),
      [["unload", false]],
    );
  });

  test("management load waiters do not count as requests in flight", () => {
    const r = rig([spec("a")], { ttlMs: 1_000 });
    r.req("L", "a", { kind: "load" });
    const d = r.loaded("a");
    assert.deepEqual(
      of(d, "dispatch").map((x) => [x.id, x.kind]),
      [["L", "load"]],
    );
    assert.equal(r.s.model("a")!.inFlight, 0);
    assert.equal(of(r.advance(1_000), "stop").length, 1);
  });
});

describe("scheduler: catalog changes (hot reload)", () => {
  test("unchanged running models keep running; changed ones restart after their requests; removed ones stop", () => {
    const r = rig([spec("a"), spec("b"), spec("c")]);
    for (const m of ["a", "b", "c"]) {
      r.req(`${m}1`, m);
      r.loaded(m);
    }
    r.done("c1");
    const acts = r.s.handle({
      type: "catalog",
      models: [spec("a", { ttlMs: 5_000 }), spec("b", { fingerprint: "v2" }), spec("d")],
      now: r.now,
    });
    assert.deepEqual(
      of(acts, "stop").map((x) => [x.model, x.reason]),
      [["c", "removed"]],
    );
    assert.equal(r.status("a"), "ready");
    assert.equal(r.s.model("a")!.spec.ttlMs, 5_000, "non-restart settings apply at once");
    assert.equal(r.status("b"), "draining", "b keeps its request in flight");
    assert.equal(r.status("d"), "unloaded");
    assert.deepEqual(
      of(r.stopped("c"), "forgotten").map((x) => x.model),
      ["c"],
    );
    assert.equal(r.s.model("c"), undefined);
    assert.equal(of(r.done("b1"), "stop")[0]?.reason, "reload");
    r.stopped("b");
    assert.equal(r.s.model("b")!.spec.fingerprint, "v2");
    assert.equal(of(r.req("b2", "b"), "start").length, 1);
    assert.equal(of(r.req("a2", "a"), "dispatch").length, 1);
  });
});

describe("scheduler: shutdown", () => {
  test("refuses waiters and new requests, stops idle models, drains busy ones", () => {
    const r = rig([spec("a"), spec("b"), spec("c")]);
    r.req("a1", "a");
    r.loaded("a");
    r.req("b1", "b");
    r.loaded("b");
    r.done("b1");
    r.req("c1", "c");
    const acts = r.s.handle({ type: "shutdown", now: r.now });
    assert.deepEqual(
      of(acts, "reject").map((x) => x.id),
      ["c1"],
    );
    assert.deepEqual(
      of(acts, "stop")
        .map((x) => [x.model, x.abort])
        .sort(),
      [
        ["b", false],
        ["c", true],
      ],
    );
    assert.equal(r.status("a"), "draining");
    assert.equal(of(r.req("a2", "a"), "reject")[0]!.code, "shutting_down");
    assert.equal(of(r.done("a1"), "stop").length, 1);
  });
});

describe("scheduler: a stop that failed", () => {
  test("the model is stuck: its room stays counted, it is never evicted, its requests are refused", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("l", "a", { kind: "load" });
    r.loaded("a");
    r.s.handle({ type: "unload", model: "a", now: r.now });
    assert.equal(r.status("a"), "stopping");
    const f = r.s.handle({
      type: "stopFailed",
      model: "a",
      instance: r.s.model("a")!.instance,
      reason: "did not exit after SIGKILL",
      now: r.now,
    });
    assert.deepEqual(
      of(f, "state").map((s) => [s.from, s.to]),
      [["stopping", "stuck"]],
    );
    assert.equal(r.s.usedBytes(), 1 * GB);
    const b = r.req("b1", "b");
    assert.equal(of(b, "start").length, 0, "nothing loads into the room of a process that may still hold it");
    assert.equal(of(b, "stop").length, 0, "a stuck model is no eviction candidate");
    const a = of(r.req("a1", "a"), "reject");
    assert.deepEqual(
      a.map((x) => [x.status, x.code]),
      [[503, "model_stop_failed"]],
    );
    assert.match(rejectionMessage("a", a[0]!), /could not be stopped.*did not exit after SIGKILL/);
    // the process goes after all: the room is free and b starts
    assert.equal(of(r.stopped("a"), "start").length, 1);
    assert.equal(r.status("a"), "unloaded");
    assert.equal(r.status("b"), "loading");
  });

  test("a stop failure for an older instance is ignored", () => {
    const r = rig([spec("a")]);
    r.req("l", "a", { kind: "load" });
    r.loaded("a");
    const stale = r.s.model("a")!.instance - 1;
    assert.deepEqual(r.s.handle({ type: "stopFailed", model: "a", instance: stale, reason: "x", now: r.now }), []);
    assert.equal(r.status("a"), "ready");
  });
});

describe("scheduler: a hung process keeps its room until it is gone", () => {
  const hung = (r: ReturnType<typeof rig>, model: string) =>
    r.s.handle({
      type: "crashed",
      model,
      instance: r.s.model(model)!.instance,
      reason: "hung: no answer within 2000 ms",
      alive: true,
      now: r.now,
    });

  test("with --max-models 1, the next model starts only when the killed process has exited", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    const h = hung(r, "a");
    assert.deepEqual(
      of(h, "state").map((s) => [s.from, s.to]),
      [["ready", "stopping"]],
    );
    assert.equal(r.s.model("a")!.inFlight, 0, "its requests are over (they were cut)");
    assert.equal(r.s.model("a")!.crashes, 1);
    assert.equal(r.s.usedBytes(), 1 * GB, "its room is still booked");
    const b = r.req("b1", "b");
    assert.equal(of(b, "start").length, 0, "nothing starts beside a process that is still alive");
    assert.equal(of(b, "stop").length, 0, "no second stop: the kill is under way");
    // a request for the hung model waits too, and starts it again once the room is free
    assert.equal(of(r.req("a2", "a"), "start").length, 0);
    const gone = r.stopped("a");
    assert.deepEqual(
      of(gone, "start").map((s) => s.model),
      ["b"],
      "the room is free: the first waiter's model starts",
    );
    assert.equal(r.status("a"), "unloaded");
    r.done("a1"); // the cut request's completion is stale: ignored
    assert.equal(r.s.model("a")!.inFlight, 0);
  });

  test("a kill that fails leaves it stuck, its room still counted", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    hung(r, "a");
    const f = r.s.handle({
      type: "stopFailed",
      model: "a",
      instance: r.s.model("a")!.instance,
      reason: "did not exit after SIGKILL",
      now: r.now,
    });
    assert.deepEqual(
      of(f, "state").map((s) => [s.from, s.to]),
      [["stopping", "stuck"]],
    );
    assert.equal(of(r.req("b1", "b"), "start").length, 0);
    assert.equal(r.s.usedBytes(), 1 * GB);
  });

  test("a crash whose process already exited frees the room at once (unchanged)", () => {
    const r = rig([spec("a"), spec("b")], { maxModels: 1 });
    r.req("a1", "a");
    r.loaded("a");
    r.crashed("a");
    assert.equal(r.status("a"), "unloaded");
    assert.equal(of(r.req("b1", "b"), "start").length, 1);
  });
});
