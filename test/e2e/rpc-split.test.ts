// A model split across an RPC worker on the REAL llama-server and rpc-server: the worker runs on another test host
// (its own network namespace when root, else a loopback address, and the test says which). Through `gglib proxy`
// (in-process), the split model answers exactly as the same model run locally (temperature 0, fixed seed), its
// buffers are on the worker (status shows the split), it counts only its local share against the budget; a worker
// that disappears fails the model with llama-server's reason, the next load fails naming the worker and backs
// off, and once the worker is back the model loads again.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelStatusReport } from "../../src/proxy/controller.js";
import { buildCatalog } from "../../src/proxy/catalog.js";
import { loadConfigFile, startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { createTestNet, type TestNet } from "../support/netns.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";
import { startRpcWorker, type RpcWorker } from "../support/rpc-worker.js";
import { writeTinyModel } from "../support/tiny-models.js";

let dir: string;
let net: TestNet;
let worker: RpcWorker;
let proxy: RunningProxy;
let budgetBytes: number;

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-rpc-"));
  net = await createTestNet(["worker"]);
  // the worker as a user starts it: `gglib rpc-server --host <its address>` on the other host
  worker = await startRpcWorker({ host: net.hosts[0]!, via: "gglib" });
  const model = await writeTinyModel(dir, { name: "tiny-split", kind: "chat", layers: 4, embd: 64 });
  writeFileSync(
    join(dir, "config.yaml"),
    [
      "models:",
      `  local: { path: ${model}, ctx: 512 }`,
      `  split: { path: ${model}, ctx: 512, rpc: ["${worker.endpoint}"] }`,
      "",
    ].join("\n"),
  );
  // a budget that holds `local` beside the split model's share here, but not beside the whole split model
  const cat = await buildCatalog({ config: loadConfigFile(join(dir, "config.yaml")) });
  const localEst = cat.models.find((m) => m.name === "local")!.spec.estimateBytes;
  const split = cat.models.find((m) => m.name === "split")!;
  // halfway between "local + the split model's share here" and "local + the whole split model"
  budgetBytes = localEst + split.spec.estimateBytes + Math.floor((split.estimate.bytes - split.spec.estimateBytes) / 2);
  assert.ok(localEst + split.estimate.bytes > budgetBytes, "the whole split model would not fit beside local");
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 21000 + Math.floor(Math.random() * 2000),
  });
  proxy = await startProxy({
    configPath: join(dir, "config.yaml"),
    port: 0,
    memoryBudget: budgetBytes,
    contextCache: false,
    watchConfig: false,
    runner,
  });
});

after(async () => {
  await proxy?.close(2_000);
  await worker?.stop();
  await net?.close();
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

const body = (model: string) =>
  JSON.stringify({
    model,
    messages: [{ role: "user", content: "Tell me about the sea." }],
    max_tokens: 24,
    temperature: 0,
    seed: 42,
  });

async function chat(model: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${proxy.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(model),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

const content = (j: Record<string, unknown>) =>
  (j.choices as { message: { content: string } }[] | undefined)?.[0]?.message.content;

async function status(name: string): Promise<ModelStatusReport> {
  const s = (await (await fetch(`${proxy.url}/api/status`)).json()) as { models: ModelStatusReport[] };
  return s.models.find((m) => m.name === name)!;
}

void describe("a model split across an RPC worker (real llama-server + rpc-server)", { timeout: 240_000 }, () => {
  test("answers like the same model run locally; its buffers are on the worker", async (t) => {
    t.diagnostic(
      net.mode === "netns"
        ? `worker in network namespace ${net.hosts[0]!.ns} at ${worker.endpoint}`
        : `no namespaces (${net.reason}): worker on loopback ${worker.endpoint}`,
    );
    // off loopback, gglib rpc-server warns that the protocol has no authentication; on loopback it does not
    if (net.mode === "netns") assert.match(worker.output(), /WARNING: rpc-server will listen on .*no authentication/s);
    else assert.doesNotMatch(worker.output(), /WARNING/);
    const split = await chat("split");
    assert.equal(split.status, 200, JSON.stringify(split.json));
    const local = await chat("local");
    assert.equal(local.status, 200, JSON.stringify(local.json));
    // both resident within the budget: only the split model's local share counts here
    assert.equal((await status("split")).state, "ready", "split was not evicted for local");
    assert.ok((content(local.json) ?? "").length > 0);
    assert.equal(content(split.json), content(local.json), "same tokens with and without the worker");

    const st = await status("split");
    const loc = await status("local");
    assert.equal(st.state, "ready");
    assert.ok(st.rpc, "status shows the split");
    assert.equal(st.rpc.workers.length, 1);
    const w = st.rpc.workers[0]!;
    assert.equal(w.endpoint, worker.endpoint);
    assert.equal(w.state, "ready");
    assert.ok((w.freeBytes ?? 0) > 0);
    assert.ok((w.measuredBytes ?? 0) > 0, `llama-server put buffers on the worker: ${JSON.stringify(st)}`);
    assert.ok(st.rpc.measured && st.rpc.measured.remoteBytes > 0);
    assert.ok(st.rpc.planned.remoteBytes > 0);
    // only the local share counts against this host's budget, measured without the worker's part
    assert.ok(st.estimatedBytes < loc.estimatedBytes, `${st.estimatedBytes} < ${loc.estimatedBytes}`);
    // measured from llama-server's buffer lines: most of it is on the worker; this host's part is what counts here
    const m = st.rpc.measured;
    assert.ok(m.localBytes !== undefined && m.localBytes < m.remoteBytes, JSON.stringify(m));
    assert.equal(st.measuredBytes, m.localBytes);
    assert.match(worker.output(), /"event":"client","connected":true/, "gglib rpc-server reports its client");
  });

  test("a worker that disappears: llama-server's reason, then a load that names the worker and backs off; back once it returns", async () => {
    assert.equal((await status("split")).state, "ready");
    // the worker's rpc-server dies (gglib rpc-server reports it and exits 1)
    worker.kill();
    await waitFor(() => worker.child.exitCode !== null || worker.child.signalCode !== null, 10_000);

    // the next request reaches llama-server, whose RPC call fails: it aborts with its own words
    const broken = await chat("split");
    assert.notEqual(broken.status, 200);
    const brokenMsg = JSON.stringify(broken.json);
    assert.match(brokenMsg, /Remote RPC server crashed or returned malformed response/, `status ${broken.status}`);
    assert.ok(await waitFor(async () => (await status("split")).state !== "ready", 30_000, 100));

    // the next load checks the worker first: refused, naming it and what to do; then the model cools down
    const refused = await chat("split");
    assert.equal(refused.status, 502, JSON.stringify(refused.json));
    const msg = JSON.stringify(refused.json);
    assert.match(
      msg,
      new RegExp(`RPC worker ${worker.endpoint.replace(/\./g, "\\.")} of model 'split' is not reachable`),
    );
    assert.match(msg, /gglib rpc-server/);
    const st = await status("split");
    assert.equal(st.state, "failed");
    assert.equal(st.failures, 1);
    assert.match(st.lastError ?? "", /not reachable/);
    assert.equal(st.rpc?.workers[0]?.state, "unreachable");
    const cooling = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body("split"),
    });
    assert.equal(cooling.status, 503);
    assert.ok(Number(cooling.headers.get("retry-after")) >= 1);
    await cooling.text();

    // the local model is untouched
    assert.equal((await chat("local")).status, 200);

    // the worker comes back on the same address: after the cooldown the model loads and answers again
    await worker.stop();
    worker = await startRpcWorker({ host: net.hosts[0]!, port: worker.port, via: "gglib" });
    const back = await waitFor(async () => (await chat("split")).status === 200, 30_000, 500);
    assert.ok(back, "the split model serves again once its worker is back");
  });
});
