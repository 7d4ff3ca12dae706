/**
 * The proxy's controller (src/proxy/controller.ts) on an in-memory ProcessRunner (test/support/fake-runner.ts):
 * what it does with the runner's outcomes (ready, failed, crashed, hung, a stop that failed) and what it tells
 * the scheduler, the waiting requests, the event listeners and the logs.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { HttpError } from "../../../src/core/errors.js";
import type { ProxyModel } from "../../../src/proxy/catalog.js";
import { ModelController, type ControllerOptions, type ProxyEvent } from "../../../src/proxy/controller.js";
import { FakeRunner } from "../../support/fake-runner.js";

const GB = 1024 ** 3;

function model(name: string, estimateBytes = 1 * GB): ProxyModel {
  const path = `/models/${name}.gguf`;
  return {
    name,
    aliases: [],
    entry: { name, aliases: [], path, shards: [path], source: "config", settings: {} },
    server: { modelPath: path, modelName: name },
    estimate: {
      bytes: estimateBytes,
      weightsBytes: estimateBytes,
      kvBytes: 0,
      computeBytes: 0,
      ctx: 4096,
      hostBytes: estimateBytes,
      offloadBytes: 0,
    },
    spec: { name, estimateBytes, fingerprint: "v1" },
    preload: false,
  };
}

/** Lets the fake runner's queued outcomes (microtasks) and the controller's reactions run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

const open: ModelController[] = [];
// the controller's timer is unref'd (it must not keep a proxy alive): hold the loop open while a test waits on it
let alive: NodeJS.Timeout | undefined;
afterEach(async () => {
  for (const c of open.splice(0)) await c.shutdown(0);
  clearInterval(alive);
  alive = undefined;
});

function rig(names: string[], options: ControllerOptions = {}) {
  const runner = new FakeRunner();
  const logged: string[] = [];
  const c = new ModelController(
    runner,
    names.map((n) => model(n)),
    { measureRss: true, log: (l) => logged.push(l), ...options },
  );
  open.push(c);
  alive ??= setInterval(() => {}, 1_000);
  const events: ProxyEvent[] = [];
  c.on((e) => events.push(e));
  return { runner, c, events, logged };
}

describe("controller: a stop that failed", () => {
  test("keeps the model's memory counted: no other model loads into its room, and it is reported", async () => {
    const { runner, c, events, logged } = rig(["a", "b"], { maxModels: 1, queueTimeoutMs: 300 });
    await c.load("a");
    runner.stuckOnStop.add("a");
    c.unload("a");
    await settle();
    assert.equal(c.state("a")?.status, "stuck", "a process that survived SIGKILL still holds its room");
    assert.equal(c.usedBytes(), 1 * GB);
    // reported: event, status, the proxy's log and the model's log
    const toStuck = events.find((e) => e.type === "state" && e.model === "a" && e.to === "stuck");
    assert.ok(toStuck, "a state event to 'stuck'");
    assert.match(toStuck.type === "state" ? (toStuck.reason ?? "") : "", /did not exit after SIGKILL/);
    const st = c.status().find((s) => s.name === "a")!;
    assert.equal(st.state, "stuck");
    assert.match(st.lastError ?? "", /did not exit after SIGKILL/);
    assert.ok(logged.some((l) => /stop of a failed/.test(l)));
    assert.ok(c.modelLogs("a").some((l) => /stop failed/.test(l)));
    // b has no room while a's process lives: it waits and times out, it is never started on top of a
    await assert.rejects(c.acquire("b"), (e: unknown) => e instanceof HttpError && e.code === "queue_timeout");
    assert.deepEqual(
      runner.starts.map((s) => s.modelName),
      ["a"],
    );
    // requests for a itself are refused with the reason
    await assert.rejects(
      c.acquire("a"),
      (e: unknown) => e instanceof HttpError && e.status === 503 && e.code === "model_stop_failed",
    );
  });

  test("once the stuck process is gone after all, its room is free again", async () => {
    const { runner, c } = rig(["a", "b"], { maxModels: 1 });
    await c.load("a");
    runner.stuckOnStop.add("a");
    c.unload("a");
    await settle();
    assert.equal(c.state("a")?.status, "stuck");
    runner.crash("a", "SIGKILL"); // the kernel finally lets it go
    await settle();
    assert.equal(c.state("a")?.status, "unloaded");
    await c.load("b");
    assert.equal(c.state("b")?.status, "ready");
  });

  test("an eviction whose stop fails leaves the waiting request without room instead of loading beside it", async () => {
    const { runner, c } = rig(["a", "b"], { maxModels: 1, queueTimeoutMs: 300 });
    await c.load("a");
    runner.stuckOnStop.add("a");
    await assert.rejects(c.acquire("b"), (e: unknown) => e instanceof HttpError && e.code === "queue_timeout");
    assert.equal(c.state("a")?.status, "stuck");
    assert.deepEqual(
      runner.starts.map((s) => s.modelName),
      ["a"],
    );
  });
});

/** An open forward as the controller sees it: something to abort. */
function forward() {
  const f = { reason: undefined as Error | undefined, abort: (r: Error) => (f.reason ??= r) };
  return f;
}

describe("controller: loads and requests", () => {
  test("concurrent requests for a cold model start it once and all get a lease on that process", async () => {
    const { runner, c } = rig(["a"]);
    const leases = await Promise.all([1, 2, 3, 4, 5].map(() => c.acquire("a")));
    assert.equal(runner.starts.length, 1);
    assert.deepEqual(new Set(leases.map((l) => l.handle.id)).size, 1);
    assert.equal(c.state("a")?.inFlight, 5);
    for (const l of leases) l.release();
    leases[0]!.release(); // a second release does nothing
    assert.equal(c.state("a")?.inFlight, 0);
  });

  test("a ready model is leased synchronously (the hot path); a cold one is not", async () => {
    const { c } = rig(["a"]);
    assert.equal(c.tryAcquire("a"), undefined);
    assert.equal(c.state("a")?.status, "unloaded", "tryAcquire never starts a model");
    await c.load("a");
    const lease = c.tryAcquire("a");
    assert.ok(lease);
    assert.equal(c.state("a")?.inFlight, 1);
    lease.release();
    assert.equal(c.state("a")?.inFlight, 0);
  });

  test("the pre-stop hook learns how many requests the process was given (queued and hot-path ones alike)", async () => {
    const served: number[] = [];
    const hooks = { beforeStop: async (_m: string, _h: unknown, _r: unknown, n: number) => void served.push(n) };
    const { c } = rig(["a", "b"], { maxModels: 1, hooks });
    const queued = await Promise.all([c.acquire("a"), c.acquire("a")]);
    for (const l of queued) l.release();
    c.tryAcquire("a")!.release();
    (await c.acquire("b")).release(); // evicts a
    await settle();
    assert.deepEqual(served, [3], "a's process served three requests; loads do not count");
    await c.load("a"); // evicts b, which served one
    await settle();
    assert.deepEqual(served, [3, 1]);
  });

  test("a post-ready step that finds the process unfit (a wedged restore) gets a fresh one; the waiter is served by it", async () => {
    let calls = 0;
    const hooks = {
      afterReady: async () => (++calls === 1 ? { restart: "the restore of slot 0 did not finish" } : {}),
    };
    const { runner, c, logged } = rig(["a"], { hooks });
    const lease = await c.acquire("a");
    assert.equal(runner.starts.length, 2, "started again");
    assert.equal(runner.stops.length, 1, "the unfit process was stopped");
    assert.notEqual(lease.handle.id, runner.stops[0]!.id, "the request went to the fresh process");
    assert.ok(logged.some((l) => /restarted before its first request: the restore of slot 0/.test(l)));
    lease.release();
    // once per load: a step that asks again is not obeyed a second time (no restart loop)
    const { runner: r2, c: c2 } = rig(["a"], { hooks: { afterReady: async () => ({ restart: "always" }) } });
    (await c2.acquire("a")).release();
    assert.equal(r2.starts.length, 2);
    assert.equal(c2.state("a")?.status, "ready");
  });

  test("a failed load answers its waiters with llama-server's reason (502) and backs off (503)", async () => {
    const { runner, c } = rig(["a"]);
    runner.startFailures.set("a", new Error("gguf_init_from_file: failed to open GGUF file"));
    await assert.rejects(
      c.acquire("a"),
      (e: unknown) =>
        e instanceof HttpError && e.status === 502 && /failed to open GGUF file/.test(e.message) && !!e.retryAfterS,
    );
    await assert.rejects(c.acquire("a"), (e: unknown) => e instanceof HttpError && e.status === 503);
    assert.equal(runner.starts.length, 1, "no new start during the cooldown");
  });

  test("memory: the buffer-size lines printed during the load become the model's measured need", async () => {
    const { runner, c } = rig(["a"]);
    runner.holdStarts.add("a");
    const loaded = c.load("a");
    await settle();
    runner.print("a", "load_tensors:   CPU_Mapped model buffer size =     7.97 MiB");
    runner.print("a", "llama_kv_cache:        CPU KV buffer size =     1.00 MiB");
    runner.held[0]!.ready();
    await loaded;
    const measured = c.state("a")?.measuredBytes ?? 0;
    assert.ok(Math.abs(measured - 8.97 * 1024 * 1024) < 1024, `measured ${measured}`);
    assert.deepEqual(c.modelLogs("a").length, 2);
  });
});

describe("controller: processes that go away", () => {
  test("a crash cuts the open forwards with the cause, marks the model gone, and the next request restarts it", async () => {
    const { runner, c, events } = rig(["a"]);
    const lease = await c.acquire("a");
    const f = forward();
    c.trackUpstream(lease, f);
    runner.crash("a", "SIGSEGV");
    assert.match(f.reason?.message ?? "", /exited \(signal SIGSEGV\)/);
    assert.equal(c.state("a")?.status, "unloaded");
    assert.ok(events.some((e) => e.type === "crash" && e.model === "a"));
    assert.equal(
      await c.explainFailure("a", lease.instance, new Error("other side closed"), 0),
      "llama-server for 'a' exited unexpectedly (signal SIGSEGV)",
    );
    lease.release();
    await c.acquire("a");
    assert.equal(runner.starts.length, 2);
    assert.equal(c.status()[0]!.crashes, 1);
  });

  test("a hung server (unhealthy) is killed and treated as a crash", async () => {
    const { runner, c, events } = rig(["a"]);
    const lease = await c.acquire("a");
    const f = forward();
    c.trackUpstream(lease, f);
    runner.hang("a");
    assert.match(f.reason?.message ?? "", /stopped answering its health checks/);
    assert.equal(runner.stops.length, 1, "the hung process is stopped");
    assert.equal(c.state("a")?.status, "stopping", "until the process is gone");
    assert.ok(events.some((e) => e.type === "crash" && /hung/.test(e.reason)));
    lease.release();
    await settle();
    assert.equal(c.state("a")?.status, "unloaded");
  });

  test("a hung server's room stays booked until its process is gone: no second llama-server beside it", async () => {
    const { runner, c } = rig(["a", "b"], { maxModels: 1 });
    await c.load("a");
    runner.holdStops.add("a");
    runner.hang("a");
    const b = c.acquire("b");
    await settle();
    assert.equal(runner.starts.length, 1, "b does not start while the killed process of a is alive");
    assert.equal(c.state("a")?.status, "stopping");
    assert.equal(runner.heldStops.length, 1);
    runner.heldStops[0]!();
    const lease = await b;
    assert.equal(lease.model, "b");
    assert.equal(runner.starts.length, 2);
    assert.equal(c.state("a")?.status, "unloaded");
    lease.release();
  });

  test("a draining model still serves its leases (a request whose kept-alive socket closed may be resent)", async () => {
    const { c } = rig(["a", "b"], { maxModels: 1 });
    const lease = await c.acquire("a");
    const b = c.acquire("b");
    await settle();
    assert.equal(c.state("a")?.status, "draining");
    assert.ok(c.isServing("a", lease.instance), "its process serves the requests in flight until they are done");
    lease.release();
    (await b).release();
    assert.ok(!c.isServing("a", lease.instance));
  });

  test("what a lease receives is the process's progress, as the health monitor reads it", async () => {
    const { runner, c } = rig(["a"]);
    const lease = await c.acquire("a");
    assert.equal(runner.activity("a"), 0);
    lease.received(1);
    lease.received(512);
    assert.equal(runner.activity("a"), 513);
    lease.release();
  });

  test("an unload while loading aborts the start; a start that wins the race is stopped at once", async () => {
    const { runner, c } = rig(["a"]);
    runner.holdStarts.add("a");
    const loading = c.load("a");
    await settle();
    c.unload("a");
    const held = runner.held[0]!;
    assert.equal(held.options.signal?.aborted, true, "the start is aborted");
    held.ready(true); // the process came up anyway
    await assert.rejects(loading, (e: unknown) => e instanceof HttpError && e.code === "model_unloaded");
    await settle();
    assert.equal(runner.stops.length, 1, "the late process is stopped");
    assert.equal(runner.listRunning().length, 0);
    assert.equal(c.state("a")?.status, "unloaded");
  });

  test("shutdown cuts the forwards still open after the drain and stops every process", async () => {
    const { runner, c } = rig(["a", "b"]);
    const la = await c.acquire("a");
    await c.load("b");
    const f = forward();
    c.trackUpstream(la, f);
    await c.shutdown(50);
    open.splice(open.indexOf(c), 1);
    assert.match(f.reason?.message ?? "", /shutting down/);
    assert.equal(runner.listRunning().length, 0);
  });
});

describe("controller: catalog and clock", () => {
  test("whenSettled resolves when the unloaded model's process is gone, and says false when it outlasts the wait", async () => {
    const { c } = rig(["a", "b"]);
    assert.equal(await c.whenSettled("a", 10), true, "a model that never ran is settled");
    await c.load("a");
    assert.equal(await c.whenSettled("a", 20), false, "a running model does not settle by itself");
    const lease = c.tryAcquire("a");
    assert.ok(lease);
    c.unload("a");
    const settled = c.whenSettled("a", 5_000);
    await settle();
    assert.notEqual(c.state("a")?.status, "unloaded", "its request holds it in draining");
    lease.release();
    assert.equal(await settled, true);
    assert.equal(c.state("a")?.status, "unloaded");
  });

  test("a model removed from the catalog while running is stopped, then forgotten", async () => {
    const { c } = rig(["a", "b"]);
    await c.load("a");
    c.updateCatalog([model("b")]);
    await settle();
    assert.equal(c.state("a"), undefined);
    assert.deepEqual(
      c.catalog().map((m) => m.name),
      ["b"],
    );
  });

  test("status reads time from the injected clock", async () => {
    let t = 1_000_000;
    const clock = () => t;
    const runner = new FakeRunner(clock);
    const c = new ModelController(runner, [model("a")], {}, undefined, clock);
    open.push(c);
    await c.load("a");
    t += 5_000;
    const st = c.status()[0]!;
    assert.equal(st.uptimeS, 5);
    assert.equal(st.lastUsed, new Date(1_000_000).toISOString());
  });
});
