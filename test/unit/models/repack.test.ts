/**
 * llama.cpp's extra CPU buffers (AMX, CPU_REPACK), rule by rule, as read from the source the rig builds
 * (ggml/src/ggml-cpu/amx/amx.cpp, repack.cpp), and how they change the estimate.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { matmulLayout } from "../../../src/gguf/matmul.js";
import { readModelMetadata } from "../../../src/gguf/reader.js";
import { GgmlType } from "../../../src/gguf/types.js";
import { estimateMemory, parseLlamaMemoryLog } from "../../../src/models/estimator.js";
import { extraBufferOf, planRepack, type MatmulLayout } from "../../../src/models/repack.js";
import { writeTinyModel } from "../../support/tiny-models.js";
import { fitReport, formatFitReport } from "../../../src/cli/commands/models/fit.js";
import { colors } from "../../../src/term/color.js";
import type { SystemInfo } from "../../../src/system/types.js";

const AMX_CPU = ["AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8"];
const EPYC = ["AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16"];
const OLD_X86 = ["AVX", "F16C"];
const ARM_DOT = ["NEON", "DOTPROD"];
const F16 = GgmlType.F16;
const Q4_0 = GgmlType.Q4_0;

void describe("extraBufferOf: AMX (amx.cpp)", () => {
  test("F16 weights whose rows are a multiple of 32 and row length of 16 go to AMX, unpacked", () => {
    assert.deepEqual(extraBufferOf({ type: F16, shape: [64, 64], count: 1 }, AMX_CPU), {
      buffer: "AMX",
      bytes: 64 * 64 * 2,
    });
    assert.equal(extraBufferOf({ type: F16, shape: [64, 420], count: 1 }, AMX_CPU), undefined, "420 rows");
    assert.equal(extraBufferOf({ type: F16, shape: [40, 64], count: 1 }, AMX_CPU), undefined, "row length 40");
  });

  test("needs both AMX_INT8 and AVX512_VNNI; F32 and BF16 never", () => {
    assert.equal(extraBufferOf({ type: F16, shape: [64, 64], count: 1 }, EPYC), undefined);
    assert.equal(extraBufferOf({ type: F16, shape: [64, 64], count: 1 }, ["AMX_INT8"]), undefined);
    assert.equal(extraBufferOf({ type: GgmlType.F32, shape: [64, 64], count: 1 }, AMX_CPU), undefined);
    assert.equal(extraBufferOf({ type: GgmlType.BF16, shape: [64, 64], count: 1 }, AMX_CPU), undefined);
  });

  test("quantized types are packed: Q8_0 carries a 4-byte compensation per block, Q4_K 4 bytes of scales", () => {
    // Q4_0: 256 / 32 = 8 blocks of 18 bytes per row, as in the file
    assert.deepEqual(extraBufferOf({ type: Q4_0, shape: [256, 32], count: 1 }, AMX_CPU), {
      buffer: "AMX",
      bytes: 32 * 8 * 18,
    });
    assert.deepEqual(extraBufferOf({ type: GgmlType.Q8_0, shape: [256, 32], count: 1 }, AMX_CPU), {
      buffer: "AMX",
      bytes: 32 * 8 * (34 + 4),
    });
    assert.deepEqual(extraBufferOf({ type: GgmlType.Q4_K, shape: [512, 64], count: 1 }, AMX_CPU), {
      buffer: "AMX",
      bytes: 64 * 2 * (144 + 4),
    });
    // K-quants need rows of whole 256-blocks
    assert.equal(extraBufferOf({ type: GgmlType.Q6_K, shape: [128, 64], count: 1 }, AMX_CPU)?.buffer, undefined);
  });

  test("experts (MUL_MAT_ID) never go to AMX", () => {
    const g = { type: Q4_0, shape: [256, 64, 8], count: 1, expert: true };
    assert.equal(extraBufferOf(g, AMX_CPU)?.buffer, "CPU_REPACK");
  });
});

void describe("extraBufferOf: CPU_REPACK (repack.cpp)", () => {
  test("Q4_0, Q4_K, IQ4_NL and MXFP4 on AVX2 with rows a multiple of 8; same size as in the file", () => {
    for (const type of [Q4_0, GgmlType.IQ4_NL, GgmlType.MXFP4])
      assert.deepEqual(extraBufferOf({ type, shape: [256, 16], count: 1 }, EPYC), {
        buffer: "CPU_REPACK",
        bytes: 16 * 8 * (type === GgmlType.MXFP4 ? 17 : 18),
      });
    assert.equal(extraBufferOf({ type: GgmlType.Q4_K, shape: [256, 8], count: 1 }, EPYC)?.buffer, "CPU_REPACK");
    assert.equal(extraBufferOf({ type: Q4_0, shape: [256, 12], count: 1 }, EPYC), undefined, "12 rows");
    assert.equal(extraBufferOf({ type: Q4_0, shape: [256, 16], count: 1 }, OLD_X86), undefined, "no AVX2");
  });

  test("Q2_K only with AVX512; Q8_0, Q5_K, Q6_K only on ARM; F16 never", () => {
    assert.equal(extraBufferOf({ type: GgmlType.Q2_K, shape: [256, 8], count: 1 }, EPYC)?.buffer, "CPU_REPACK");
    assert.equal(extraBufferOf({ type: GgmlType.Q2_K, shape: [256, 8], count: 1 }, ["AVX2"]), undefined);
    assert.equal(extraBufferOf({ type: GgmlType.Q8_0, shape: [256, 8], count: 1 }, EPYC), undefined);
    assert.equal(extraBufferOf({ type: GgmlType.Q8_0, shape: [256, 8], count: 1 }, ARM_DOT)?.buffer, "CPU_REPACK");
    assert.equal(extraBufferOf({ type: GgmlType.Q6_K, shape: [256, 8], count: 1 }, ARM_DOT)?.buffer, "CPU_REPACK");
    assert.equal(extraBufferOf({ type: F16, shape: [256, 8], count: 1 }, EPYC), undefined);
  });

  test("on ARM with dot products Q4_0 needs rows of 4", () => {
    assert.equal(extraBufferOf({ type: Q4_0, shape: [256, 12], count: 1 }, ARM_DOT)?.buffer, "CPU_REPACK");
  });

  test("AMX comes first: a Q4_0 weight AMX takes is not repacked too", () => {
    assert.equal(extraBufferOf({ type: Q4_0, shape: [256, 32], count: 1 }, AMX_CPU)?.buffer, "AMX");
    // AMX refuses 8 rows; the repack buffer (next in the list) takes it
    assert.equal(extraBufferOf({ type: Q4_0, shape: [256, 8], count: 1 }, AMX_CPU)?.buffer, "CPU_REPACK");
  });
});

void describe("planRepack: the mapped span and the copies", () => {
  // file order: embedding (a row lookup), the head, then a block whose last three tensors are matrices
  const layout: MatmulLayout = {
    groups: [
      { type: F16, shape: [64, 64], count: 4 },
      { type: F16, shape: [64, 96], count: 2 },
      { type: F16, shape: [96, 64], count: 1 },
      { type: F16, shape: [64, 420], count: 1 },
    ],
    leading: [],
    trailing: [2, 1, 1, 0],
  };

  test("with mmap the copies add to the mapping; only the moved tensors at the file's end leave it", () => {
    const p = planRepack(layout, AMX_CPU);
    const sq = 64 * 64 * 2;
    const wide = 64 * 96 * 2;
    assert.deepEqual(p.buffers, { AMX: 4 * sq + 2 * wide + wide });
    assert.equal(p.movedBytes, 4 * sq + 3 * wide);
    assert.equal(p.spanTrimBytes, wide + 2 * wide + sq);
    assert.equal(p.deltaBytes, p.extraBytes - p.spanTrimBytes);
  });

  test("without mmap every moved tensor leaves the CPU buffer", () => {
    const p = planRepack(layout, AMX_CPU, { mmap: false });
    assert.equal(p.deltaBytes, p.extraBytes - p.movedBytes);
  });

  test("the trim stops at the first tensor that stays", () => {
    const p = planRepack({ ...layout, trailing: [3, 0] }, AMX_CPU);
    assert.equal(p.spanTrimBytes, 0);
  });

  test("nothing on a CPU without the kernels", () => {
    assert.deepEqual(planRepack(layout, EPYC), {
      buffers: {},
      extraBytes: 0,
      movedBytes: 0,
      spanTrimBytes: 0,
      deltaBytes: 0,
    });
  });

  test("a tied head (a duplicate of the embedding) is a copy beside the mapped original", () => {
    const p = planRepack(
      { groups: [{ type: F16, shape: [64, 512], count: 1, duplicate: true }], leading: [], trailing: [0] },
      AMX_CPU,
    );
    assert.equal(p.extraBytes, 64 * 512 * 2);
    assert.equal(p.movedBytes, 0);
    assert.equal(p.deltaBytes, 64 * 512 * 2);
  });
});

void describe("matmulLayout from a file's tensors", () => {
  test("row lookups and norms are not matrices; the end runs follow the file's offsets", () => {
    const t = (name: string, shape: number[], offset: number) => ({ name, shape, type: F16, offset });
    const l = matmulLayout([
      t("token_embd.weight", [64, 420], 0),
      t("output_norm.weight", [64], 100),
      t("output.weight", [64, 420], 200),
      t("blk.0.attn_norm.weight", [64], 300),
      t("blk.0.attn_q.weight", [64, 64], 400),
      t("blk.0.ffn_norm.weight", [64], 500),
      t("blk.0.ffn_up.weight", [64, 96], 600),
      t("blk.0.ffn_down.weight", [96, 64], 700),
    ]);
    assert.deepEqual(
      l.groups.map((g) => [g.shape, g.count]),
      [
        [[64, 420], 1],
        [[64, 64], 1],
        [[64, 96], 1],
        [[96, 64], 1],
      ],
    );
    assert.deepEqual(l.leading, []);
    assert.deepEqual(l.trailing, [3, 2]);
  });

  test("without output.weight the head is a duplicate of token_embd; experts are flagged", () => {
    const l = matmulLayout([
      { name: "token_embd.weight", shape: [64, 512], type: F16, offset: 0 },
      { name: "blk.0.ffn_up_exps.weight", shape: [64, 96, 8], type: Q4_0, offset: 10 },
    ]);
    assert.deepEqual(l.groups, [
      { type: Q4_0, shape: [64, 96, 8], count: 1, expert: true },
      { type: F16, shape: [64, 512], count: 1, duplicate: true },
    ]);
  });

  test("split models get no end runs", () => {
    const l = matmulLayout([{ name: "output.weight", shape: [64, 64], type: F16, offset: 0 }], { ends: false });
    assert.deepEqual([l.leading, l.trailing], [[], []]);
  });
});

void describe("estimateMemory with the CPU's features", () => {
  test("a tiny F16 model on an AMX CPU: its copies counted as host weights, by buffer", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-repack-"));
    try {
      const meta = await readModelMetadata(await writeTinyModel(dir, { name: "r", kind: "chat", layers: 2 }));
      const plain = estimateMemory({ metadata: meta });
      const amx = estimateMemory({ metadata: meta, cpu: AMX_CPU });
      assert.equal(plain.repack, undefined);
      assert.ok(amx.repack && (amx.repack.buffers.AMX ?? 0) > 0, "AMX copies");
      assert.ok(amx.host.weights > plain.host.weights);
      assert.deepEqual(estimateMemory({ metadata: meta, cpu: EPYC }).weightsBytes, plain.weightsBytes);
      // a GPU build never uses them
      assert.equal(estimateMemory({ metadata: meta, cpu: AMX_CPU, gpuBackend: true }).repack, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the weights llama-server reported on an Intel Xeon with AMX (issue 21's log) are matched", async () => {
    // AMX + CPU_Mapped model buffers as that machine's llama-server printed them (MiB, two decimals each)
    const seen = [
      { opts: { name: "est-chat", kind: "chat" as const }, mib: 0.2 },
      { opts: { name: "est-think", kind: "think" as const, layers: 2 }, mib: 0.34 },
      { opts: { name: "est-wide", kind: "chat" as const, embd: 256, layers: 4, contextLength: 8192 }, mib: 8.67 },
    ];
    const dir = mkdtempSync(join(tmpdir(), "gglib-repack-amx-"));
    try {
      for (const s of seen) {
        const meta = await readModelMetadata(await writeTinyModel(dir, s.opts));
        const est = estimateMemory({ metadata: meta, cpu: AMX_CPU }).weightsBytes / (1024 * 1024);
        assert.ok(Math.abs(est - s.mib) <= 0.02 * s.mib + 0.006, `${s.opts.name}: ${est.toFixed(3)} vs ${s.mib} MiB`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("`gglib models fit` counts and shows the AMX share on an AMX CPU without a GPU", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-repack-fit-"));
    try {
      const path = await writeTinyModel(dir, { name: "fitme", kind: "chat", layers: 2 });
      const env = { ...process.env, GGLIB_DATA_DIR: join(dir, "data") };
      const ram = { totalBytes: 16 * 1024 ** 3, availableBytes: 8 * 1024 ** 3, source: "proc-meminfo" as const };
      const probeWith = (simd: string[]) => ({
        probe: () => Promise.resolve({ cpu: { simd }, gpus: [] } as unknown as SystemInfo),
        memory: () => Promise.resolve({ ram, gpus: [], takenAt: 0 }),
      });
      const amx = await fitReport(path, { env }, probeWith(AMX_CPU));
      const epyc = await fitReport(path, { env }, probeWith(EPYC));
      assert.ok((amx.advice.estimate.repack?.buffers.AMX ?? 0) > 0);
      assert.equal(epyc.advice.estimate.repack, undefined);
      assert.ok(amx.advice.estimate.weightsBytes > epyc.advice.estimate.weightsBytes);
      assert.match(formatFitReport(amx, colors(process.stdout)), /incl\. AMX .* repacked for this CPU/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("llama-server's AMX buffer is host memory", () => {
    const m = parseLlamaMemoryLog([
      "load_tensors:          AMX model buffer size =     9.06 MiB",
      "load_tensors:   CPU_Mapped model buffer size =    16.69 MiB",
    ]);
    assert.equal(m.gpuBytes, 0);
    assert.equal(m.modelBytes, Math.round((9.06 + 16.69) * 1024 * 1024));
  });
});
