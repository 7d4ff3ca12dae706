/**
 * Sliding-window and recurrent layers in the estimate. The expected buffer sizes are what the rig's llama-server
 * (80fb11a, CPU) printed at -lv 4 for the rig's tiny gemma3 and granitehybrid models (test/support/archs), as
 * llama.cpp's log rounds them (0.01 MiB): the formulas are llama-kv-cache-iswa.cpp's and
 * llama-memory-recurrent.cpp's, so KV and RS match to the byte the log can show.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  estimateMemory,
  headSizes,
  kvBytesPerCellByLayer,
  mambaPeakFloatsPerToken,
  ownKvLayers,
  parseLlamaMemoryLog,
  recurrentLayers,
  recurrentStateBytesPerLayer,
  swaLayers,
  type EstimatorModel,
} from "../../../src/models/estimator.js";

const MIB = 1024 * 1024;

/** The rig's gemma3: 6 blocks (5 sliding, window 128, 1 global), embd 64, 4 heads of 16, 2 KV heads. */
const GEMMA3: EstimatorModel = {
  architecture: "gemma3",
  blockCount: 6,
  embeddingLength: 64,
  feedForwardLength: 128,
  headCount: 4,
  headCountKv: 2,
  keyLength: 16,
  valueLength: 16,
  slidingWindow: 128,
  slidingWindowPattern: 6,
  vocabSize: 420,
  contextLength: 8192,
  layerBytes: [74880, 74880, 74880, 74880, 74880, 74880],
  tokenEmbdBytes: 53760,
  outputBytes: 54016,
  otherBytes: 0,
  tensorBytes: 557056,
};

/** The rig's granitehybrid: 6 blocks, Mamba-2 in 4 (n_head_kv 0), attention in blocks 2 and 5. */
const GRANITE: EstimatorModel = {
  architecture: "granitehybrid",
  blockCount: 6,
  embeddingLength: 64,
  feedForwardLength: 128,
  headCount: 4,
  headCountKv: 2,
  headCountKvPerLayer: [0, 0, 2, 0, 0, 2],
  ssmConvKernel: 4,
  ssmInnerSize: 128,
  ssmStateSize: 16,
  ssmGroupCount: 1,
  ssmTimeStepRank: 8,
  vocabSize: 423,
  contextLength: 8192,
  layerBytes: [107744, 107744, 74240, 107744, 107744, 74240],
  tokenEmbdBytes: 54144,
  outputBytes: 54400,
  otherBytes: 0,
  tensorBytes: 688000,
};

/** The compute buffer is a fitted approximation (estimate.ts): within 1 % here. */
const nearCompute = (bytes: number, mib: number) =>
  assert.ok(
    Math.abs(bytes / MIB - mib) <= 0.01 * mib,
    `compute: ${(bytes / MIB).toFixed(4)} MiB, llama-server ${mib} MiB`,
  );

/** Within the log's two decimals. */
const near = (bytes: number, mib: number, what: string) =>
  assert.ok(Math.abs(bytes / MIB - mib) <= 0.006, `${what}: ${(bytes / MIB).toFixed(4)} MiB, llama-server ${mib} MiB`);

void describe("which layers slide or recur (llama.cpp's rules)", () => {
  void test("gemma3: every 6th layer global (set_swa_pattern), an array pattern per layer, none without a window", () => {
    assert.deepEqual(swaLayers({ architecture: "gemma3", blockCount: 7, slidingWindow: 512 }), [
      true,
      true,
      true,
      true,
      true,
      false,
      true,
    ]);
    assert.deepEqual(swaLayers({ architecture: "gpt-oss", blockCount: 4, slidingWindow: 128 }), [
      true,
      false,
      true,
      false,
    ]);
    assert.deepEqual(
      swaLayers({
        architecture: "gemma4",
        blockCount: 3,
        slidingWindow: 512,
        slidingWindowLayers: [true, false, true],
      }),
      [true, false, true],
    );
    assert.deepEqual(swaLayers({ architecture: "smallthinker", blockCount: 5, slidingWindow: 4096 }), [
      false,
      true,
      true,
      true,
      false,
    ]);
    assert.equal(swaLayers({ architecture: "gemma3", blockCount: 6 }), undefined);
    // a window on an architecture whose layout is not known here: counted at full context (the safe side)
    assert.equal(swaLayers({ architecture: "mystery", blockCount: 6, slidingWindow: 128 }), undefined);
  });

  void test("recurrent layers: n_head_kv 0 (granitehybrid), every 4th attention (qwen35), all (mamba2), none (llama)", () => {
    assert.deepEqual(recurrentLayers(GRANITE), [true, true, false, true, true, false]);
    assert.deepEqual(recurrentLayers({ architecture: "qwen35", blockCount: 8 }), [
      true,
      true,
      true,
      false,
      true,
      true,
      true,
      false,
    ]);
    assert.deepEqual(recurrentLayers({ architecture: "qwen35", blockCount: 3, recurrentLayers: [false, true, true] }), [
      false,
      true,
      true,
    ]);
    assert.deepEqual(recurrentLayers({ architecture: "mamba2", blockCount: 2 }), [true, true]);
    assert.deepEqual(
      recurrentLayers({
        architecture: "nemotron_h",
        blockCount: 3,
        headCountKvPerLayer: [0, 0, 8],
        feedForwardLengthPerLayer: [0, 4096, 0],
      }),
      [true, false, false],
      "a nemotron_h block with a feed-forward and no KV heads is an MLP block, not a recurrent one",
    );
    assert.equal(recurrentLayers({ architecture: "llama", blockCount: 2 }), undefined);
  });

  void test("a Mamba-2 layer's state per sequence: (d_conv−1)·(d_inner + 2·n_group·d_state) + d_state·d_inner floats", () => {
    assert.equal(recurrentStateBytesPerLayer(GRANITE), (3 * (128 + 32) + 16 * 128) * 4);
    assert.equal(recurrentStateBytesPerLayer({ architecture: "rwkv7" }), undefined);
    // LFM2's short convolution: r = n_embd · (l_cache − 1), no SSM state
    assert.equal(recurrentStateBytesPerLayer({ architecture: "lfm2", embeddingLength: 64, shortconvLCache: 3 }), 512);
    assert.equal(
      mambaPeakFloatsPerToken({ ...GRANITE, architecture: "qwen35", blockCount: 4 }),
      undefined,
      "Gated DeltaNet has the same keys but not Mamba-2's graph",
    );
    assert.equal(mambaPeakFloatsPerToken({ ...GRANITE, headCountKvPerLayer: undefined, headCountKv: 2 }), undefined);
  });
});

void describe("estimateMemory with sliding-window and recurrent layers vs llama-server's log", () => {
  void test("gemma3 at the trained 8192, 4 slots: full 8192 cells for 1 layer, 1024 for 5 (128·4 + 512)", () => {
    const e = estimateMemory({ metadata: GEMMA3 });
    near(e.kvBytes, 1.62, "KV (0.50 + 1.12: two `CPU KV` lines)");
    nearCompute(e.computeBytes, 10.14);
    near(e.weightsBytes, 0.53, "model");
    assert.deepEqual(e.swa, {
      window: 128,
      layers: 5,
      cells: 1024,
      full: false,
      fullExtraBytes: 5 * 128 * (8192 - 1024),
    });
    assert.equal(e.kvBytesPerToken, 128, "only the global layer grows with the context");
    assert.equal(e.recurrentBytes, 0);
  });

  void test("gemma3 with --swa-full: every layer 8192 cells, and swa.fullExtraBytes was the difference", () => {
    const base = estimateMemory({ metadata: GEMMA3 });
    const e = estimateMemory({ metadata: GEMMA3, swaFull: true });
    near(e.kvBytes, 6.0, "KV");
    nearCompute(e.computeBytes, 17.14);
    assert.equal(e.kvBytes - base.kvBytes, base.swa?.fullExtraBytes);
    assert.deepEqual(e.swa, {
      window: 128,
      layers: 5,
      cells: 8192,
      full: true,
      fullExtraBytes: 5 * 128 * (8192 - 1024),
    });
  });

  void test("gemma3 -c 4096 -np 2 --no-kv-unified: 768 SWA cells per stream (pad256(128 + 512)); -c 1000: no saving", () => {
    const np2 = estimateMemory({ metadata: GEMMA3, ctx: 4096, parallel: 2, kvUnified: false });
    near(np2.kvBytes, 0.5 + 0.94, "KV");
    nearCompute(np2.computeBytes, 3.89);
    assert.equal(np2.swa?.cells, 1536);
    const small = estimateMemory({ metadata: GEMMA3, ctx: 1000 });
    near(small.kvBytes, 0.75, "KV (the log: 0.12 + 0.62, each rounded from 0.125 and 0.625)");
    assert.equal(small.swa?.full, true, "the window cache is as big as the context already");
    assert.equal(small.swa?.fullExtraBytes, 0);
  });

  void test("granitehybrid: KV for 2 attention layers, RS 4 layers × 4 slots, compute with the Mamba-2 peak", () => {
    const e = estimateMemory({ metadata: GRANITE });
    near(e.kvBytes - e.recurrentBytes, 2.0, "KV");
    near(e.recurrentBytes, 0.15, "RS");
    nearCompute(e.computeBytes, 10.09);
    assert.equal(e.swa, undefined);
    const np2 = estimateMemory({ metadata: GRANITE, ctx: 4096, parallel: 2, kvUnified: false });
    near(np2.kvBytes - np2.recurrentBytes, 1.0, "KV");
    near(np2.recurrentBytes, 0.08, "RS");
    nearCompute(np2.computeBytes, 4.07);
  });

  void test("lfm2: KV for 2 attention layers, RS n_embd × (l_cache − 1) floats for 4 conv layers × 4 slots", () => {
    const LFM2: EstimatorModel = {
      architecture: "lfm2",
      contextLength: 8192,
      blockCount: 6,
      embeddingLength: 64,
      feedForwardLength: 128,
      headCount: 4,
      headCountKvPerLayer: [0, 0, 2, 0, 0, 2],
      vocabSize: 421,
      shortconvLCache: 3,
    };
    const e = estimateMemory({ metadata: LFM2 });
    assert.equal(e.recurrentBytes, 4 * 4 * 64 * 2 * 4, "the log: RS 0.01 MiB, R (f32) 0.01, S 0.00");
    near(e.kvBytes - e.recurrentBytes, 2.0, "KV");
    assert.equal(e.kvBytesPerToken, 2 * 2 * 2 * 16 * 2, "K+V of the 2 attention layers only");
  });
});

/**
 * The rig's gemma4 (test/support/archs/gemma4.ts): 6 blocks, sliding pattern [T,T,T,F,T,F] (window 128), 16-wide
 * heads × 2 KV heads on sliding layers, 32-wide × 1 on global ones, the last 2 layers share the KV of layers 2, 3.
 */
const GEMMA4: EstimatorModel = {
  architecture: "gemma4",
  blockCount: 6,
  embeddingLength: 64,
  feedForwardLength: 128,
  headCount: 4,
  headCountKv: 2,
  headCountKvPerLayer: [2, 2, 2, 1, 2, 1],
  keyLength: 32,
  valueLength: 32,
  keyLengthSwa: 16,
  valueLengthSwa: 16,
  sharedKvLayers: 2,
  slidingWindow: 128,
  slidingWindowLayers: [true, true, true, false, true, false],
  vocabSize: 430,
  contextLength: 8192,
};

void describe("gemma4: per-layer head sizes and KV-sharing layers (llama.cpp's gemma4 rules)", () => {
  void test("sliding layers use key_length_swa, global ones key_length; the last shared_kv_layers keep no KV", () => {
    assert.deepEqual(
      headSizes(GEMMA4).map((h) => h.k),
      [16, 16, 16, 32, 16, 32],
    );
    assert.deepEqual(ownKvLayers(GEMMA4), [true, true, true, true, false, false]);
    // K + V, f16: 2 heads × 16 × 2 B × 2 on sliding layers, 1 × 32 × 2 B × 2 on the global one, 0 when shared
    assert.deepEqual(kvBytesPerCellByLayer(GEMMA4), [128, 128, 128, 128, 0, 0]);
    assert.equal(ownKvLayers({ ...GEMMA4, sharedKvLayers: undefined }), undefined, "no key: every layer has its own");
    assert.equal(ownKvLayers({ ...GEMMA4, architecture: "gemma3" }), undefined, "only gemma3n / gemma4 share");
  });

  void test("at the trained 8192, 4 slots: 8192 cells for the global layer, 1024 for 3 sliding ones (llama-server: 1.00 + 0.38 MiB)", () => {
    const e = estimateMemory({ metadata: GEMMA4 });
    near(e.kvBytes, 1.38, "KV");
    assert.equal(e.kvBytesPerToken, 128, "only the global layer with its own cache grows with the context");
    assert.deepEqual(e.swa, {
      window: 128,
      layers: 3,
      cells: 1024,
      full: false,
      fullExtraBytes: 3 * 128 * (8192 - 1024),
    });
    const full = estimateMemory({ metadata: GEMMA4, swaFull: true, ctx: 4096 });
    near(full.kvBytes, 2.0, "KV with --swa-full -c 4096");
  });

  void test("wide per-layer embeddings: the graph's input phase (4 × n_embd_per_layer × n_layer + 2 × n_embd per token) is the peak", () => {
    // llama-server's compute buffer for the rig's gemma4 generated with other widths (8192 + 1024 mask cells)
    const wide = (embd: number, perLayer: number) =>
      estimateMemory({ metadata: { ...GEMMA4, embeddingLength: embd, embeddingLengthPerLayer: perLayer } });
    nearCompute(wide(64, 64).computeBytes, 12.27);
    nearCompute(wide(128, 96).computeBytes, 14.02);
    nearCompute(wide(64, 32).computeBytes, 10.77);
    // without per-layer embeddings: the other models' terms alone
    nearCompute(wide(64, 0).computeBytes, 10.14);
  });
});

void describe("parseLlamaMemoryLog with two caches", () => {
  const load = [
    "load_tensors:   CPU_Mapped model buffer size =     0.53 MiB",
    "llama_context:        CPU  output buffer size =     0.01 MiB",
    "llama_kv_cache_iswa: creating non-SWA KV cache, size = 8192 cells",
    "llama_kv_cache:        CPU KV buffer size =     0.50 MiB",
    "llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells",
    "llama_kv_cache:        CPU KV buffer size =     1.12 MiB",
    "llama_memory_recurrent:        CPU RS buffer size =     0.15 MiB",
    "sched_reserve:        CPU compute buffer size =    10.14 MiB",
  ];
  void test("the windowed and the full KV cache add up (and RS with them); a reload counts once", () => {
    const m = parseLlamaMemoryLog(load);
    assert.equal(m.kvBytes, Math.round((0.5 + 1.12 + 0.15) * MIB));
    assert.equal(m.totalBytes, Math.round((0.53 + 0.01 + 0.5 + 1.12 + 0.15 + 10.14) * MIB));
    assert.deepEqual(parseLlamaMemoryLog([...load, ...load]), m);
  });
});

describe("models llama.cpp gives no memory (encoders)", () => {
  test("a bert-family model has no KV cache at any context; a llama of the same shape has one", () => {
    const shape = {
      blockCount: 4,
      embeddingLength: 64,
      feedForwardLength: 128,
      headCount: 4,
      headCountKv: 4,
      vocabSize: 420,
      contextLength: 512,
      layerBytes: [50_000, 50_000, 50_000, 50_000],
      tokenEmbdBytes: 53_760,
      outputBytes: 0,
      otherBytes: 0,
      tensorBytes: 253_760,
    };
    for (const architecture of ["bert", "nomic-bert", "jina-bert-v2", "modern-bert", "gemma-embedding"]) {
      const e = estimateMemory({ metadata: { ...shape, architecture }, fileBytes: 260_000, ctx: 512 });
      assert.equal(e.kvBytes, 0, architecture);
      assert.equal(e.kvBytesPerToken, 0, architecture);
    }
    const llama = estimateMemory({ metadata: { ...shape, architecture: "llama" }, fileBytes: 260_000, ctx: 512 });
    assert.ok(llama.kvBytes > 0);
  });
});
