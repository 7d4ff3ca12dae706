import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import {
  adviseFit,
  budgetFromSnapshot,
  estimateMemory,
  KV_CACHE_BYTES,
  parseLlamaMemoryLog,
  type EstimatorModel,
} from "../../../src/models/estimator.js";
import type { MemorySnapshot } from "../../../src/system/types.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { readModelMetadata } from "../../../src/gguf/reader.js";
import { writeTinyModel } from "../../support/tiny-models.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const fx = (name: string) => readFileSync(join(import.meta.dirname, "..", "..", "fixtures", "system", name), "utf8");

/** tiny-a of the ground-truth captures: llama, 2 blocks, embd 64, ffn 128, 4 heads, 4 KV heads, 32k vocab, F16. */
const TINY_A: EstimatorModel = {
  blockCount: 2,
  embeddingLength: 64,
  feedForwardLength: 128,
  headCount: 4,
  headCountKv: 4,
  vocabSize: 32000,
  contextLength: 2048,
  totalBytes: 8357120,
};

/** An 8B Llama-3-like model at Q4_K_M: 32 blocks of 130 MiB, 8 KV heads of 128, 128k vocab. */
const LLAMA8B: EstimatorModel = {
  blockCount: 32,
  embeddingLength: 4096,
  feedForwardLength: 14336,
  headCount: 32,
  headCountKv: 8,
  vocabSize: 128256,
  contextLength: 131072,
  tensorBytes: 32 * 130 * MIB + 282 * MIB + 400 * MIB,
  layerBytes: Array.from({ length: 32 }, () => 130 * MIB),
  tokenEmbdBytes: 282 * MIB,
  outputBytes: 400 * MIB,
  otherBytes: 0,
  totalBytes: 32 * 130 * MIB + 682 * MIB + 8 * MIB,
};

function snapshot(gpuFree: number | undefined, ramAvail: number, unified = false): MemorySnapshot {
  return {
    ram: { totalBytes: ramAvail * 2, availableBytes: ramAvail, source: "proc-meminfo" },
    gpus:
      gpuFree === undefined
        ? []
        : [
            {
              index: 0,
              vendor: unified ? "apple" : "nvidia",
              name: unified ? "Apple M2 Pro GPU" : "RTX 4090",
              totalBytes: gpuFree,
              freeBytes: gpuFree,
              unifiedMemory: unified,
            },
          ],
    takenAt: 0,
  };
}

void describe("estimateMemory", () => {
  void test("tiny-a with llama-server's defaults: the buffers the real server printed (09-memory capture)", () => {
    const e = estimateMemory({ metadata: TINY_A });
    const real = parseLlamaMemoryLog(fx("llama-server-memory-default-lv4.txt").split("\n"));
    assert.equal(e.ctx, 2048);
    assert.equal(e.kvBytes, real.kvBytes, "KV: 2 layers × 4 heads × 16 × 2048 cells × 2 bytes × (K+V) = 1 MiB");
    assert.ok(Math.abs(e.outputBytes - real.outputBytes!) < 0.006 * MIB, "output: 4 slots × 32000 × 4 bytes");
    assert.ok(Math.abs(e.weightsBytes - real.modelBytes!) < 0.006 * MIB);
    assert.ok(
      Math.abs(e.computeBytes - real.computeBytes!) / real.computeBytes! < 0.05,
      `${e.computeBytes} vs ${real.computeBytes}`,
    );
    assert.equal(e.gpuBytes, 0);
    assert.equal(e.hostBytes, e.totalBytes);
  });

  void test("KV scales with the cache type's bytes per element and is padded to 256 cells", () => {
    const f16 = estimateMemory({ metadata: LLAMA8B, ctx: 8192 });
    assert.equal(f16.kvBytes, 32 * 8 * 128 * 8192 * 2 * 2);
    assert.equal(f16.kvBytesPerToken, 32 * 8 * 128 * 2 * 2);
    const q8 = estimateMemory({ metadata: LLAMA8B, ctx: 8192, cacheTypeK: "q8_0", cacheTypeV: "q8_0" });
    assert.equal(q8.kvBytes, 32 * 8 * 128 * 8192 * 2 * KV_CACHE_BYTES.q8_0);
    assert.ok(Math.abs(q8.kvBytes / f16.kvBytes - 34 / 64) < 1e-9);
    const odd = estimateMemory({ metadata: LLAMA8B, ctx: 1000 });
    assert.equal(odd.kvCells, 1024);
    assert.equal(odd.kvBytes, 32 * 8 * 128 * 1024 * 2 * 2);
  });

  void test("ctx defaults to the trained context; per-layer KV heads are honoured", () => {
    assert.equal(estimateMemory({ metadata: LLAMA8B }).ctx, 131072);
    const hybrid = estimateMemory({
      metadata: { ...TINY_A, blockCount: 4, headCountKvPerLayer: [0, 0, 0, 4] },
      ctx: 2048,
    });
    assert.equal(hybrid.kvBytes, 4 * 16 * 2048 * 2 * 2, "only the attention layer has a KV cache");
  });

  void test("-ngl counts the output head first (as llama.cpp does), then blocks from the top; the input embedding stays on the host", () => {
    const none = estimateMemory({ metadata: LLAMA8B, ctx: 8192, gpuLayers: 0 });
    const head = estimateMemory({ metadata: LLAMA8B, ctx: 8192, gpuLayers: 1 });
    const part = estimateMemory({ metadata: LLAMA8B, ctx: 8192, gpuLayers: 21 });
    const all = estimateMemory({ metadata: LLAMA8B, ctx: 8192, gpuLayers: -1 });
    assert.equal(none.gpuBytes, 0);
    assert.equal(head.outputOnGpu, true);
    assert.equal(head.gpuBlocks, 0);
    assert.equal(head.gpu.weights, 400 * MIB);
    assert.equal(head.gpu.kv, 0);
    assert.equal(part.gpuBlocks, 20);
    assert.equal(part.gpu.weights, 20 * 130 * MIB + 400 * MIB);
    assert.equal(part.gpu.kv, (20 / 32) * none.kvBytes);
    assert.equal(all.gpu.weights, 32 * 130 * MIB + 400 * MIB);
    assert.equal(all.host.weights, 282 * MIB);
    assert.equal(all.gpuLayers, 33);
    assert.equal(all.gpuBlocks, 32);
    assert.ok(all.host.compute < none.host.compute, "full offload leaves only a staging buffer on the host");
    assert.equal(
      estimateMemory({ metadata: LLAMA8B, gpuLayers: 99 }).gpuLayers,
      33,
      "more than n_layer+1 = everything",
    );
  });

  void test("flash attention on the GPU only for supported head sizes (the tiny models' 16 falls back to full attention)", () => {
    const tinyGpu = estimateMemory({ metadata: TINY_A, ctx: 2048, gpuLayers: -1 });
    const tinyGpuFa = estimateMemory({ metadata: TINY_A, ctx: 2048, gpuLayers: -1, flashAttention: true });
    assert.ok(tinyGpu.gpu.compute > tinyGpuFa.gpu.compute, "head size 16: no flash attention on the GPU");
    const big = estimateMemory({ metadata: LLAMA8B, ctx: 2048, gpuLayers: -1 });
    const bigFa = estimateMemory({ metadata: LLAMA8B, ctx: 2048, gpuLayers: -1, flashAttention: true });
    assert.equal(big.gpu.compute, bigFa.gpu.compute, "head size 128: flash attention");
  });

  void test("explicit --parallel without a unified cache: the attention mask spans ctx / slots", () => {
    const unified = estimateMemory({ metadata: LLAMA8B, ctx: 8192 });
    const split = estimateMemory({ metadata: LLAMA8B, ctx: 8192, parallel: 4 });
    assert.equal(unified.kvBytes, split.kvBytes, "-c is the total either way");
    assert.ok(split.computeBytes < unified.computeBytes);
  });

  void test("without tensor sizes, the file size is spread over the blocks (property: parts add up)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.integer({ min: -1, max: 90 }),
        (layers, size, ngl) => {
          const e = estimateMemory({
            metadata: { blockCount: layers, totalBytes: size, embeddingLength: 512, headCount: 8 },
            ctx: 512,
            gpuLayers: ngl,
          });
          assert.ok(Math.abs(e.weightsBytes - size) <= 2);
          assert.equal(e.totalBytes, e.gpuBytes + e.hostBytes);
          assert.equal(e.gpuBytes, e.gpu.weights + e.gpu.kv + e.gpu.compute + e.gpu.mmproj);
        },
      ),
    );
  });

  void test("more context never needs less memory (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 1, max: 200_000 }), (a, b) => {
        const [lo, hi] = a < b ? [a, b] : [b, a];
        assert.ok(
          estimateMemory({ metadata: LLAMA8B, ctx: lo }).totalBytes <=
            estimateMemory({ metadata: LLAMA8B, ctx: hi }).totalBytes,
        );
      }),
    );
  });
});

void describe("adviseFit", () => {
  void test("a 16 GiB GPU: everything offloaded at 8k; the trained 128k (16 GiB of KV) does not fit fully and the largest context is found", () => {
    const budget = budgetFromSnapshot(snapshot(16 * GIB, 60 * GIB));
    assert.equal(budget.gpuBytes, 15 * GIB);
    const at8k = adviseFit({ metadata: LLAMA8B, ctx: 8192 }, budget);
    assert.equal(at8k.fits, true);
    assert.equal(at8k.offload, "full");
    assert.equal(at8k.gpuLayers, -1);
    assert.match(at8k.messages[0]!, /^Fits at 8192 tokens: .* on RTX 4090 \(all 32 layers\)/);
    const trained = adviseFit({ metadata: LLAMA8B }, budget);
    assert.equal(trained.offload, "partial");
    assert.ok(trained.maxCtxFullGpu! > 8192 && trained.maxCtxFullGpu! < 131072);
    assert.equal(trained.maxCtxFullGpu! % 256, 0);
    const atMax = estimateMemory({ metadata: LLAMA8B, ctx: trained.maxCtxFullGpu!, gpuLayers: -1 });
    const above = estimateMemory({ metadata: LLAMA8B, ctx: trained.maxCtxFullGpu! + 256, gpuLayers: -1 });
    assert.ok(
      atMax.gpuBytes <= budget.gpuBytes && above.gpuBytes > budget.gpuBytes,
      "the largest full-GPU context is exact to 256 tokens",
    );
  });

  void test("an 8 GiB GPU: partial offload with as many layers as fit", () => {
    const budget = budgetFromSnapshot(snapshot(8 * GIB, 32 * GIB));
    const a = adviseFit({ metadata: LLAMA8B, ctx: 32768 }, budget);
    assert.equal(a.offload, "partial");
    assert.ok(a.gpuLayers > 0 && a.gpuLayers < 32);
    assert.ok(a.estimate.gpuBytes <= budget.gpuBytes!);
    assert.ok(
      estimateMemory({ metadata: LLAMA8B, ctx: 32768, gpuLayers: a.gpuLayers + 1 }).gpuBytes > budget.gpuBytes!,
    );
    assert.ok(a.messages.some((m) => /layers on RTX 4090 .* the rest on the CPU/.test(m)));
  });

  void test("CPU only: fits or not by RAM, with the largest context stated", () => {
    const small = budgetFromSnapshot(snapshot(undefined, 9 * GIB));
    const a = adviseFit({ metadata: LLAMA8B }, small);
    assert.equal(a.fits, false);
    assert.equal(a.offload, "none");
    assert.match(a.messages[0]!, /^Does not fit at 131072 tokens/);
    assert.ok(a.maxCtx! > 0 && a.maxCtx! < 131072);
    assert.ok(a.messages.some((m) => m.includes(`Use --ctx ${a.maxCtx} or less`)));
    const tiny = budgetFromSnapshot(snapshot(undefined, 1.5 * GIB));
    const none = adviseFit({ metadata: LLAMA8B }, tiny);
    assert.equal(none.maxCtx, undefined);
    assert.ok(none.messages.some((m) => /Even 256 tokens do not fit/.test(m)));
  });

  void test("Apple unified memory: all layers on the GPU, one pool", () => {
    const b = budgetFromSnapshot(snapshot(20 * GIB, 28 * GIB, true));
    assert.equal(b.unified, true);
    const a = adviseFit({ metadata: LLAMA8B, ctx: 16384 }, b);
    assert.equal(a.offload, "full");
    assert.equal(a.fits, true);
  });

  void test("a quantized cache on a model whose head size is not a multiple of 32 is flagged", () => {
    const a = adviseFit({ metadata: TINY_A, cacheTypeK: "q8_0" }, budgetFromSnapshot(snapshot(undefined, 8 * GIB)));
    assert.ok(
      a.messages.some((m) =>
        /K cache type q8_0 needs a head size that is a multiple of 32; this model's is 16/.test(m),
      ),
    );
  });

  void test("a container limit caps the RAM budget", () => {
    const snap = snapshot(undefined, 60 * GIB);
    snap.ram.cgroupLimitBytes = 4 * GIB;
    assert.equal(budgetFromSnapshot(snap).hostBytes, 3 * GIB);
  });
});

void describe("parseLlamaMemoryLog", () => {
  void test("the CPU build's lines (recorded): mmap and --no-mmap name the model buffer differently", () => {
    const a = parseLlamaMemoryLog(fx("llama-server-memory-default-lv4.txt").split("\n"));
    assert.equal(a.modelBytes, Math.round(7.97 * MIB));
    assert.equal(a.kvBytes, 1 * MIB);
    assert.equal(a.computeBytes, Math.round(3.01 * MIB));
    assert.equal(a.outputBytes, Math.round(0.49 * MIB));
    assert.equal(a.gpuBytes, 0);
    assert.equal(a.totalBytes, a.hostBytes);
    assert.deepEqual(Object.keys(a.buffers).sort(), ["CPU KV", "CPU compute", "CPU output", "CPU_Mapped model"]);
    const b = parseLlamaMemoryLog(fx("llama-server-memory-no-mmap-lv4.txt").split("\n"));
    assert.deepEqual(Object.keys(b.buffers).sort(), ["CPU KV", "CPU compute", "CPU model", "CPU output"]);
  });

  void test("CUDA partial offload: GPU and host split, CUDA_Host counts as host", () => {
    const m = parseLlamaMemoryLog(fx("llama-server-memory-cuda-partial.txt").split("\n"));
    assert.equal(m.modelBytes, Math.round((2868.5 + 4685.3) * MIB));
    assert.equal(m.kvBytes, 1024 * MIB);
    assert.equal(m.computeBytes, Math.round((669.48 + 24.01) * MIB));
    assert.equal(m.gpuBytes, Math.round((2868.5 + 640 + 669.48) * MIB));
    assert.equal(m.hostBytes, Math.round((4685.3 + 1.96 + 384 + 24.01) * MIB));
  });

  void test("a reload prints the buffers again: they count once; no lines → empty", () => {
    const lines = fx("llama-server-memory-default-lv4.txt").split("\n");
    assert.deepEqual(parseLlamaMemoryLog([...lines, ...lines]), parseLlamaMemoryLog(lines));
    assert.deepEqual(parseLlamaMemoryLog(["I srv  llama_server: model loaded"]), { buffers: {} });
    const old = parseLlamaMemoryLog([
      "llm_load_tensors:        CPU buffer size =  4437.81 MiB",
      "llama_memory_recurrent:        CPU RS buffer size =    16.00 MiB",
    ]);
    assert.equal(old.modelBytes, Math.round(4437.81 * MIB));
    assert.equal(old.kvBytes, 16 * MIB, "recurrent state counts with the KV cache");
  });
});

/**
 * The llama.cpp build the rig uses, compiled with CUDA and run on an NVIDIA H100 (logs recorded at -lv 4 and kept
 * in test/fixtures/system/llama-server-cuda-h100-*.txt). "hd128" is a 2-block model with 128-wide heads (flash
 * attention runs on the GPU); the tiny think model has 16-wide heads (CUDA has no kernel: full attention).
 */
const HD128: EstimatorModel = {
  blockCount: 2,
  embeddingLength: 512,
  feedForwardLength: 1280,
  headCount: 4,
  headCountKv: 2,
  vocabSize: 4000,
  contextLength: 32768,
  tensorBytes: 2 * 5509120 + 4096000 + 4098048,
  layerBytes: [5509120, 5509120],
  tokenEmbdBytes: 4096000,
  outputBytes: 4098048,
  otherBytes: 0,
};

void describe("estimateMemory vs llama-server's buffers on a CUDA GPU (recorded on an H100)", () => {
  const cases = [
    { file: "hd128-full-ngl99-c4096", meta: () => HD128, ngl: -1, ctx: 4096, gpuTol: 0.05, totalTol: 0.05 },
    // Partial: llama.cpp's CPU_Mapped buffer is the file range around the host tensors, which here spans the
    // GPU-resident output head too (mapped, never read): the host side reads 3.9 MiB high, hence 10 %.
    { file: "hd128-partial-ngl2-c4096", meta: () => HD128, ngl: 2, ctx: 4096, gpuTol: 0.05, totalTol: 0.1 },
    { file: "hd128-ngl0-c4096", meta: () => HD128, ngl: 0, ctx: 4096, gpuTol: 0.05, totalTol: 0.05, gpuBackend: true },
    { file: "tinythink-ngl99-c2048", meta: "tiny" as const, ngl: -1, ctx: 2048, gpuTol: 0.05, totalTol: 0.05 },
    { file: "tinythink-ngl2-c2048", meta: "tiny" as const, ngl: 2, ctx: 2048, gpuTol: 0.05, totalTol: 0.05 },
  ];
  let tinyThink: EstimatorModel | undefined;
  for (const c of cases) {
    void test(`${c.file}: GPU part within ${c.gpuTol * 100} %, total within ${c.totalTol * 100} %`, async (t) => {
      let meta: EstimatorModel;
      if (c.meta === "tiny") {
        if (!tinyThink) {
          const dir = mkdtempSync(join(tmpdir(), "gglib-est-"));
          try {
            tinyThink = await readModelMetadata(
              await writeTinyModel(dir, { name: "tiny-think", kind: "think", layers: 2 }),
            );
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
        meta = tinyThink;
      } else meta = c.meta();
      const real = parseLlamaMemoryLog(fx(`llama-server-cuda-h100-${c.file}.txt`).split("\n"));
      const e = estimateMemory({
        metadata: meta,
        ctx: c.ctx,
        gpuLayers: c.ngl,
        ...(c.gpuBackend ? { gpuBackend: true } : {}),
      });
      const err = (a: number, b: number) => (a - b) / b;
      t.diagnostic(
        `GPU est ${(e.gpuBytes / MIB).toFixed(2)} / real ${(real.gpuBytes! / MIB).toFixed(2)} MiB (${(err(e.gpuBytes, real.gpuBytes!) * 100).toFixed(1)} %); total est ${(e.totalBytes / MIB).toFixed(2)} / real ${(real.totalBytes! / MIB).toFixed(2)} MiB (${(err(e.totalBytes, real.totalBytes!) * 100).toFixed(1)} %)`,
      );
      assert.ok(Math.abs(err(e.gpuBytes, real.gpuBytes!)) <= c.gpuTol, `GPU ${e.gpuBytes} vs ${real.gpuBytes}`);
      assert.ok(
        Math.abs(err(e.totalBytes, real.totalBytes!)) <= c.totalTol,
        `total ${e.totalBytes} vs ${real.totalBytes}`,
      );
      assert.ok(Math.abs(e.kvBytes - real.kvBytes!) < 0.006 * MIB, "KV exact");
    });
  }
});
