// The model card's architecture line: archFacts (src/models/arch-facts.ts) reads what each kind of layer keeps from
// the GGUF header by the memory estimate's rules, and archLine (web/src/context.ts) says it in one line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { archFacts } from "../../src/models/arch-facts.js";
import { archLine } from "../../web/src/context.js";

test("sliding-window layers from the architecture's default pattern (gemma3: every 6th global)", () => {
  const f = archFacts({ architecture: "gemma3", blockCount: 12, slidingWindow: 512 });
  assert.deepEqual(f, { name: "gemma3", layers: 12, swa: { layers: 10, window: 512 } });
  assert.equal(archLine(f), "gemma3 · 12 layers: 10 sliding-window (window 512) + 2 global");
});

test("a window without a known layout says no sliding-window layers (the estimate counts them all full)", () => {
  assert.deepEqual(archFacts({ architecture: "mystery", blockCount: 4, slidingWindow: 64 }), {
    name: "mystery",
    layers: 4,
  });
});

test("hybrid: recurrent layers where n_head_kv is 0 (granitehybrid), or every 4th attention (qwen35)", () => {
  const g = archFacts({ architecture: "granitehybrid", blockCount: 6, headCountKvPerLayer: [0, 0, 2, 0, 0, 2] });
  assert.deepEqual(g, { name: "granitehybrid", layers: 6, recurrent: 4 });
  assert.equal(
    archLine(g),
    "granitehybrid · hybrid: 4 recurrent layers (fixed-size state) + 2 attention layers (KV cache)",
  );
  assert.equal(archFacts({ architecture: "qwen35", blockCount: 8 }).recurrent, 6);
  const lfm2 = archFacts({ architecture: "lfm2", blockCount: 6, headCountKvPerLayer: [0, 0, 2, 0, 0, 2] });
  assert.equal(lfm2.recurrent, 4, "LFM2's short-convolution layers");
  const m = archFacts({ architecture: "mamba2", blockCount: 3 });
  assert.equal(archLine(m), "mamba2 · recurrent: 3 layers, a fixed-size state (no KV cache)");
});

test("encoders: embeddings, or a reranker with rank pooling", () => {
  const e = archFacts({ architecture: "bert", blockCount: 2, poolingType: 1 });
  assert.deepEqual(e, { name: "bert", layers: 2, encoder: "embeddings" });
  assert.equal(archLine(e), "bert · encoder (no KV cache): embeddings");
  assert.equal(
    archLine(archFacts({ architecture: "bert", blockCount: 2, poolingType: 4 })),
    "bert · encoder (no KV cache): a reranker",
  );
});

test("a dense model: its layers; without a block count: the name alone", () => {
  assert.equal(archLine(archFacts({ architecture: "qwen3", blockCount: 28 })), "qwen3 · 28 layers");
  assert.equal(archLine(archFacts({ architecture: "llama" })), "llama");
});
