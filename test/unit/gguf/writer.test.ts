import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { gguf } from "@huggingface/gguf";
import {
  GgufValue,
  encodeGguf,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  planGguf,
  writeGguf,
  type GgufDocument,
} from "../../support/gguf-writer.js";
import { GGUF_MAGIC, GgmlType, GgufValueType, TokenType, ggmlTensorBytes } from "../../../src/gguf/types.js";
import {
  TINY_TEMPLATE_FILES,
  tinyModelDocument,
  tinyVocab,
  writeNotGguf,
  writeTinyModel,
  writeTruncatedGguf,
} from "../../support/tiny-models.js";

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "gguf-writer-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A minimal independent GGUF parser for the checks below (values come back tagged with their type id). */
interface Parsed {
  version: number;
  kv: Map<string, { type: number; value: unknown }>;
  tensors: { name: string; shape: bigint[]; type: number; offset: bigint }[];
  headerEnd: number;
}
function parse(buf: Uint8Array): Parsed {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const dec = new TextDecoder("utf-8", { fatal: true });
  const u32 = () => ((p += 4), view.getUint32(p - 4, true));
  const u64 = () => ((p += 8), view.getBigUint64(p - 8, true));
  const str = () => {
    const n = Number(u64());
    p += n;
    return dec.decode(buf.subarray(p - n, p));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case GgufValueType.UINT8:
        return view.getUint8(p++);
      case GgufValueType.INT8:
        return view.getInt8(p++);
      case GgufValueType.UINT16:
        return ((p += 2), view.getUint16(p - 2, true));
      case GgufValueType.INT16:
        return ((p += 2), view.getInt16(p - 2, true));
      case GgufValueType.UINT32:
        return u32();
      case GgufValueType.INT32:
        return ((p += 4), view.getInt32(p - 4, true));
      case GgufValueType.FLOAT32:
        return ((p += 4), view.getFloat32(p - 4, true));
      case GgufValueType.BOOL: {
        const b = view.getUint8(p++);
        assert.ok(b === 0 || b === 1, "bool byte is 0 or 1");
        return b === 1;
      }
      case GgufValueType.STRING:
        return str();
      case GgufValueType.ARRAY: {
        const itemType = u32();
        const n = Number(u64());
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.push(value(itemType));
        return { itemType, items };
      }
      case GgufValueType.UINT64:
        return u64();
      case GgufValueType.INT64:
        return ((p += 8), view.getBigInt64(p - 8, true));
      case GgufValueType.FLOAT64:
        return ((p += 8), view.getFloat64(p - 8, true));
      default:
        throw new Error(`unknown value type ${type} at ${p}`);
    }
  };
  assert.equal(u32(), GGUF_MAGIC);
  assert.deepEqual([...buf.subarray(0, 4)], [0x47, 0x47, 0x55, 0x46], "file starts with the bytes GGUF");
  const version = u32();
  const nTensors = Number(u64());
  const nKv = Number(u64());
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    kv.set(key, { type, value: value(type) });
  }
  const tensors: Parsed["tensors"] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const shape: bigint[] = [];
    for (let d = 0; d < nd; d++) shape.push(u64());
    const type = u32();
    tensors.push({ name, shape, type, offset: u64() });
  }
  return { version, kv, tensors, headerEnd: p };
}

const everyType: GgufDocument["metadata"] = {
  "general.architecture": GgufValue.string("llama"),
  "t.u8": GgufValue.u8(255),
  "t.i8": GgufValue.i8(-128),
  "t.u16": GgufValue.u16(65535),
  "t.i16": GgufValue.i16(-32768),
  "t.u32": GgufValue.u32(4294967295),
  "t.i32": GgufValue.i32(-2147483648),
  "t.f32": GgufValue.f32(1.5),
  "t.f64": GgufValue.f64(Math.PI),
  "t.u64": GgufValue.u64(18446744073709551615n),
  "t.i64": GgufValue.i64(-9223372036854775808n),
  "t.bool.true": GgufValue.bool(true),
  "t.bool.false": GgufValue.bool(false),
  "t.string": GgufValue.string("héllo ▁wörld 🦙"),
  "t.string.empty": GgufValue.string(""),
  "t.arr.u8": GgufValue.array("u8", [0, 1, 255]),
  "t.arr.i32": GgufValue.array("i32", new Int32Array([-1, 0, 7])),
  "t.arr.f32": GgufValue.array("f32", [0.25, -2]),
  "t.arr.f64": GgufValue.array("f64", [1e-300]),
  "t.arr.u64": GgufValue.array("u64", [0n, 1n << 40n]),
  "t.arr.i64": GgufValue.array("i64", [-5n]),
  "t.arr.bool": GgufValue.array("bool", [true, false, true]),
  "t.arr.string": GgufValue.array("string", ["<unk>", "", "▁the", "<0xFF>"]),
  "t.arr.empty": GgufValue.array("string", []),
  "t.arr.nested": GgufValue.array("array", [GgufValue.array("u16", [1, 2]), GgufValue.array("u16", [3])]),
};

function ramp(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i - n / 2) * scale);
}

void describe("float32 → float16", () => {
  void test("known values", () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite half
      [65519.99, 0x7bff], // just below the midpoint to 65536 rounds down
      [65520, 0x7c00], // the midpoint rounds to even, which is Inf
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it: tie to even → 0
      [1.5 * 2 ** -25, 0x0001], // above the tie → rounds up
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal steps → even (2)
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 → even mantissa (1)
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9 → even mantissa
    ];
    for (const [v, bits] of cases) {
      assert.equal(float32ToFloat16Bits(v), bits, `${v} → 0x${bits.toString(16)}`);
    }
    assert.equal(float32ToFloat16Bits(NaN) & 0x7c00, 0x7c00);
    assert.notEqual(float32ToFloat16Bits(NaN) & 0x3ff, 0, "NaN keeps a non-zero mantissa");
  });

  void test("every half value survives a round trip through float32", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const f = float16BitsToFloat32(bits);
      if (Number.isNaN(f)) continue;
      assert.equal(float32ToFloat16Bits(f), bits);
    }
  });

  void test("rounds to the nearest half (property)", () => {
    fc.assert(
      fc.property(fc.float({ min: -65504, max: 65504, noNaN: true }), (x) => {
        const bits = float32ToFloat16Bits(x);
        const got = float16BitsToFloat32(bits);
        const err = Math.abs(got - x);
        // the neighbours of the chosen half are never closer
        for (const nb of [bits - 1, bits + 1]) {
          if ((nb & 0x7fff) > 0x7bff || nb < 0) continue;
          const other = float16BitsToFloat32(nb & 0xffff);
          assert.ok(Math.abs(other - x) >= err, `${x}: 0x${bits.toString(16)} beats 0x${nb.toString(16)}`);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

void describe("GGUF writer", () => {
  void test("every metadata value type round-trips (own parser and @huggingface/gguf)", async (t) => {
    const dir = tmp(t);
    const path = join(dir, "every.gguf");
    const f32 = ramp(8);
    const f16 = ramp(6, 0.1);
    const layout = await writeGguf(path, {
      metadata: everyType,
      tensors: [
        { name: "a.weight", shape: [8], type: "F32", data: f32 },
        { name: "b.weight", shape: [3, 2], type: "F16", data: f16 },
      ],
    });
    const buf = new Uint8Array(readFileSync(path));
    assert.equal(buf.length, layout.fileBytes);
    const parsed = parse(buf);
    assert.equal(parsed.version, 3);
    assert.equal(parsed.headerEnd, layout.headerBytes);

    const get = (k: string) => parsed.kv.get(k);
    assert.deepEqual(get("t.u8"), { type: GgufValueType.UINT8, value: 255 });
    assert.deepEqual(get("t.i8"), { type: GgufValueType.INT8, value: -128 });
    assert.deepEqual(get("t.u16"), { type: GgufValueType.UINT16, value: 65535 });
    assert.deepEqual(get("t.i16"), { type: GgufValueType.INT16, value: -32768 });
    assert.deepEqual(get("t.u32"), { type: GgufValueType.UINT32, value: 4294967295 });
    assert.deepEqual(get("t.i32"), { type: GgufValueType.INT32, value: -2147483648 });
    assert.deepEqual(get("t.f32"), { type: GgufValueType.FLOAT32, value: 1.5 });
    assert.deepEqual(get("t.f64"), { type: GgufValueType.FLOAT64, value: Math.PI });
    assert.deepEqual(get("t.u64"), { type: GgufValueType.UINT64, value: 18446744073709551615n });
    assert.deepEqual(get("t.i64"), { type: GgufValueType.INT64, value: -9223372036854775808n });
    assert.deepEqual(get("t.bool.true"), { type: GgufValueType.BOOL, value: true });
    assert.deepEqual(get("t.bool.false"), { type: GgufValueType.BOOL, value: false });
    assert.deepEqual(get("t.string"), { type: GgufValueType.STRING, value: "héllo ▁wörld 🦙" });
    assert.deepEqual(get("t.string.empty"), { type: GgufValueType.STRING, value: "" });
    const arr = (itemType: number, items: unknown[]) => ({ type: GgufValueType.ARRAY, value: { itemType, items } });
    assert.deepEqual(get("t.arr.u8"), arr(GgufValueType.UINT8, [0, 1, 255]));
    assert.deepEqual(get("t.arr.i32"), arr(GgufValueType.INT32, [-1, 0, 7]));
    assert.deepEqual(get("t.arr.f32"), arr(GgufValueType.FLOAT32, [0.25, -2]));
    assert.deepEqual(get("t.arr.f64"), arr(GgufValueType.FLOAT64, [1e-300]));
    assert.deepEqual(get("t.arr.u64"), arr(GgufValueType.UINT64, [0n, 1n << 40n]));
    assert.deepEqual(get("t.arr.i64"), arr(GgufValueType.INT64, [-5n]));
    assert.deepEqual(get("t.arr.bool"), arr(GgufValueType.BOOL, [true, false, true]));
    assert.deepEqual(get("t.arr.string"), arr(GgufValueType.STRING, ["<unk>", "", "▁the", "<0xFF>"]));
    assert.deepEqual(get("t.arr.empty"), arr(GgufValueType.STRING, []));
    assert.deepEqual(
      get("t.arr.nested"),
      arr(GgufValueType.ARRAY, [
        { itemType: GgufValueType.UINT16, items: [1, 2] },
        { itemType: GgufValueType.UINT16, items: [3] },
      ]),
    );
    assert.deepEqual([...parsed.kv.keys()], Object.keys(everyType), "keys keep their order");

    // a second, independent reader
    const hf = await gguf(path, { allowLocalFile: true });
    const md = hf.metadata as unknown as Record<string, unknown>;
    assert.equal(md["version"], 3);
    assert.equal(md["kv_count"], BigInt(Object.keys(everyType).length));
    assert.equal(md["t.u32"], 4294967295);
    assert.equal(md["t.i64"], -9223372036854775808n);
    assert.equal(md["t.f64"], Math.PI);
    assert.equal(md["t.string"], "héllo ▁wörld 🦙");
    assert.deepEqual(md["t.arr.string"], ["<unk>", "", "▁the", "<0xFF>"]);
    assert.deepEqual(md["t.arr.bool"], [true, false, true]);
    assert.equal(hf.tensorDataOffset, BigInt(layout.dataOffset));
    assert.deepEqual(
      hf.tensorInfos.map((ti) => [ti.name, ti.shape.map(Number), ti.dtype, Number(ti.offset)]),
      [
        ["a.weight", [8], GgmlType.F32, 0],
        ["b.weight", [3, 2], GgmlType.F16, 32],
      ],
    );
  });

  void test("tensor data sits at aligned offsets with the right bytes", async () => {
    const f32 = ramp(5, 0.5); // 20 bytes → padded to 32
    const f16 = ramp(33, 0.01); // 66 bytes → padded to 96
    const q8 = new Uint8Array(Number(ggmlTensorBytes(GgmlType.Q8_0, 64))).map((_, i) => i & 0xff);
    const doc: GgufDocument = {
      metadata: { "general.architecture": GgufValue.string("x"), "general.name": GgufValue.string("odd-size header!") },
      tensors: [
        { name: "f32", shape: [5], type: "F32", data: f32 },
        { name: "f16", shape: [33], type: "F16", data: Array.from(f16) },
        { name: "q8", shape: [32, 2], ggmlType: GgmlType.Q8_0, bytes: q8 },
      ],
    };
    const buf = await encodeGguf(doc);
    const layout = planGguf(doc);
    const parsed = parse(buf);
    assert.ok(layout.headerBytes % 32 !== 0, "the test needs a header that is not already aligned");
    assert.equal(layout.dataOffset % 32, 0);
    assert.ok(layout.dataOffset >= parsed.headerEnd && layout.dataOffset - parsed.headerEnd < 32);
    assert.ok(
      buf.subarray(parsed.headerEnd, layout.dataOffset).every((b) => b === 0),
      "header padding is zero",
    );
    assert.deepEqual(
      parsed.tensors.map((x) => [x.name, x.shape.map(Number), x.type, Number(x.offset)]),
      [
        ["f32", [5], GgmlType.F32, 0],
        ["f16", [33], GgmlType.F16, 32],
        ["q8", [32, 2], GgmlType.Q8_0, 128],
      ],
    );
    assert.equal(buf.length, layout.dataOffset + 128 + 96, "the last tensor (68 bytes) is padded too");
    assert.equal(buf.length % 32, 0);

    const view = new DataView(buf.buffer, buf.byteOffset);
    const base = layout.dataOffset;
    for (let i = 0; i < 5; i++) assert.equal(view.getFloat32(base + i * 4, true), f32[i]);
    assert.ok(buf.subarray(base + 20, base + 32).every((b) => b === 0));
    for (let i = 0; i < 33; i++) {
      const got = float16BitsToFloat32(view.getUint16(base + 32 + i * 2, true));
      assert.ok(Math.abs(got - f32ToNearest(f16[i]!)) === 0, `f16[${i}]`);
      assert.ok(Math.abs(got - f16[i]!) <= Math.abs(f16[i]!) * 2 ** -11 + 2 ** -25);
    }
    assert.deepEqual(buf.subarray(base + 128, base + 128 + q8.length), q8);
  });

  void test("a non-default alignment is recorded as general.alignment and honoured", async () => {
    const doc: GgufDocument = {
      metadata: [["general.architecture", GgufValue.string("x")]],
      tensors: [
        { name: "a", shape: [3], type: "F32", data: [1, 2, 3] },
        { name: "b", shape: [1], type: "F32", data: [4] },
      ],
      alignment: 64,
    };
    const buf = await encodeGguf(doc);
    const parsed = parse(buf);
    assert.deepEqual(parsed.kv.get("general.alignment"), { type: GgufValueType.UINT32, value: 64 });
    assert.deepEqual(
      parsed.tensors.map((x) => Number(x.offset)),
      [0, 64],
    );
    const layout = planGguf(doc);
    assert.equal(layout.dataOffset % 64, 0);
    assert.equal(layout.tensors[1]!.fileOffset, layout.dataOffset + 64);
    assert.equal(new DataView(buf.buffer, buf.byteOffset).getFloat32(layout.tensors[1]!.fileOffset, true), 4);
    // given only through metadata, the same result
    const viaMeta = await encodeGguf({
      metadata: [
        ["general.architecture", GgufValue.string("x")],
        ["general.alignment", GgufValue.u32(64)],
      ],
      tensors: doc.tensors,
    });
    assert.deepEqual(viaMeta, buf);
  });

  void test("the default alignment adds no key", async () => {
    const parsed = parse(await encodeGguf({ metadata: { a: GgufValue.bool(true) } }));
    assert.deepEqual([...parsed.kv.keys()], ["a"]);
    assert.equal(parsed.tensors.length, 0);
  });

  void test("writeGguf streams lazy tensors one at a time and renames into place", async (t) => {
    const dir = tmp(t);
    const path = join(dir, "lazy.gguf");
    const calls: string[] = [];
    await writeGguf(path, {
      metadata: { x: GgufValue.u8(1) },
      tensors: [
        { name: "a", shape: [4], type: "F32", data: () => (calls.push("a"), new Float32Array([1, 2, 3, 4])) },
        { name: "b", shape: [2], type: "F16", data: async () => (calls.push("b"), new Float32Array([0.5, -1])) },
      ],
    });
    assert.deepEqual(calls, ["a", "b"]);
    assert.deepEqual(readdirSync(dir), ["lazy.gguf"]);
    const hf = await gguf(path, { allowLocalFile: true });
    assert.equal(hf.tensorInfos.length, 2);
    assert.equal(statSync(path).size, Number(hf.tensorDataOffset) + 32 + 32);
  });

  void test("a failing tensor leaves no file behind", async (t) => {
    const dir = tmp(t);
    const path = join(dir, "bad.gguf");
    await assert.rejects(
      writeGguf(path, {
        metadata: {},
        tensors: [{ name: "a", shape: [4], type: "F32", data: () => new Float32Array(3) }],
      }),
      /tensor a: shape \[4\] needs 4 values, got 3/,
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  void test("invalid documents are rejected with a clear message", () => {
    const f = (doc: GgufDocument) => () => planGguf(doc);
    assert.throws(f({ metadata: { a: GgufValue.u8(256) } }), /key a: 256 is not a valid u8/);
    assert.throws(f({ metadata: { a: GgufValue.i8(1.5) } }), /not a valid i8/);
    assert.throws(f({ metadata: { a: GgufValue.u32(-1) } }), /not a valid u32/);
    assert.throws(f({ metadata: { a: GgufValue.u64(-1n) } }), /not a valid u64/);
    assert.throws(f({ metadata: { a: GgufValue.i64(1n << 63n) } }), /not a valid i64/);
    assert.throws(f({ metadata: { a: GgufValue.array("u16", [1, 70000]) } }), /70000 is not a valid u16/);
    assert.throws(
      f({
        metadata: [
          ["a", GgufValue.u8(1)],
          ["a", GgufValue.u8(2)],
        ],
      }),
      /key a: appears twice/,
    );
    assert.throws(f({ metadata: {}, alignment: 24 }), /24 is not a power of two/);
    assert.throws(f({ metadata: { "general.alignment": GgufValue.u64(32) } }), /must be a u32/);
    assert.throws(f({ metadata: { "general.alignment": GgufValue.u32(32) }, alignment: 64 }), /disagrees/);
    const t1 = { name: "t", shape: [2], type: "F32", data: [1, 2] } as const;
    assert.throws(f({ metadata: {}, tensors: [t1, t1] }), /tensor t: appears twice/);
    assert.throws(f({ metadata: {}, tensors: [{ ...t1, name: "x".repeat(64) }] }), /name must be 1\.\.63 bytes/);
    assert.throws(f({ metadata: {}, tensors: [{ ...t1, shape: [1, 1, 1, 1, 2] }] }), /needs 1\.\.4 dimensions/);
    assert.throws(f({ metadata: {}, tensors: [{ ...t1, shape: [0] }] }), /bad dimension 0/);
    assert.throws(
      f({ metadata: {}, tensors: [{ name: "q", shape: [16], ggmlType: GgmlType.Q4_0, bytes: new Uint8Array(9) }] }),
      /not a multiple of Q4_0's block size 32/,
    );
  });

  void test("raw tensors must carry exactly their byte size", async () => {
    await assert.rejects(
      encodeGguf({
        metadata: {},
        tensors: [{ name: "q", shape: [32], ggmlType: GgmlType.Q8_0, bytes: new Uint8Array(33) }],
      }),
      /tensor q: needs 34 bytes, got 33/,
    );
  });
});

/** The float16 value nearest to x, computed independently by searching the ordered positive halves. */
function f32ToNearest(x: number): number {
  const ax = Math.abs(x);
  let lo = 0;
  let hi = 0x7bff;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (float16BitsToFloat32(mid) <= ax) lo = mid;
    else hi = mid;
  }
  const a = float16BitsToFloat32(lo);
  const b = float16BitsToFloat32(hi);
  const da = ax - a;
  const db = b - ax;
  const pick = da < db ? a : db < da ? b : (lo & 1) === 0 ? a : b;
  return Math.sign(x) * pick;
}

void describe("tiny models", () => {
  void test("same options give the same bytes; another seed gives other weights", async (t) => {
    const dir = tmp(t);
    const a1 = await writeTinyModel(dir, { name: "a1", kind: "chat", seed: 5 });
    const a2 = await writeTinyModel(join(dir), { name: "a2.gguf", kind: "chat", seed: 5 });
    const b = await writeTinyModel(dir, { name: "b", kind: "chat", seed: 6 });
    assert.equal(a2, join(dir, "a2.gguf"));
    const [x, y, z] = [a1, a2, b].map((p) => readFileSync(p));
    // the names differ (general.name), so compare the tensor data sections
    const hf = await gguf(a1, { allowLocalFile: true });
    const off = Number(hf.tensorDataOffset);
    const offB = Number((await gguf(a2, { allowLocalFile: true })).tensorDataOffset);
    assert.deepEqual(x!.subarray(off), y!.subarray(offB));
    assert.notDeepEqual(x!.subarray(off), z!.subarray(off));
  });

  void test("the llama layout, vocabulary and silenced output rows", async (t) => {
    const dir = tmp(t);
    const path = await writeTinyModel(dir, {
      name: "tiny-think",
      kind: "think",
      layers: 2,
      embd: 32,
      contextLength: 4096,
    });
    const buf = new Uint8Array(readFileSync(path));
    const parsed = parse(buf);
    const md = (k: string) => parsed.kv.get(k)?.value;
    assert.equal(md("general.architecture"), "llama");
    assert.equal(md("general.name"), "tiny-think");
    assert.equal(md("llama.context_length"), 4096);
    assert.equal(md("llama.embedding_length"), 32);
    assert.equal(md("llama.block_count"), 2);
    assert.equal(md("llama.attention.head_count"), 2);
    assert.equal(md("llama.attention.head_count_kv"), 1);
    assert.equal(md("llama.rope.dimension_count"), 16);
    assert.equal(md("tokenizer.ggml.model"), "llama");
    assert.equal(md("tokenizer.chat_template"), readFileSync(TINY_TEMPLATE_FILES.think, "utf8"));
    assert.match(String(md("tokenizer.chat_template")), /<think>/);
    const vocab = tinyVocab();
    const tokens = (md("tokenizer.ggml.tokens") as { items: string[] }).items;
    const types = (md("tokenizer.ggml.token_type") as { items: number[] }).items;
    assert.deepEqual(tokens, vocab.tokens);
    assert.deepEqual(tokens.slice(0, 3), ["<unk>", "<s>", "</s>"]);
    assert.equal(tokens.filter((s, i) => /^<0x[0-9A-F]{2}>$/.test(s) && types[i] === TokenType.BYTE).length, 256);
    for (let c = 0x20; c < 0x7f; c++) {
      assert.ok(
        tokens.includes(c === 0x20 ? "\u2581" : String.fromCharCode(c)),
        `token for ${JSON.stringify(String.fromCharCode(c))}`,
      );
    }
    assert.equal(new Set(tokens).size, tokens.length, "no duplicate tokens");
    for (const piece of tokens.filter((s, i) => types[i] === TokenType.NORMAL && [...s].length > 1)) {
      assert.ok(
        tokens.includes([...piece].slice(0, -1).join("")),
        `${piece}: its prefix is a token so SPM can merge it`,
      );
    }
    const names = parsed.tensors.map((x) => x.name);
    assert.deepEqual(names.slice(0, 3), ["token_embd.weight", "output_norm.weight", "output.weight"]);
    for (const l of [0, 1]) {
      for (const part of [
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
      ]) {
        assert.ok(names.includes(`blk.${l}.${part}.weight`), `blk.${l}.${part}`);
      }
    }
    // output rows: silenced tokens get -bias on dimension 0 and zeros elsewhere, others +bias and spread
    const layout = planGguf(
      tinyModelDocument({ name: "tiny-think", kind: "think", layers: 2, embd: 32, contextLength: 4096 }),
    );
    const out = layout.tensors.find((x) => x.name === "output.weight")!;
    assert.equal(out.ggmlType, GgmlType.F16);
    const view = new DataView(buf.buffer, buf.byteOffset);
    const row = (tok: number) =>
      Array.from({ length: 32 }, (_, i) =>
        float16BitsToFloat32(view.getUint16(out.fileOffset + (tok * 32 + i) * 2, true)),
      );
    const silentRow = row(tokens.indexOf("<0x80>"));
    assert.ok(silentRow[0]! < 0 && silentRow.slice(1).every((v) => v === 0));
    assert.ok(vocab.silenced.has(tokens.indexOf("<0xFF>")) && vocab.silenced.has(vocab.eos));
    assert.ok(!vocab.silenced.has(tokens.indexOf("<0x0A>")), "newline stays reachable");
    const liveRow = row(tokens.indexOf("a"));
    assert.ok(liveRow[0]! > 0 && liveRow.slice(1).some((v) => v !== 0));
  });

  void test("broken-file helpers", async (t) => {
    const dir = tmp(t);
    const src = await writeTinyModel(dir, { name: "m", kind: "chat" });
    const cut = await writeTruncatedGguf(src, join(dir, "cut.gguf"), 100);
    assert.deepEqual(readFileSync(cut), readFileSync(src).subarray(0, 100));
    await assert.rejects(writeTruncatedGguf(src, join(dir, "x.gguf"), -1), RangeError);
    const bad = await writeNotGguf(join(dir, "bad.gguf"));
    assert.notDeepEqual(readFileSync(bad).subarray(0, 4), Buffer.from("GGUF"));
  });
});
