/**
 * GGUF v3 writer: metadata of every GGUF value type, tensors in F32 and F16 (converted from float32 with
 * round-to-nearest-even) or as pre-encoded bytes of any GGML type, little endian, tensor data aligned to
 * `general.alignment` (32 by default).
 *
 *   await writeGguf("/tmp/m.gguf", {
 *     metadata: { "general.architecture": GgufValue.string("llama"), "llama.block_count": GgufValue.u32(1) },
 *     tensors: [{ name: "output_norm.weight", shape: [64], type: "F32", data: new Float32Array(64).fill(1) }],
 *   });
 *
 * Layout: header (magic, version, tensor count, kv count) · key/values · tensor infos · padding · data. Each
 * tensor's offset is relative to the start of the data section and a multiple of the alignment; each tensor is
 * followed by zero padding up to the alignment. `writeGguf` streams: it holds one tensor's bytes at a time, so
 * tensors given as functions are produced only when their turn comes.
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import {
  GGML_BLOCK_LAYOUT,
  GGML_MAX_DIMS,
  GGML_MAX_NAME_BYTES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufValueType,
  ggmlTensorBytes,
  ggmlTypeName,
} from "../../src/gguf/types.js";

// ---------------------------------------------------------------------------------------------------------------
// Metadata values

export type GgufNumberKind = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigIntKind = "u64" | "i64";
export type GgufScalarKind = GgufNumberKind | GgufBigIntKind | "bool" | "string";

export type GgufScalar =
  | { readonly type: GgufNumberKind; readonly value: number }
  | { readonly type: GgufBigIntKind; readonly value: bigint }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string };

export type GgufArray =
  | { readonly type: "array"; readonly itemType: GgufNumberKind; readonly value: readonly number[] | ArrayLike<number> }
  | { readonly type: "array"; readonly itemType: GgufBigIntKind; readonly value: readonly bigint[] }
  | { readonly type: "array"; readonly itemType: "bool"; readonly value: readonly boolean[] }
  | { readonly type: "array"; readonly itemType: "string"; readonly value: readonly string[] }
  | { readonly type: "array"; readonly itemType: "array"; readonly value: readonly GgufArray[] };

/** One metadata value with its GGUF type spelled out (llama.cpp checks the type of every key it reads). */
export type GgufValue = GgufScalar | GgufArray;

/** Constructors: `GgufValue.u32(2048)`, `GgufValue.array("string", tokens)`. */
export const GgufValue = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i8: (value: number): GgufValue => ({ type: "i8", value }),
  u16: (value: number): GgufValue => ({ type: "u16", value }),
  i16: (value: number): GgufValue => ({ type: "i16", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  u64: (value: bigint | number): GgufValue => ({ type: "u64", value: BigInt(value) }),
  i64: (value: bigint | number): GgufValue => ({ type: "i64", value: BigInt(value) }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  string: (value: string): GgufValue => ({ type: "string", value }),
  array: arrayValue,
} as const;

function arrayValue(itemType: GgufNumberKind, value: readonly number[] | ArrayLike<number>): GgufArray;
function arrayValue(itemType: GgufBigIntKind, value: readonly bigint[]): GgufArray;
function arrayValue(itemType: "bool", value: readonly boolean[]): GgufArray;
function arrayValue(itemType: "string", value: readonly string[]): GgufArray;
function arrayValue(itemType: "array", value: readonly GgufArray[]): GgufArray;
function arrayValue(
  itemType: GgufScalarKind | "array",
  value:
    | readonly number[]
    | ArrayLike<number>
    | readonly bigint[]
    | readonly boolean[]
    | readonly string[]
    | readonly GgufArray[],
): GgufArray {
  return { type: "array", itemType, value } as GgufArray;
}

const KIND_ID: Readonly<Record<GgufScalarKind | "array", GgufValueType>> = {
  u8: GgufValueType.UINT8,
  i8: GgufValueType.INT8,
  u16: GgufValueType.UINT16,
  i16: GgufValueType.INT16,
  u32: GgufValueType.UINT32,
  i32: GgufValueType.INT32,
  f32: GgufValueType.FLOAT32,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
  array: GgufValueType.ARRAY,
  u64: GgufValueType.UINT64,
  i64: GgufValueType.INT64,
  f64: GgufValueType.FLOAT64,
};

const INT_RANGE: Readonly<Record<Exclude<GgufNumberKind, "f32" | "f64">, readonly [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

// ---------------------------------------------------------------------------------------------------------------
// Tensors

/** Shapes are in ggml order: `shape[0]` is the fastest-moving dimension (a row), e.g. `[n_embd, n_vocab]`. */
export type TensorData<T> = T | (() => T | Promise<T>);

/** A tensor given as float32 values; written as F32, or as F16 after conversion. */
export interface GgufFloatTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: "F32" | "F16";
  readonly data: TensorData<Float32Array | readonly number[]>;
}

/** A tensor whose bytes are already encoded in `ggmlType` (any GGML type, e.g. Q8_0 blocks). */
export interface GgufRawTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly ggmlType: GgmlType;
  readonly bytes: TensorData<Uint8Array>;
}

export type GgufTensor = GgufFloatTensor | GgufRawTensor;

export interface GgufDocument {
  /** Keys in file order. A plain object keeps insertion order; an entry list allows building it up. */
  readonly metadata: Readonly<Record<string, GgufValue>> | ReadonlyArray<readonly [string, GgufValue]>;
  readonly tensors?: readonly GgufTensor[];
  /**
   * Tensor data alignment, a power of two. Default: the `general.alignment` value in metadata, else 32. When it
   * is not 32 and metadata lacks `general.alignment`, the writer adds that key.
   */
  readonly alignment?: number;
}

export interface GgufTensorPlacement {
  readonly name: string;
  readonly shape: readonly number[];
  readonly ggmlType: GgmlType;
  /** Offset from the start of the data section (what the tensor info stores). */
  readonly offset: number;
  /** Offset from the start of the file. */
  readonly fileOffset: number;
  readonly bytes: number;
}

export interface GgufLayout {
  readonly alignment: number;
  readonly kvCount: number;
  /** Bytes of header + key/values + tensor infos, before padding. */
  readonly headerBytes: number;
  /** File offset of the data section (headerBytes rounded up to the alignment). */
  readonly dataOffset: number;
  readonly tensors: readonly GgufTensorPlacement[];
  /** Total file size. */
  readonly fileBytes: number;
}

// ---------------------------------------------------------------------------------------------------------------
// float32 → float16

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary16 bits of `value`, rounded to nearest, ties to even; overflow gives ±Inf, NaN stays NaN. */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): value = m · 2^-24 with m = (1.mant) · 2^(e - 14 + 24 - 10)
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // a carry out of the mantissa bumps the exponent, which is exactly right (and gives Inf past 65504)
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

/** The float value of binary16 bits (exact). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Float16 encoding of a float32 array, as little-endian bytes. */
export function encodeFloat16(values: Float32Array | readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, float32ToFloat16Bits(values[i]!), true);
  return out;
}

function encodeFloat32(values: Float32Array | readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

const utf8 = new TextEncoder();

/** A growable little-endian byte buffer. */
class ByteSink {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, v, true);
    this.length += 8;
  }
  i64(v: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  /** GGUF string: u64 byte length, then UTF-8 bytes, no terminator. */
  str(s: string): void {
    const b = utf8.encode(s);
    this.u64(BigInt(b.length));
    this.bytes(b);
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function fail(where: string, message: string): never {
  throw new RangeError(`GGUF ${where}: ${message}`);
}

function writeNumber(sink: ByteSink, kind: GgufNumberKind, v: number, where: string): void {
  if (typeof v !== "number") fail(where, `expected a number for ${kind}, got ${typeof v}`);
  if (kind === "f32") return sink.f32(v);
  if (kind === "f64") return sink.f64(v);
  const [lo, hi] = INT_RANGE[kind];
  if (!Number.isInteger(v) || v < lo || v > hi) fail(where, `${v} is not a valid ${kind}`);
  sink[kind](v);
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function writeBigInt(sink: ByteSink, kind: GgufBigIntKind, v: bigint, where: string): void {
  if (typeof v !== "bigint") fail(where, `expected a bigint for ${kind}, got ${typeof v}`);
  if (kind === "u64") {
    if (v < 0n || v > U64_MAX) fail(where, `${v} is not a valid u64`);
    sink.u64(v);
  } else {
    if (v < I64_MIN || v > I64_MAX) fail(where, `${v} is not a valid i64`);
    sink.i64(v);
  }
}

function writeArrayBody(sink: ByteSink, arr: GgufArray, where: string): void {
  sink.u32(KIND_ID[arr.itemType]);
  sink.u64(BigInt(arr.value.length));
  switch (arr.itemType) {
    case "string":
      for (const s of arr.value) {
        if (typeof s !== "string") fail(where, `expected strings in a string array, got ${typeof s}`);
        sink.str(s);
      }
      return;
    case "bool":
      for (const b of arr.value) {
        if (typeof b !== "boolean") fail(where, `expected booleans in a bool array, got ${typeof b}`);
        sink.u8(b ? 1 : 0);
      }
      return;
    case "u64":
    case "i64":
      for (const v of arr.value) writeBigInt(sink, arr.itemType, v, where);
      return;
    case "array":
      for (const inner of arr.value) writeArrayBody(sink, inner, where);
      return;
    default: {
      const kind = arr.itemType;
      const values = arr.value;
      for (let i = 0; i < values.length; i++) writeNumber(sink, kind, values[i]!, where);
    }
  }
}

function writeValue(sink: ByteSink, v: GgufValue, where: string): void {
  sink.u32(KIND_ID[v.type]);
  const raw: unknown = v.value;
  switch (v.type) {
    case "string":
      if (typeof v.value !== "string") fail(where, `expected a string, got ${typeof raw}`);
      return sink.str(v.value);
    case "bool":
      if (typeof v.value !== "boolean") fail(where, `expected a boolean, got ${typeof raw}`);
      return sink.u8(v.value ? 1 : 0);
    case "u64":
    case "i64":
      return writeBigInt(sink, v.type, v.value, where);
    case "array":
      return writeArrayBody(sink, v, where);
    default:
      return writeNumber(sink, v.type, v.value, where);
  }
}

function isRaw(t: GgufTensor): t is GgufRawTensor {
  return "ggmlType" in t;
}

function tensorType(t: GgufTensor): GgmlType {
  return isRaw(t) ? t.ggmlType : GgmlType[t.type];
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function metadataEntries(doc: GgufDocument): (readonly [string, GgufValue])[] {
  const entries = Array.isArray(doc.metadata)
    ? [...(doc.metadata as ReadonlyArray<readonly [string, GgufValue]>)]
    : Object.entries(doc.metadata as Readonly<Record<string, GgufValue>>);
  const seen = new Set<string>();
  for (const [key] of entries) {
    if (key.length === 0) fail("metadata", "empty key");
    if (seen.has(key)) fail(`key ${key}`, "appears twice");
    seen.add(key);
  }
  return entries;
}

function resolveAlignment(doc: GgufDocument, entries: (readonly [string, GgufValue])[]): number {
  const found = entries.find(([k]) => k === "general.alignment");
  let fromMeta: number | undefined;
  if (found) {
    const v = found[1];
    if (v.type !== "u32") fail("key general.alignment", `must be a u32, got ${v.type}`);
    fromMeta = v.value;
  }
  const alignment = doc.alignment ?? fromMeta ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    fail("alignment", `${alignment} is not a power of two`);
  }
  if (fromMeta !== undefined && fromMeta !== alignment) {
    fail("alignment", `option ${alignment} disagrees with general.alignment ${fromMeta}`);
  }
  if (fromMeta === undefined && alignment !== GGUF_DEFAULT_ALIGNMENT) {
    entries.push(["general.alignment", GgufValue.u32(alignment)]);
  }
  return alignment;
}

function checkTensor(t: GgufTensor, names: Set<string>): number {
  const where = `tensor ${t.name}`;
  const nameBytes = utf8.encode(t.name).length;
  if (nameBytes === 0 || nameBytes > GGML_MAX_NAME_BYTES) fail(where, `name must be 1..${GGML_MAX_NAME_BYTES} bytes`);
  if (names.has(t.name)) fail(where, "appears twice");
  names.add(t.name);
  if (t.shape.length < 1 || t.shape.length > GGML_MAX_DIMS) fail(where, `needs 1..${GGML_MAX_DIMS} dimensions`);
  let elements = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d <= 0) fail(where, `bad dimension ${d}`);
    elements *= d;
  }
  const type = tensorType(t);
  if (!(type in GGML_BLOCK_LAYOUT)) fail(where, `unknown GGML type ${type}`);
  const { blockSize } = GGML_BLOCK_LAYOUT[type];
  if (t.shape[0]! % blockSize !== 0) {
    fail(where, `first dimension ${t.shape[0]} is not a multiple of ${ggmlTypeName(type)}'s block size ${blockSize}`);
  }
  return Number(ggmlTensorBytes(type, elements));
}

interface Plan {
  readonly layout: GgufLayout;
  readonly header: Uint8Array;
}

function plan(doc: GgufDocument): Plan {
  const entries = metadataEntries(doc);
  const alignment = resolveAlignment(doc, entries);
  const tensors = doc.tensors ?? [];
  const names = new Set<string>();
  const sizes = tensors.map((t) => checkTensor(t, names));

  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(BigInt(tensors.length));
  sink.u64(BigInt(entries.length));
  for (const [key, value] of entries) {
    sink.str(key);
    writeValue(sink, value, `key ${key}`);
  }
  const placements: GgufTensorPlacement[] = [];
  let offset = 0;
  tensors.forEach((t, i) => {
    const bytes = sizes[i]!;
    sink.str(t.name);
    sink.u32(t.shape.length);
    for (const d of t.shape) sink.u64(BigInt(d));
    sink.u32(tensorType(t));
    sink.u64(BigInt(offset));
    placements.push({ name: t.name, shape: [...t.shape], ggmlType: tensorType(t), offset, fileOffset: 0, bytes });
    offset += alignUp(bytes, alignment);
  });
  const headerBytes = sink.length;
  const dataOffset = alignUp(headerBytes, alignment);
  sink.zeros(dataOffset - headerBytes);
  const layout: GgufLayout = {
    alignment,
    kvCount: entries.length,
    headerBytes,
    dataOffset,
    tensors: placements.map((p) => ({ ...p, fileOffset: dataOffset + p.offset })),
    fileBytes: dataOffset + offset,
  };
  return { layout, header: sink.result() };
}

/** Where everything would go, without producing tensor data. Throws on an invalid document. */
export function planGguf(doc: GgufDocument): GgufLayout {
  return plan(doc).layout;
}

async function tensorBytes(t: GgufTensor, expected: number): Promise<Uint8Array> {
  let bytes: Uint8Array;
  if (isRaw(t)) {
    bytes = typeof t.bytes === "function" ? await t.bytes() : t.bytes;
  } else {
    const values = typeof t.data === "function" ? await t.data() : t.data;
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (values.length !== elements) {
      fail(`tensor ${t.name}`, `shape [${t.shape.join(", ")}] needs ${elements} values, got ${values.length}`);
    }
    bytes = t.type === "F16" ? encodeFloat16(values) : encodeFloat32(values);
  }
  if (bytes.length !== expected) fail(`tensor ${t.name}`, `needs ${expected} bytes, got ${bytes.length}`);
  return bytes;
}

/**
 * The file as a sequence of chunks: the header (with key/values, tensor infos and padding), then each tensor's
 * data followed by its padding. Holds at most one tensor's data at a time.
 */
export async function* ggufChunks(doc: GgufDocument): AsyncGenerator<Uint8Array, GgufLayout, void> {
  const { layout, header } = plan(doc);
  yield header;
  const tensors = doc.tensors ?? [];
  for (let i = 0; i < tensors.length; i++) {
    const placement = layout.tensors[i]!;
    const bytes = await tensorBytes(tensors[i]!, placement.bytes);
    yield bytes;
    const pad = alignUp(bytes.length, layout.alignment) - bytes.length;
    if (pad > 0) yield new Uint8Array(pad);
  }
  return layout;
}

/** The whole file in memory. */
export async function encodeGguf(doc: GgufDocument): Promise<Uint8Array> {
  const layout = planGguf(doc);
  const out = new Uint8Array(layout.fileBytes);
  let at = 0;
  for await (const chunk of ggufChunks(doc)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Writes the document to `path`, streaming tensor by tensor into `path.<pid>-<random>.tmp` and renaming it into place,
 * so a reader never sees half a file. Returns where everything went.
 */
export async function writeGguf(path: string, doc: GgufDocument): Promise<GgufLayout> {
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "w");
  let layout: GgufLayout | undefined;
  try {
    const it = ggufChunks(doc);
    for (;;) {
      const r = await it.next();
      if (r.done) {
        layout = r.value;
        break;
      }
      await fh.write(r.value);
    }
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  await rename(tmp, path);
  return layout;
}
