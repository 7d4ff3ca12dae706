/**
 * The compute buffer of a model without memory (src/models/estimate/encoder.ts), pinned to what the rig's real
 * llama-server (llama.cpp 80fb11a, CPU build) printed at `-lv 4` ("CPU compute buffer size = … MiB", two decimals)
 * for tiny BERT models (test/support/archs bertFamily's layout: F16 weights, 4 heads) started with `--embedding`
 * (mean pooling) or `--reranking` (rank pooling), recorded on 2026-12-07.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  BERT_GRAPH_ARCHS,
  bertComputeBytes,
  encoderTokens,
  estimateMemory,
  NO_MEMORY_ARCHS,
  type EstimatorModel,
} from "../../../src/models/estimator.js";

const MIB = 1024 * 1024;
/** The log rounds to 0.01 MiB. */
const ROUNDING = 0.006 * MIB;

const MEAN = 1;
const RANK = 4;

/** The rig's `embed` model (test/support/archs: bert, 2 blocks, n_embd 64, n_ff 128, 4 heads, 512 trained ctx). */
const BERT: EstimatorModel = {
  architecture: "bert",
  blockCount: 2,
  embeddingLength: 64,
  feedForwardLength: 128,
  headCount: 4,
  contextLength: 512,
  poolingType: MEAN,
};

interface Measured {
  args: string;
  model?: Partial<EstimatorModel>;
  tokens: number;
  parallel?: number;
  flashAttention?: boolean;
  mib: number;
}

// llama-server -m <model> --embedding|--reranking <args>: n_tokens = min(n_ctx, n_ubatch) from its log
const MEASURED: Measured[] = [
  { args: "--embedding (defaults: ctx 512, ub 512, 4 slots)", tokens: 512, mib: 1.2 },
  { args: "--embedding -c 8192", tokens: 512, mib: 1.2 },
  { args: "--embedding -np 1", tokens: 512, parallel: 1, mib: 1.2 },
  { args: "--embedding -c 256", tokens: 256, mib: 0.48 },
  { args: "--embedding -c 2048 -ub 1024", tokens: 1024, mib: 3.4 },
  { args: "--embedding -c 8192 -ub 2048", tokens: 2048, mib: 10.8 },
  { args: "--embedding -c 8192 -b 8192 -ub 8192", tokens: 8192, mib: 139.22 },
  { args: "--embedding -fa off", tokens: 512, flashAttention: false, mib: 5.76 },
  { args: "--embedding -fa off -c 2048 -ub 1024 -np 2", tokens: 1024, parallel: 2, flashAttention: false, mib: 21.52 },
  { args: "--reranking", model: { poolingType: RANK }, tokens: 512, mib: 1.19 },
  { args: "--reranking -ub 256", model: { poolingType: RANK }, tokens: 256, mib: 0.47 },
  { args: "--reranking -c 8192 -ub 2048", model: { poolingType: RANK }, tokens: 2048, mib: 10.77 },
  { args: "--reranking -c 4096 -b 4096 -ub 4096", model: { poolingType: RANK }, tokens: 4096, mib: 37.55 },
  // other widths, depths and head counts (the same layout with n_embd / n_ff / blocks / heads changed)
  ...(
    [
      [64, 256, 2, 4, 4096, true, 39.05],
      [128, 128, 2, 4, 4096, true, 43.05],
      [128, 512, 2, 4, 4096, true, 46.05],
      [64, 512, 2, 4, 4096, true, 43.05],
      [64, 128, 1, 4, 4096, true, 37.55],
      [64, 128, 4, 4, 4096, true, 37.55],
      [64, 128, 2, 1, 4096, true, 37.55],
      [64, 128, 2, 1, 1024, false, 9.51],
      [128, 512, 2, 4, 512, false, 6.51],
      [128, 512, 2, 4, 1024, false, 23.01],
      [64, 512, 2, 4, 1024, false, 21.51],
      // the feed-forward's peak above the attention's, without and with flash attention
      [64, 1024, 2, 1, 512, false, 3.38],
      [64, 1024, 2, 1, 512, true, 2.88],
    ] as const
  ).map(([E, F, L, H, T, fa, mib]) => ({
    args: `--reranking, n_embd ${E}, n_ff ${F}, ${L} blocks, ${H} heads, -c ${T} -b ${T} -ub ${T}${fa ? "" : " -fa off"}`,
    model: { embeddingLength: E, feedForwardLength: F, blockCount: L, headCount: H, poolingType: RANK },
    tokens: T,
    flashAttention: fa,
    mib,
  })),
];

void describe("bertComputeBytes: llama.cpp's BERT graph over the ubatch's own tokens", () => {
  for (const m of MEASURED) {
    void test(`${m.args}: ${m.mib} MiB`, () => {
      const got = bertComputeBytes(
        { ...BERT, ...m.model },
        { tokens: m.tokens, flashAttention: m.flashAttention ?? true, parallel: m.parallel ?? 4 },
      );
      assert.ok(got !== undefined);
      assert.ok(
        Math.abs(got - m.mib * MIB) <= ROUNDING,
        `estimated ${(got / MIB).toFixed(3)} MiB, llama-server ${m.mib} MiB`,
      );
    });
  }

  void test("only the architectures built by bert.cpp, all of them without memory", () => {
    assert.equal(
      bertComputeBytes({ ...BERT, architecture: "llama" }, { tokens: 512, flashAttention: true, parallel: 4 }),
      undefined,
    );
    assert.equal(
      bertComputeBytes({ ...BERT, architecture: "modern-bert" }, { tokens: 512, flashAttention: true, parallel: 4 }),
      undefined,
    );
    for (const arch of BERT_GRAPH_ARCHS) assert.ok(NO_MEMORY_ARCHS.has(arch), arch);
  });

  void test("a gate beside up (nomic-bert) keeps twice the feed-forward width live", () => {
    const wide = { ...BERT, embeddingLength: 64, feedForwardLength: 512 };
    const opts = { tokens: 1024, flashAttention: true, parallel: 4 };
    const plain = bertComputeBytes(wide, opts)!;
    const gated = bertComputeBytes({ ...wide, architecture: "nomic-bert" }, opts)!;
    assert.equal(gated - plain, 4 * 1024 * 512);
  });
});

void describe("estimateMemory on a model without memory", () => {
  test("encoderTokens: min(n_ctx rounded to 256, n_ubatch)", () => {
    assert.equal(encoderTokens(256, 512), 256);
    assert.equal(encoderTokens(8192, 512), 512);
    assert.equal(encoderTokens(8192, 2048), 2048);
  });

  test("the rig's BERT: compute and total within 5 % of llama-server at each context, no growth past the ubatch", () => {
    // compute / total MiB from llama-server's log (the embed model, 4 slots, --embedding)
    for (const [ctx, ubatch, compute, total] of [
      [undefined, undefined, 1.2, 1.52],
      [2048, undefined, 1.2, 1.52],
      [8192, undefined, 1.2, 1.52],
      [256, undefined, 0.48, 0.8],
      [8192, 2048, 10.8, 11.12],
    ] as const) {
      const e = estimateMemory({
        // the embed model's tensors as our GGUF reader sees them
        metadata: {
          ...BERT,
          vocabSize: 419,
          tensorBytes: 322_432,
          layerBytes: [68_352, 68_352],
          tokenEmbdBytes: 54_144,
          outputBytes: 0,
          otherBytes: 131_584,
        },
        ...(ctx ? { ctx } : {}),
        ...(ubatch ? { ubatch } : {}),
        embeddings: true,
      });
      assert.equal(e.kvBytes, 0);
      assert.ok(Math.abs(e.computeBytes - compute * MIB) <= 0.05 * compute * MIB, `ctx ${ctx}: ${e.computeBytes}`);
      assert.ok(Math.abs(e.totalBytes - total * MIB) <= 0.05 * total * MIB, `ctx ${ctx}: ${e.totalBytes}`);
    }
  });

  test("another encoder (modern-bert) keeps the general terms, over the ubatch's tokens instead of the KV cells", () => {
    const modern: EstimatorModel = { ...BERT, architecture: "modern-bert", contextLength: 8192 };
    const at = (ctx: number) => estimateMemory({ metadata: modern, ctx }).computeBytes;
    assert.equal(at(2048), at(8192));
    assert.ok(at(256) < at(512));
  });
});
