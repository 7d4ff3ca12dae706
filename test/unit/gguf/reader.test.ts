import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { GgufValue, writeGguf, type GgufDocument } from "../../support/gguf-writer.js";
import {
  findMmproj,
  GgufFormatError,
  isMmprojPath,
  parseShardName,
  readGgufHeader,
  readModelMetadata,
  shardPaths,
} from "../../../src/gguf/reader.js";
import { tinyModelShape, writeTinyModel, writeTruncatedGguf, writeNotGguf } from "../../support/tiny-models.js";

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "gguf-reader-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A model header with a `n`-token BPE vocabulary and merges (the size of Qwen/Llama-3 vocabularies). */
function bigVocabDoc(n: number): GgufDocument {
  const tokens: string[] = [];
  const merges: string[] = [];
  for (let i = 0; i < n; i++) {
    tokens.push(`Ġ${i.toString(36)}piece`);
    merges.push(`Ġ ${i.toString(36)}`);
  }
  return {
    metadata: [
      ["general.architecture", GgufValue.string("qwen3")],
      ["general.name", GgufValue.string("Big Vocab 0.6B")],
      ["general.size_label", GgufValue.string("0.6B")],
      ["general.file_type", GgufValue.u32(15)],
      ["qwen3.context_length", GgufValue.u32(40960)],
      ["qwen3.block_count", GgufValue.u32(2)],
      ["qwen3.embedding_length", GgufValue.u32(32)],
      ["qwen3.attention.head_count", GgufValue.u32(4)],
      ["qwen3.attention.head_count_kv", GgufValue.u32(2)],
      ["qwen3.attention.key_length", GgufValue.u32(16)],
      ["qwen3.attention.value_length", GgufValue.u32(16)],
      ["tokenizer.ggml.model", GgufValue.string("gpt2")],
      ["tokenizer.ggml.tokens", GgufValue.array("string", tokens)],
      ["tokenizer.ggml.token_type", GgufValue.array("i32", new Int32Array(n).fill(1))],
      ["tokenizer.ggml.merges", GgufValue.array("string", merges)],
      ["tokenizer.chat_template", GgufValue.string("{%- if tools %}{{ tools | tojson }}{% endif %}<think>\n")],
    ],
    tensors: [
      { name: "blk.0.attn_norm.weight", shape: [32], type: "F32", data: new Float32Array(32) },
      { name: "blk.1.attn_norm.weight", shape: [32], type: "F32", data: new Float32Array(32) },
      { name: "blk.1.attn_q.weight", shape: [32, 64], type: "F16", data: new Float32Array(32 * 64) },
      { name: "output_norm.weight", shape: [32], type: "F32", data: new Float32Array(32) },
    ],
  };
}

void describe("readGgufHeader / readModelMetadata", () => {
  void test("a tiny model: every field, checked against @huggingface/gguf", async (t) => {
    const dir = tmp(t);
    const path = await writeTinyModel(dir, { name: "tiny-a", kind: "chat", layers: 2 });
    const shape = tinyModelShape({ layers: 2 });
    const meta = await readModelMetadata(path);
    const oracle = await gguf(path, { allowLocalFile: true, computeParametersCount: true });
    const md = oracle.metadata as unknown as Record<string, unknown>;

    assert.equal(meta.architecture, md["general.architecture"]);
    assert.equal(meta.name, "tiny-a");
    assert.equal(meta.fileType, 1);
    assert.equal(meta.quantization, "F16");
    assert.equal(meta.contextLength, md["llama.context_length"]);
    assert.equal(meta.blockCount, 2);
    assert.equal(meta.embeddingLength, shape.embd);
    assert.equal(meta.headCount, shape.heads);
    assert.equal(meta.headCountKv, shape.kvHeads);
    assert.equal(meta.feedForwardLength, shape.ffn);
    assert.equal(meta.vocabSize, shape.vocab);
    assert.equal(meta.chatTemplate, md["tokenizer.chat_template"]);
    assert.equal(meta.parameterCount, oracle.parameterCount);
    assert.equal(meta.isMmproj, false);
    assert.deepEqual(meta.files, [path]);
    assert.equal(meta.totalBytes, statSync(path).size);

    const header = await readGgufHeader(path);
    assert.equal(header.tensors.length, oracle.tensorInfos.length);
    for (const [i, ti] of oracle.tensorInfos.entries()) {
      const mine = header.tensors[i]!;
      assert.equal(mine.name, ti.name);
      assert.deepEqual(mine.shape, ti.shape.map(Number));
      assert.equal(mine.type, ti.dtype);
      assert.equal(mine.offset, Number(ti.offset));
    }
    assert.equal(header.dataOffset, Number(oracle.tensorDataOffset));
    // Tensor bytes add up to the data section.
    const last = header.tensors.at(-1)!;
    assert.ok(meta.tensorBytes <= meta.totalBytes - header.dataOffset);
    assert.ok(header.dataOffset + last.offset + last.bytes! <= meta.totalBytes);
    // Per-layer accounting covers every tensor.
    assert.equal(meta.layerBytes.length, 2);
    assert.equal(
      meta.layerBytes.reduce((s, x) => s + x, 0) + meta.tokenEmbdBytes + meta.outputBytes + meta.otherBytes,
      meta.tensorBytes,
    );
    assert.equal(meta.tokenEmbdBytes, shape.embd * shape.vocab * 2);
  });

  void test("150k-token vocabulary: same answers as @huggingface/gguf, big arrays summarised (timings printed)", async (t) => {
    const dir = tmp(t);
    const path = join(dir, "big-vocab.gguf");
    await writeGguf(path, bigVocabDoc(150_000));
    let t0 = performance.now();
    const meta = await readModelMetadata(path);
    const ownMs = performance.now() - t0;
    t0 = performance.now();
    const oracle = await gguf(path, { allowLocalFile: true });
    const hfMs = performance.now() - t0;
    t.diagnostic(
      `150k-token header (${(statSync(path).size / 1048576).toFixed(1)} MiB): gglib reader ${ownMs.toFixed(0)} ms, @huggingface/gguf ${hfMs.toFixed(0)} ms`,
    );
    const md = oracle.metadata as unknown as Record<string, unknown>;
    assert.equal(meta.vocabSize, (md["tokenizer.ggml.tokens"] as unknown[]).length);
    assert.equal(meta.vocabSize, 150_000);
    assert.equal(meta.architecture, "qwen3");
    assert.equal(meta.sizeLabel, "0.6B");
    assert.equal(meta.quantization, "Q4_K_M");
    assert.equal(meta.contextLength, 40960);
    assert.equal(meta.headCountKv, 2);
    assert.equal(meta.keyLength, 16);
    assert.equal(meta.chatTemplate, md["tokenizer.chat_template"]);
    assert.deepEqual(meta.layerBytes, [32 * 4, 32 * 4 + 32 * 64 * 2]);
    const header = await readGgufHeader(path);
    assert.deepEqual(header.kv.get("tokenizer.ggml.tokens"), { itemType: 8, length: 150_000 });
    assert.deepEqual(header.kv.get("tokenizer.ggml.merges"), { itemType: 8, length: 150_000 });
    // Asking for the array in full gives the tokens themselves.
    const fullHeader = await readGgufHeader(path, { fullArrays: ["tokenizer.ggml.tokens"], tensors: false });
    const toks = fullHeader.kv.get("tokenizer.ggml.tokens") as string[];
    assert.equal(toks.length, 150_000);
    assert.equal(toks[149_999], (md["tokenizer.ggml.tokens"] as string[])[149_999]);
  });

  void test("split model: metadata from shard 1, sizes and tensors summed over all shards, any shard path works", async (t) => {
    const dir = tmp(t);
    const base = join(dir, "big-model");
    const names = shardPaths(`${base}-00001-of-00003.gguf`);
    assert.deepEqual(
      names,
      [1, 2, 3].map((i) => `${base}-0000${i}-of-00003.gguf`),
    );
    const split = (no: number) => [
      ["split.no", GgufValue.u16(no)] as const,
      ["split.count", GgufValue.u16(3)] as const,
      ["split.tensors.count", GgufValue.i32(3)] as const,
    ];
    await writeGguf(names[0]!, {
      metadata: [
        ["general.architecture", GgufValue.string("llama")],
        ["llama.block_count", GgufValue.u32(2)],
        ["llama.context_length", GgufValue.u32(4096)],
        ...split(0),
      ],
      tensors: [{ name: "token_embd.weight", shape: [8, 16], type: "F32", data: new Float32Array(128) }],
    });
    await writeGguf(names[1]!, {
      metadata: split(1),
      tensors: [{ name: "blk.0.ffn_up.weight", shape: [8, 8], type: "F16", data: new Float32Array(64) }],
    });
    await writeGguf(names[2]!, {
      metadata: split(2),
      tensors: [{ name: "blk.1.ffn_up.weight", shape: [8, 8], type: "F16", data: new Float32Array(64) }],
    });
    const sizes = names.map((n) => statSync(n).size);
    for (const p of [names[0]!, names[2]!]) {
      const meta = await readModelMetadata(p);
      assert.equal(meta.path, names[0]);
      assert.deepEqual(meta.files, names);
      assert.equal(meta.totalBytes, sizes[0]! + sizes[1]! + sizes[2]!);
      assert.equal(meta.splitCount, 3);
      assert.equal(meta.contextLength, 4096);
      assert.deepEqual(meta.layerBytes, [128, 128]);
      assert.equal(meta.tokenEmbdBytes, 512);
      assert.equal(meta.parameterCount, 128 + 64 + 64);
    }
    assert.deepEqual(parseShardName("/m/x-00002-of-00003.gguf"), { prefix: "/m/x", index: 2, count: 3 });
    assert.equal(parseShardName("/m/x-00004-of-00003.gguf"), undefined);
    assert.equal(parseShardName("/m/x.gguf"), undefined);
  });

  void test("a missing shard is an error that names the file", async (t) => {
    const dir = tmp(t);
    const first = join(dir, "m-00001-of-00002.gguf");
    await writeGguf(first, { metadata: [["general.architecture", GgufValue.string("llama")]] });
    await assert.rejects(
      readModelMetadata(first),
      (e: NodeJS.ErrnoException) => e.code === "ENOENT" && String(e.message).includes("m-00002-of-00002.gguf"),
    );
  });

  void test("mmproj files are recognised by metadata and by name; findMmproj finds the sibling", async (t) => {
    const dir = tmp(t);
    const proj = join(dir, "projector-f16.gguf");
    await writeGguf(proj, {
      metadata: [
        ["general.architecture", GgufValue.string("clip")],
        ["general.type", GgufValue.string("mmproj")],
        ["clip.has_vision_encoder", GgufValue.bool(true)],
      ],
    });
    const meta = await readModelMetadata(proj);
    assert.equal(meta.isMmproj, true);
    assert.equal(meta.hasVisionEncoder, true);
    assert.equal(meta.type, "mmproj");
    for (const n of [
      "mmproj-model-f16.gguf",
      "gemma-3-4b-it-mmproj-F16.gguf",
      "Qwen2.5-VL-7B.mmproj.gguf",
      "mmproj.gguf",
    ])
      assert.ok(isMmprojPath(n), n);
    for (const n of ["llama-3-8b.gguf", "mmprojector-notes.gguf"]) assert.ok(!isMmprojPath(n), n);
    const model = await writeTinyModel(dir, { name: "vision-model", kind: "chat" });
    assert.equal(await findMmproj(model), undefined, "the projector above is not named mmproj");
    writeFileSync(join(dir, "mmproj-vision-model-f16.gguf"), "");
    assert.equal(await findMmproj(model), join(dir, "mmproj-vision-model-f16.gguf"));
  });

  void test("per-layer KV heads (array) give the max and the list", async (t) => {
    const dir = tmp(t);
    const path = join(dir, "hybrid.gguf");
    await writeGguf(path, {
      metadata: [
        ["general.architecture", GgufValue.string("jamba")],
        ["jamba.block_count", GgufValue.u32(4)],
        ["jamba.attention.head_count", GgufValue.u32(8)],
        ["jamba.attention.head_count_kv", GgufValue.array("u32", [0, 0, 0, 8])],
        ["jamba.pooling_type", GgufValue.u32(1)],
      ],
    });
    const meta = await readModelMetadata(path);
    assert.equal(meta.headCountKv, 8);
    assert.deepEqual(meta.headCountKvPerLayer, [0, 0, 0, 8]);
    assert.equal(meta.poolingTypeName, "mean");
  });

  void test("truncated and non-GGUF files fail with a clear GgufFormatError", async (t) => {
    const dir = tmp(t);
    const path = await writeTinyModel(dir, { name: "whole", kind: "chat" });
    const cut = await writeTruncatedGguf(path, join(dir, "cut.gguf"), 2000);
    await assert.rejects(
      readModelMetadata(cut),
      (e: unknown) => e instanceof GgufFormatError && /truncated/.test(e.message) && e.message.includes("cut.gguf"),
    );
    const not = await writeNotGguf(join(dir, "not.gguf"));
    await assert.rejects(
      readModelMetadata(not),
      (e: unknown) => e instanceof GgufFormatError && /not a GGUF file/.test(e.message),
    );
    writeFileSync(join(dir, "empty.gguf"), "");
    await assert.rejects(readModelMetadata(join(dir, "empty.gguf")), GgufFormatError);
  });
});
