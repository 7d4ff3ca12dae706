// A config model `path: hf:<user>/<repo>:<quant>` that is not in the Hugging Face cache is fetched on first use:
// nothing at start; the first request starts the download from the local fake hub (throttled, so progress shows),
// a second concurrent request shares it, both streams see `: loading <model> NN%` comments and /api/events-style
// `progress` events with stage "download", then the entry runs the cached file with its own settings. A repo the
// hub does not have answers every waiter with a 502 naming the repo, a 503 during the cooldown, and is tried again
// only by a request after it (never in a loop). The proxy runs in-process with an in-memory runner whose
// "processes" answer through a small HTTP server standing in for llama-server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProxy } from "../../src/proxy/index.js";
import type { ProxyEvent } from "../../src/proxy/api-types.js";
import type { MemorySnapshot, SystemProbe } from "../../src/system/types.js";
import { encodeGguf } from "../support/gguf-writer.js";
import { startFakeHub } from "../support/fake-hub.js";
import { FakeRunner, type FakeUpstream } from "../support/fake-runner.js";
import { waitFor } from "../support/procs.js";
import { tinyModelDocument } from "../support/tiny-models.js";

const GIB = 1024 ** 3;
const box: MemorySnapshot = {
  ram: { totalBytes: 16 * GIB, availableBytes: 8 * GIB, source: "proc-meminfo" },
  gpus: [],
  takenAt: 0,
};
const probe: SystemProbe = { probe: () => Promise.reject(new Error("not used")), memory: async () => box };

/** Stands in for llama-server: health, and a streamed chat answer. */
async function chatServer(): Promise<FakeUpstream> {
  const server = createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"status":"ok"}');
      return;
    }
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "hi" } }] })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

const chat = (url: string, model: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hi" }] }),
  });

void test("hf: models of the config are fetched on first use, shared by their waiters, with progress; a missing repo fails clearly and is retried only after its cooldown", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-hf-fetch-"));
  const q8 = await encodeGguf(tinyModelDocument({ name: "tiny-q8", kind: "chat", seed: 2 }));
  const hub = await startFakeHub({
    repos: [{ id: "test-user/Tiny-GGUF", sha: "d".repeat(40), files: [{ path: "Tiny-Q8_0.gguf", content: q8 }] }],
  });
  t.after(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const cache = join(dir, "hub");
  mkdirSync(cache);
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      "models:",
      "  tiny:",
      "    path: hf:test-user/Tiny-GGUF:Q8_0",
      "    ctx: 1024",
      "  absent:",
      "    path: hf:test-user/Absent-GGUF:Q4_K_M",
      "",
    ].join("\n"),
  );
  const logs: string[] = [];
  const runner = new FakeRunner();
  runner.upstream = () => chatServer();
  const cooldownMs = 600;
  const proxy = await startProxy({
    configPath: config,
    watchConfig: false,
    port: 0,
    memoryBudget: "8GiB",
    runner,
    probe,
    stores: { "hf-cache": [cache] },
    pull: { hubUrl: hub.url, env: {} },
    hfRetryDelaysMs: [cooldownMs],
    storesDebounceMs: 50,
    log: (l) => logs.push(l),
  });
  t.after(() => proxy.close(1_000));
  assert.ok(proxy.report.warnings.some((w) => /config model "tiny": .*not in the Hugging Face cache/.test(w)));

  // nothing is fetched at start; the catalog lists the model as not downloaded yet
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(hub.requests.length, 0, JSON.stringify(hub.requests));
  assert.ok(!logs.some((l) => /fetching/.test(l)), logs.join("\n"));
  const list = (await (await fetch(`${proxy.url}/v1/models`)).json()) as {
    data: { id: string; meta?: { download?: { ref: string; downloaded: boolean; estimate: string } } }[];
  };
  const listed = list.data.find((d) => d.id === "tiny");
  assert.deepEqual(listed?.meta?.download, {
    ref: "hf:test-user/Tiny-GGUF:Q8_0",
    downloaded: false,
    estimate: "unknown until downloaded",
  });

  // two concurrent requests: one download, progress on both streams and on the events
  const events: ProxyEvent[] = [];
  const off = proxy.controller.on((e) => events.push(e));
  t.after(off);
  hub.faults.throttle = Math.max(2_000, Math.ceil(q8.length / 1.5)); // about 1.5 s for the file
  const [a, b] = await Promise.all([chat(proxy.url, "tiny"), chat(proxy.url, "tiny")]);
  // meanwhile /api/status says it is loading, at the download stage (the dashboard's progress bar)
  const during = proxy.controller.status().find((s) => s.name === "tiny");
  assert.equal(during?.state, "loading");
  assert.equal(during?.stage, "download");
  const [ta, tb] = await Promise.all([a.text(), b.text()]);
  hub.faults.throttle = undefined;
  for (const [res, text] of [
    [a, ta],
    [b, tb],
  ] as const) {
    assert.equal(res.status, 200, text);
    assert.match(text, /: loading tiny \d+%/, text);
    assert.doesNotMatch(text, /waiting for room/, text); // the download is the load's first stage
    assert.match(text, /"content":"hi"/, text);
    assert.match(text, /data: \[DONE\]/, text);
  }
  const pcts = [...ta.matchAll(/: loading tiny (\d+)%/g)].map((m) => Number(m[1]));
  assert.ok(
    pcts.some((p) => p > 0 && p < 100),
    `a percentage between 0 and 100 while downloading: ${pcts.join(",")}`,
  );
  // one download: one resolve (the hub's redirect) and one read of the blob
  assert.equal(hub.requests.filter((r) => r.server === "files").length, 1, JSON.stringify(hub.requests));
  assert.equal(hub.requests.filter((r) => /\/resolve\//.test(r.path)).length, 1, JSON.stringify(hub.requests));
  assert.equal(logs.filter((l) => /Tiny-GGUF:Q8_0: .*fetching/.test(l)).length, 1, logs.join("\n"));
  const downloads = events.filter(
    (e): e is Extract<ProxyEvent, { type: "progress" }> =>
      e.type === "progress" && e.model === "tiny" && e.stage === "download",
  );
  assert.ok(downloads.length >= 2, JSON.stringify(events));
  assert.equal(downloads.at(-1)!.value, 1);
  // one event per step, however many wait
  assert.equal(new Set(downloads.map((e) => e.value)).size, downloads.length, JSON.stringify(downloads));
  // the load runs the cached file (llama-server gets the snapshot link) with the entry's settings
  const link = join(cache, "models--test-user--Tiny-GGUF", "snapshots", "d".repeat(40), "Tiny-Q8_0.gguf");
  assert.equal(runner.starts.length, 1);
  assert.equal(runner.starts[0]!.modelPath, link);
  assert.equal(runner.starts[0]!.contextSize, 1024);
  const after = proxy.controller.catalog().find((m) => m.name === "tiny")!;
  assert.equal(after.download, undefined);
  assert.ok(after.estimate.bytes > 0);

  // a repo the hub does not have: 502 naming the repo and the cause, to every waiter
  const absentHits = () => hub.requests.filter((r) => r.path.includes("Absent-GGUF")).length;
  const [f1, f2] = await Promise.all([chat(proxy.url, "absent"), chat(proxy.url, "absent")]);
  for (const f of [f1, f2]) {
    const text = await f.text();
    // a stream that had to wait answers with its status first (200) and the error in the stream; else a 502
    assert.match(text, /test-user\/Absent-GGUF:Q4_K_M from the Hugging Face hub failed/, text);
    if (f.status !== 200) assert.equal(f.status, 502, text);
  }
  const tried = absentHits();
  assert.ok(tried > 0);
  const failedStatus = proxy.controller.status().find((s) => s.name === "absent");
  assert.equal(failedStatus?.state, "failed");
  assert.match(failedStatus?.lastError ?? "", /Absent-GGUF:Q4_K_M from the Hugging Face hub failed/);
  assert.equal(logs.filter((l) => /Absent-GGUF:Q4_K_M: .*fetching/.test(l)).length, 1, logs.join("\n"));
  // within the cooldown: a 503 with the cause and Retry-After, and nothing asked of the hub
  const nonStream = () =>
    fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "absent", messages: [{ role: "user", content: "hi" }] }),
    });
  const cooling = await nonStream();
  const coolingBody = (await cooling.json()) as { error: { message: string; code?: string; type?: string } };
  assert.equal(cooling.status, 503, JSON.stringify(coolingBody));
  assert.ok(cooling.headers.get("retry-after"));
  assert.match(coolingBody.error.message, /Absent-GGUF:Q4_K_M .*failed \(.+\); it is tried again/);
  assert.equal(absentHits(), tried);
  // no loop: without requests nothing is tried, even after the cooldown
  await new Promise((r) => setTimeout(r, cooldownMs + 300));
  assert.equal(absentHits(), tried);
  // the first request after the cooldown tries again (and fails the same clear way)
  const again = await nonStream();
  const againBody = (await again.json()) as { error: { message: string } };
  assert.equal(again.status, 502, JSON.stringify(againBody));
  assert.match(againBody.error.message, /test-user\/Absent-GGUF:Q4_K_M from the Hugging Face hub failed: /);
  assert.ok(absentHits() > tried);
  assert.equal(logs.filter((l) => /Absent-GGUF:Q4_K_M: .*fetching/.test(l)).length, 2, logs.join("\n"));
  // the other model kept serving
  const ok = await chat(proxy.url, "tiny");
  assert.equal(ok.status, 200);
  await ok.text();
});

void test("hf: models: `preload: true` fetches and loads at start; POST /models/load fetches on demand", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-hf-preload-"));
  const q8 = await encodeGguf(tinyModelDocument({ name: "tiny-q8", kind: "chat", seed: 2 }));
  const q4 = await encodeGguf(tinyModelDocument({ name: "tiny-q4", kind: "chat", seed: 3 }));
  const hub = await startFakeHub({
    repos: [
      { id: "test-user/Tiny-GGUF", sha: "d".repeat(40), files: [{ path: "Tiny-Q8_0.gguf", content: q8 }] },
      { id: "test-user/Other-GGUF", sha: "e".repeat(40), files: [{ path: "Other-Q4_K_M.gguf", content: q4 }] },
    ],
  });
  t.after(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const cache = join(dir, "hub");
  mkdirSync(cache);
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      "models:",
      "  early:",
      "    path: hf:test-user/Tiny-GGUF:Q8_0",
      "    preload: true",
      "  later:",
      "    path: hf:test-user/Other-GGUF:Q4_K_M",
      "",
    ].join("\n"),
  );
  const logs: string[] = [];
  const runner = new FakeRunner();
  const proxy = await startProxy({
    configPath: config,
    watchConfig: false,
    port: 0,
    memoryBudget: "8GiB",
    runner,
    probe,
    stores: { "hf-cache": [cache] },
    pull: { hubUrl: hub.url, env: {} },
    storesDebounceMs: 50,
    log: (l) => logs.push(l),
  });
  t.after(() => proxy.close(1_000));
  const early = join(cache, "models--test-user--Tiny-GGUF", "snapshots", "d".repeat(40), "Tiny-Q8_0.gguf");
  assert.ok(await waitFor(() => proxy.controller.isReady("early"), 10_000, 50), logs.join("\n"));
  assert.equal(runner.starts[0]!.modelPath, early);
  assert.ok(!hub.requests.some((r) => r.path.includes("Other-GGUF")), "only the preloaded model is fetched at start");
  const res = await fetch(`${proxy.url}/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "later" }),
  });
  assert.equal(res.status, 200, await res.text());
  assert.ok(proxy.controller.isReady("later"));
  assert.equal(
    runner.starts.at(-1)!.modelPath,
    join(cache, "models--test-user--Other-GGUF", "snapshots", "e".repeat(40), "Other-Q4_K_M.gguf"),
  );
});
