// A config model `path: hf:<user>/<repo>:<quant>` that is not in the Hugging Face cache: the proxy (in-process,
// an in-memory runner) fetches it from the local fake hub into the hub cache layout and reloads, after which the
// entry runs the cached file with its own settings; a repo the hub does not have is retried after a delay, then
// given up (never a loop), and the rest of the proxy is unaffected.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProxy } from "../../src/proxy/index.js";
import type { MemorySnapshot, SystemProbe } from "../../src/system/types.js";
import { encodeGguf } from "../support/gguf-writer.js";
import { startFakeHub } from "../support/fake-hub.js";
import { FakeRunner } from "../support/fake-runner.js";
import { waitFor } from "../support/procs.js";
import { tinyModelDocument } from "../support/tiny-models.js";

const GIB = 1024 ** 3;
const box: MemorySnapshot = {
  ram: { totalBytes: 16 * GIB, availableBytes: 8 * GIB, source: "proc-meminfo" },
  gpus: [],
  takenAt: 0,
};
const probe: SystemProbe = { probe: () => Promise.reject(new Error("not used")), memory: async () => box };

void test("hf: models of the config are fetched into the hub cache, then served; a missing repo is given up", async (t) => {
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
  const proxy = await startProxy({
    configPath: config,
    watchConfig: false,
    port: 0,
    memoryBudget: "8GiB",
    runner,
    probe,
    stores: { "hf-cache": [cache] },
    pull: { hubUrl: hub.url, env: {} },
    hfRetryDelaysMs: [50],
    storesDebounceMs: 50,
    log: (l) => logs.push(l),
  });
  t.after(() => proxy.close(1_000));
  assert.ok(proxy.report.warnings.some((w) => /config model "tiny": .*not in the Hugging Face cache/.test(w)));
  const link = join(cache, "models--test-user--Tiny-GGUF", "snapshots", "d".repeat(40), "Tiny-Q8_0.gguf");
  const tiny = () => proxy.controller.catalog().find((m) => m.name === "tiny");
  assert.ok(await waitFor(() => tiny()?.entry.path === link, 10_000, 50), logs.join("\n"));
  assert.equal(tiny()!.entry.settings.ctx, 1024);
  assert.ok(
    await waitFor(
      () => logs.some((l) => /hf:test-user\/Absent-GGUF:Q4_K_M: fetch failed .*gave up after 2 tries/.test(l)),
      10_000,
      50,
    ),
    logs.join("\n"),
  );
  assert.ok(
    logs.some((l) => /Absent-GGUF:Q4_K_M: fetch failed \(.*\); retrying in 0 s/.test(l)),
    logs.join("\n"),
  );
  // no loop: after giving up, nothing more is tried
  const fetches = logs.filter((l) => /fetching/.test(l)).length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(logs.filter((l) => /fetching/.test(l)).length, fetches);
  // the load runs the cached file (llama-server gets the snapshot link) with the entry's settings
  await proxy.controller.load("tiny");
  const started = runner.starts.at(-1)!;
  assert.equal(started.modelPath, link);
  assert.equal(started.contextSize, 1024);
});
