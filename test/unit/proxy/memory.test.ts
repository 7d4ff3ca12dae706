// The proxy's memory: a model's estimate, the auto budget, measured use.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { autoBudget, estimateModel, parseComputeApps, parseMemoryLog } from "../../../src/proxy/memory.js";
import { budgetFromSnapshot, estimateMemory } from "../../../src/models/estimator.js";
import { readModelMetadata } from "../../../src/gguf/reader.js";
import type { MemorySnapshot } from "../../../src/system/types.js";
import { writeTinyModel } from "../../support/tiny-models.js";

describe("proxy memory", () => {
  test("a model's estimate is the one estimator's (src/models/estimator.ts); an unreadable file counts by its size", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-est-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = await writeTinyModel(dir, { name: "est", kind: "chat" });
    const meta = await readModelMetadata(path);
    const e = await estimateModel({ files: [path], ctx: 1024, cacheTypeK: "q8_0" });
    const one = estimateMemory({ metadata: meta, fileBytes: meta.totalBytes, ctx: 1024, cacheTypeK: "q8_0" });
    assert.equal(e.bytes, one.totalBytes);
    assert.equal(e.kvBytes, one.kvBytes);
    assert.equal(e.ctx, 1024);
    const junk = join(dir, "junk.gguf");
    writeFileSync(junk, Buffer.alloc(10 * 1024 * 1024));
    const j = await estimateModel({ files: [junk] });
    assert.equal(j.bytes, estimateMemory({ metadata: {}, fileBytes: 10 * 1024 * 1024 }).totalBytes);
    assert.ok(j.weightsBytes === 10 * 1024 * 1024 && j.bytes > j.weightsBytes);
  });

  test("the auto budget is the budget `gglib models fit` reports for the same machine (one headroom policy)", async () => {
    const GiB = 1024 ** 3;
    const probe = (snap: MemorySnapshot) => ({ memory: async () => snap });
    const cpu: MemorySnapshot = {
      ram: { totalBytes: 16 * GiB, availableBytes: 8 * GiB, source: "proc-meminfo" },
      gpus: [],
      takenAt: 0,
    };
    assert.equal((await autoBudget(probe(cpu))).bytes, budgetFromSnapshot(cpu).hostBytes);
    const gpu: MemorySnapshot = {
      ...cpu,
      gpus: [
        { index: 0, vendor: "nvidia", name: "A", totalBytes: 24 * GiB, freeBytes: 20 * GiB, unifiedMemory: false },
        { index: 1, vendor: "nvidia", name: "B", totalBytes: 24 * GiB, freeBytes: 22 * GiB, unifiedMemory: false },
      ],
    };
    const g = await autoBudget(probe(gpu));
    assert.equal(g.bytes, budgetFromSnapshot(gpu).gpuBytes);
    assert.equal(g.gpu, true);
    // Apple Silicon: the GPU's share of unified memory, as `models fit` counts it (not all of the RAM)
    const mac: MemorySnapshot = {
      ram: { totalBytes: 32 * GiB, availableBytes: 24 * GiB, source: "sysctl" },
      gpus: [
        { index: 0, vendor: "apple", name: "Apple M2", totalBytes: 21 * GiB, freeBytes: 21 * GiB, unifiedMemory: true },
      ],
      takenAt: 0,
    };
    const m = await autoBudget(probe(mac));
    assert.equal(m.bytes, budgetFromSnapshot(mac).gpuBytes);
    assert.equal(m.gpu, false);
  });

  test("measured buffers from llama-server's -lv 4 log (fixture 09)", () => {
    const lines = [
      "+262ms E| 0.00.210.331 I load_tensors:   CPU_Mapped model buffer size =     7.97 MiB",
      "+270ms E| 0.00.218.002 I llama_context:        CPU  output buffer size =     0.49 MiB",
      "+271ms E| 0.00.219.120 I llama_kv_cache:        CPU KV buffer size =     1.00 MiB",
      "+272ms E| 0.00.219.410 I llama_kv_cache: size =    1.00 MiB (  2048 cells,   2 layers,  4/1 seqs), K (f16):    0.50 MiB, V (f16):    0.50 MiB",
      "+280ms E| 0.00.228.771 I sched_reserve:        CPU compute buffer size =     3.01 MiB",
    ];
    const bytes = parseMemoryLog(lines)!;
    // 7.97 model + 0.49 output + 1.00 KV + 3.01 compute MiB
    assert.ok(Math.abs(bytes / 1024 ** 2 - (7.97 + 0.49 + 1.0 + 3.01)) < 0.05, `${bytes / 1024 ** 2} MiB`);
    assert.equal(parseMemoryLog(["nothing here"]), undefined);
  });

  test("GPU memory of a process from nvidia-smi --query-compute-apps", () => {
    const text = "4242, 5120\n777, 100\n4242, 1024\n";
    assert.equal(parseComputeApps(text, 4242), 6144 * 1024 * 1024, "summed over GPUs");
    assert.equal(parseComputeApps(text, 1), undefined);
  });
});
