import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { WorkerProbe } from "../../../src/rpc/probe.js";
import { checkWorkers, FIT_MARGIN_BYTES, planSplit, shareByFreeMemory } from "../../../src/rpc/split.js";

const GiB = 1024 ** 3;
const ready = (endpoint: string, freeGiB: number): WorkerProbe => ({
  state: "ready",
  endpoint,
  version: "6.0.0",
  devices: [{ freeBytes: freeGiB * GiB, totalBytes: 32 * GiB }],
  freeBytes: freeGiB * GiB,
  totalBytes: 32 * GiB,
});

void describe("RPC split arithmetic", () => {
  test("the plan: the offloaded part is remote, the rest local", () => {
    assert.deepEqual(planSplit({ hostBytes: 2 * GiB, gpuBytes: 38 * GiB }), {
      localBytes: 2 * GiB,
      remoteBytes: 38 * GiB,
    });
  });

  test("shares follow the workers' free memory and add up exactly", () => {
    const s = shareByFreeMemory(10, [
      { endpoint: "a:1", freeBytes: 1, totalBytes: 1 },
      { endpoint: "b:1", freeBytes: 2, totalBytes: 2 },
    ]);
    assert.deepEqual(
      s.map((x) => [x.endpoint, x.bytes]),
      [
        ["a:1", 3],
        ["b:1", 7],
      ],
    );
    const big = shareByFreeMemory(30 * GiB, [
      { endpoint: "a:1", freeBytes: 10 * GiB, totalBytes: 0 },
      { endpoint: "b:1", freeBytes: 20 * GiB, totalBytes: 0 },
    ]);
    assert.deepEqual(
      big.map((x) => x.bytes),
      [10 * GiB, 20 * GiB],
    );
  });

  test("workers with room pass; each gets its share", () => {
    const c = checkWorkers("big", { localBytes: 2 * GiB, remoteBytes: 30 * GiB }, [ready("a:1", 20), ready("b:1", 20)]);
    assert.equal(c.ok, true);
    assert.deepEqual(
      c.shares?.map((s) => s.bytes),
      [15 * GiB, 15 * GiB],
    );
  });

  test("too little free memory (llama.cpp keeps its fit margin) is refused with the numbers", () => {
    const c = checkWorkers("big", { localBytes: 2 * GiB, remoteBytes: 20 * GiB }, [
      ready("a:1", 10),
      ready("b:1", 10.5),
    ]);
    assert.equal(c.ok, false);
    assert.ok(!c.ok);
    assert.match(c.message, /Model 'big' needs 20\.0 GiB on its RPC workers, but they have 20\.5 GiB free/);
    assert.match(c.message, /a:1: 10\.0 GiB, b:1: 10\.5 GiB/);
    assert.match(c.message, new RegExp(`keeps ${FIT_MARGIN_BYTES / GiB}\\.0 GiB free on each`));
    assert.match(c.hint, /gpuLayers/);
  });

  test("a worker that does not answer, is busy or speaks something else is named, with what to do", () => {
    const plan = { localBytes: GiB, remoteBytes: GiB };
    const down = checkWorkers("m", plan, [
      ready("a:1", 10),
      { state: "unreachable", endpoint: "10.0.0.9:50052", detail: "connection refused: nothing listens on that port" },
    ]);
    assert.ok(!down.ok);
    assert.match(down.message, /RPC worker 10\.0\.0\.9:50052 of model 'm' is not reachable: connection refused/);
    assert.match(down.hint, /gglib rpc-server --host <its address> --port 50052/);
    const busy = checkWorkers("m", plan, [{ state: "busy", endpoint: "a:1", detail: "no answer" }]);
    assert.ok(!busy.ok);
    assert.match(busy.message, /is busy/);
    assert.match(busy.hint, /a worker of its own/);
    const odd = checkWorkers("m", plan, [
      { state: "incompatible", endpoint: "a:1", detail: "x" },
      { state: "unreachable", endpoint: "b:1", detail: "y" },
    ]);
    assert.ok(!odd.ok);
    assert.match(odd.message, /did not answer as an rpc-server should: x \(and 1 more: b:1\)/);
  });
});
