// The controller with an RPC model on an in-memory runner and an injected worker probe: the check before a start
// (a refusal fails the load with its words and backs off, no process is started), the split in the status, and a
// crash explained by llama-server's abort line.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ProxyModel } from "../../../src/proxy/catalog.js";
import { ModelController } from "../../../src/proxy/controller.js";
import { RpcChecker } from "../../../src/proxy/rpc.js";
import type { WorkerProbe } from "../../../src/rpc/probe.js";
import { FakeRunner } from "../../support/fake-runner.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const W = "10.0.0.2:50052";

function rpcModel(name: string): ProxyModel {
  const path = `/models/${name}.gguf`;
  return {
    name,
    aliases: [],
    entry: { name, aliases: [], path, shards: [path], source: "config", settings: { rpc: [W] } },
    server: { modelPath: path, modelName: name, rpc: [W] },
    estimate: {
      bytes: 40 * GiB,
      weightsBytes: 38 * GiB,
      kvBytes: GiB,
      computeBytes: GiB,
      ctx: 4096,
      hostBytes: GiB,
      offloadBytes: 39 * GiB,
    },
    spec: { name, estimateBytes: GiB, fingerprint: "v1", rpc: [W] },
    preload: false,
    rpc: { workers: [W], localBytes: GiB, remoteBytes: 39 * GiB },
  };
}

const ready = (freeGiB: number): WorkerProbe => ({
  state: "ready",
  endpoint: W,
  version: "6.0.0",
  devices: [{ freeBytes: freeGiB * GiB, totalBytes: 64 * GiB }],
  freeBytes: freeGiB * GiB,
  totalBytes: 64 * GiB,
});

const open: ModelController[] = [];
let alive: NodeJS.Timeout | undefined;
afterEach(async () => {
  for (const c of open.splice(0)) await c.shutdown(0);
  clearInterval(alive);
});

function rig(probe: () => WorkerProbe) {
  const runner = new FakeRunner();
  const probes: string[][] = [];
  const rpc = new RpcChecker({
    probe: (eps) => {
      probes.push(eps.map((e) => e.text));
      return Promise.resolve(eps.map(() => probe()));
    },
  });
  const c = new ModelController(runner, [rpcModel("big")], { measureRss: true, rpc, backoffBaseMs: 60_000 });
  open.push(c);
  alive ??= setInterval(() => {}, 1_000);
  return { runner, c, probes };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

void describe("controller: an RPC model", () => {
  test("an unreachable worker fails the load before any process starts, naming it; then the model backs off", async () => {
    const { runner, c, probes } = rig(() => ({
      state: "unreachable",
      endpoint: W,
      detail: "connection refused: nothing listens on that port",
    }));
    await assert.rejects(
      c.load("big"),
      (e: Error) =>
        /RPC worker 10\.0\.0\.2:50052 of model 'big' is not reachable/.test(e.message) &&
        /gglib rpc-server/.test(e.message),
    );
    assert.equal(runner.starts.length, 0, "no llama-server was started");
    assert.deepEqual(probes, [[W]]);
    const st = c.status()[0]!;
    assert.equal(st.state, "failed");
    assert.equal(st.failures, 1);
    assert.equal(st.rpc?.workers[0]?.state, "unreachable");
    assert.match(st.rpc?.workers[0]?.detail ?? "", /connection refused/);
    // cooling down: refused without probing again
    await assert.rejects(c.load("big"), /failed to load|connection refused|not reachable/);
    assert.equal(probes.length, 1);
  });

  test("too little room on the worker is refused with the numbers", async () => {
    const { runner, c } = rig(() => ready(8));
    await assert.rejects(c.load("big"), /needs 39\.0 GiB on its RPC workers, but they have 8\.0 GiB free/);
    assert.equal(runner.starts.length, 0);
  });

  test("a worker with room: the model starts with --rpc's workers; status shows the plan, then what was measured", async () => {
    const { runner, c } = rig(() => ready(48));
    runner.holdStarts.add("big");
    const loading = c.load("big");
    await settle();
    // llama-server's buffer lines as it loads (-lv 4)
    runner.print("big", `0.00.052.655 I load_tensors:   CPU_Mapped model buffer size =   512.00 MiB`);
    runner.print("big", `0.00.052.672 I load_tensors: RPC0[${W}] model buffer size = 38000.00 MiB`);
    runner.print("big", `0.00.057.620 I sched_reserve: RPC0[${W}] compute buffer size =   300.00 MiB`);
    runner.held[0]!.ready();
    await loading;
    await settle();
    assert.deepEqual(runner.starts[0]?.rpc, [W]);
    const st = c.status()[0]!;
    assert.equal(st.state, "ready");
    assert.deepEqual(st.rpc?.planned, { localBytes: GiB, remoteBytes: 39 * GiB });
    const w = st.rpc?.workers[0];
    assert.equal(w?.state, "ready");
    assert.equal(w?.freeBytes, 48 * GiB);
    assert.equal(w?.plannedBytes, 39 * GiB);
    assert.equal(w?.measuredBytes, 38300 * MiB);
    assert.deepEqual(st.rpc?.measured, { remoteBytes: 38300 * MiB, localBytes: 512 * MiB });
    assert.equal(st.measuredBytes, 512 * MiB, "only this host's buffers count as the model's measured need");
  });

  test("a crash after llama-server's abort line is explained by that line", async () => {
    const { runner, c } = rig(() => ready(48));
    await c.load("big");
    const lease = c.tryAcquire("big")!;
    runner.print(
      "big",
      "/src/ggml/src/ggml-rpc/ggml-rpc.cpp:569: Remote RPC server crashed or returned malformed response",
    );
    runner.crash("big", "SIGABRT");
    await settle();
    const why = await lease.explainFailure(new Error("socket hang up"));
    assert.equal(
      why,
      "llama-server for 'big' exited unexpectedly (signal SIGABRT): Remote RPC server crashed or returned malformed response",
    );
    lease.release();
    const st = c.status()[0]!;
    assert.equal(st.state, "unloaded");
    assert.match(st.lastError ?? "", /Remote RPC server crashed/);
  });
});
