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
    estimate: { bytes: estimateBytes, weightsBytes: estimateBytes, kvBytes: 0, computeBytes: 0, ctx: 4096 },
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
    assert.equal(c.scheduler.usedBytes(), 1 * GB);
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
