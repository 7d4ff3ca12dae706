/**
 * GGUF header reader: the key/values and tensor infos of a local .gguf file, never the tensor data.
 *
 * Why not @huggingface/gguf: it materialises every token of the vocabulary (150k+ strings, their scores and types)
 * and took ~10x longer on a 150k-token file (numbers in the closing note of the issue and in
 * test/unit/gguf/reader.test.ts). This reader walks the same bytes in a synchronous loop over a buffer, keeps
 * small arrays and replaces big ones by `{ itemType, length }`, and reads the file in growing chunks, so only the
 * header section is read from disk.
 *
 *   const meta = await readModelMetadata("/models/qwen3-8b-q4_k_m.gguf");
 *   meta.architecture, meta.contextLength, meta.chatTemplate, meta.totalBytes, meta.layerBytes …
 *
 * Split models (`name-00001-of-00003.gguf`): metadata from the first shard, sizes and tensors summed over all.
 * Multimodal projectors (`general.type = "mmproj"`, architecture `clip`, or named so: src/gguf/names.ts) are
 * flagged.
 */
import { open, stat } from "node:fs/promises";
import { matmulLayout, type MatmulLayout } from "./matmul.js";
import { isMmprojFile, shardPaths } from "./names.js";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGML_BLOCK_LAYOUT,
  GGUF_SCALAR_BYTES,
  GgufValueType,
  ggmlTypeName,
  isGgmlType,
} from "./types.js";

// ---------------------------------------------------------------------------------------------------------------
// Raw header

/** A big array left unread: its element type and length. */
export interface GgufArraySummary {
  readonly itemType: number;
  readonly length: number;
}

export type GgufScalarValue = string | number | bigint | boolean;
export type GgufReadValue = GgufScalarValue | GgufReadValue[] | GgufArraySummary;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: shape[0] is the row length. */
  shape: number[];
  /** GGML type id (types.ts GgmlType). */
  type: number;
  /** Offset within the data section. */
  offset: number;
  /** Bytes of data; undefined for a type id this reader does not know. */
  bytes?: number;
}

export interface GgufHeader {
  version: number;
  kv: Map<string, GgufReadValue>;
  /** Value type id of each key (for arrays: ARRAY). */
  kvTypes: Map<string, number>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Where tensor data starts (after the padding that follows the tensor infos). */
  dataOffset: number;
}

export interface ReadHeaderOptions {
  /** Arrays longer than this are summarised, not read (default 64). */
  maxArrayItems?: number;
  /** Keys whose arrays are always read in full, whatever their length. */
  fullArrays?: readonly string[];
  /** Read the tensor infos too (default true). */
  tensors?: boolean;
}

export class GgufFormatError extends Error {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(message);
    this.name = "GgufFormatError";
  }
}

/** Thrown by the synchronous parser when the buffer ends early; the driver reads more and starts over. */
export class NeedMore extends Error {
  constructor(readonly bytes: number) {
    super(`need ${bytes} bytes`);
  }
}

const TEXT = new TextDecoder("utf-8", { fatal: false });

class Cursor {
  pos = 0;
  private readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    /** True when buf holds the whole file: running out is then a format error, not a reason to read more. */
    private readonly complete: boolean,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) {
      if (this.complete)
        throw new GgufFormatError(
          `the file ends inside the GGUF header (at byte ${this.pos}, ${n} more needed): it is truncated`,
        );
      throw new NeedMore(this.pos + n);
    }
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** u64 as a JS number (exact below 2^53; lengths and counts always are). */
  u64n(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    return hi * 0x1_0000_0000 + lo;
  }
  string(): string {
    const len = this.u64n();
    this.need(len);
    const s = TEXT.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
  skipString(): void {
    const len = this.u64n();
    this.need(len);
    this.pos += len;
  }
  scalar(type: number): GgufScalarValue {
    const v = this.view;
    switch (type) {
      case GgufValueType.UINT8:
        return this.u8();
      case GgufValueType.INT8:
        this.need(1);
        return v.getInt8(this.pos++);
      case GgufValueType.UINT16:
        this.need(2);
        this.pos += 2;
        return v.getUint16(this.pos - 2, true);
      case GgufValueType.INT16:
        this.need(2);
        this.pos += 2;
        return v.getInt16(this.pos - 2, true);
      case GgufValueType.UINT32:
        return this.u32();
      case GgufValueType.INT32:
        this.need(4);
        this.pos += 4;
        return v.getInt32(this.pos - 4, true);
      case GgufValueType.FLOAT32:
        this.need(4);
        this.pos += 4;
        return v.getFloat32(this.pos - 4, true);
      case GgufValueType.BOOL:
        return this.u8() !== 0;
      case GgufValueType.STRING:
        return this.string();
      case GgufValueType.UINT64: {
        this.need(8);
        this.pos += 8;
        const b = v.getBigUint64(this.pos - 8, true);
        return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
      }
      case GgufValueType.INT64: {
        this.need(8);
        this.pos += 8;
        const b = v.getBigInt64(this.pos - 8, true);
        return b <= BigInt(Number.MAX_SAFE_INTEGER) && b >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(b) : b;
      }
      case GgufValueType.FLOAT64:
        this.need(8);
        this.pos += 8;
        return v.getFloat64(this.pos - 8, true);
      default:
        throw new GgufFormatError(`unknown GGUF value type ${type} at byte ${this.pos}`);
    }
  }
  value(type: number, maxItems: number, full: boolean): GgufReadValue {
    if (type !== GgufValueType.ARRAY) return this.scalar(type);
    const itemType = this.u32();
    const length = this.u64n();
    if (full || length <= maxItems) {
      const out: GgufReadValue[] = [];
      for (let i = 0; i < length; i++) out.push(this.value(itemType, maxItems, full));
      return out;
    }
    this.skipArray(itemType, length);
    return { itemType, length };
  }
  skipArray(itemType: number, length: number): void {
    if (itemType === GgufValueType.STRING) {
      for (let i = 0; i < length; i++) this.skipString();
    } else if (itemType === GgufValueType.ARRAY) {
      for (let i = 0; i < length; i++) {
        const t = this.u32();
        const n = this.u64n();
        this.skipArray(t, n);
      }
    } else {
      const w = SCALAR_WIDTH[itemType];
      if (w === undefined) throw new GgufFormatError(`unknown GGUF array item type ${itemType} at byte ${this.pos}`);
      this.need(w * length);
      this.pos += w * length;
    }
  }
}

const SCALAR_WIDTH: Readonly<Record<number, number | undefined>> = GGUF_SCALAR_BYTES;

/** Tensor bytes from its shape and type (rows of whole blocks). */
export function tensorBytes(type: number, shape: readonly number[]): number | undefined {
  if (!isGgmlType(type)) return undefined;
  const { blockSize, typeSize } = GGML_BLOCK_LAYOUT[type];
  let n = 1;
  for (const d of shape) n *= d;
  return Math.ceil(n / blockSize) * typeSize;
}

/**
 * Parses a GGUF header from bytes. `complete` says the bytes are the whole file (else running out of bytes
 * throws the internal NeedMore signal). Exported for tests; use readGgufHeader for files.
 */
export function parseGgufHeader(buf: Uint8Array, complete: boolean, options: ReadHeaderOptions = {}): GgufHeader {
  const c = new Cursor(buf, complete);
  const maxItems = options.maxArrayItems ?? 64;
  const full = new Set(options.fullArrays ?? []);
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    throw new GgufFormatError(
      `not a GGUF file (the first bytes are ${JSON.stringify(TEXT.decode(buf.subarray(0, 4)))}, not "GGUF")`,
    );
  }
  const version = c.u32();
  if (version < 2 || version > 3) throw new GgufFormatError(`GGUF version ${version} is not supported (2 and 3 are)`);
  const tensorCount = c.u64n();
  const kvCount = c.u64n();
  const kv = new Map<string, GgufReadValue>();
  const kvTypes = new Map<string, number>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string();
    const type = c.u32();
    kv.set(key, c.value(type, maxItems, full.has(key)));
    kvTypes.set(key, type);
  }
  const alignRaw = kv.get("general.alignment");
  const alignment = typeof alignRaw === "number" && alignRaw > 0 ? alignRaw : GGUF_DEFAULT_ALIGNMENT;
  const tensors: GgufTensorInfo[] = [];
  if (options.tensors !== false) {
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string();
      const nDims = c.u32();
      if (nDims > 8) throw new GgufFormatError(`tensor ${name} has ${nDims} dimensions: the header is corrupt`);
      const shape: number[] = [];
      for (let d = 0; d < nDims; d++) shape.push(c.u64n());
      const type = c.u32();
      const offset = c.u64n();
      const t: GgufTensorInfo = { name, shape, type, offset };
      const bytes = tensorBytes(type, shape);
      if (bytes !== undefined) t.bytes = bytes;
      tensors.push(t);
    }
  }
  const dataOffset = options.tensors === false ? 0 : Math.ceil(c.pos / alignment) * alignment;
  return { version, kv, kvTypes, tensors, alignment, dataOffset };
}

/**
 * Reads the header of a GGUF file. Reads 1 MiB first and grows the read (×4) while the header goes on, so a
 * multi-GB model costs a few MB of I/O.
 */
export async function readGgufHeader(path: string, options: ReadHeaderOptions = {}): Promise<GgufHeader> {
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    let want = Math.min(size, 1 << 20);
    let buf = new Uint8Array(0);
    for (;;) {
      if (want > buf.length) {
        const next = new Uint8Array(want);
        next.set(buf);
        let filled = buf.length;
        while (filled < want) {
          const { bytesRead } = await fh.read(next, filled, want - filled, filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        buf = next.subarray(0, filled);
      }
      try {
        return parseGgufHeader(buf, buf.length >= size, options);
      } catch (e) {
        if (e instanceof NeedMore) {
          want = Math.min(size, Math.max(e.bytes, buf.length * 4));
          continue;
        }
        if (e instanceof GgufFormatError) throw new GgufFormatError(`${path}: ${e.message}`, path);
        throw e;
      }
    }
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Model metadata

/** llama.cpp's file type (`general.file_type`, enum llama_ftype) → the usual quantization label. */
export const FILE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
};

/** `{arch}.pooling_type` (enum llama_pooling_type). */
export const POOLING_TYPES: Readonly<Record<number, string>> = { 0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank" };

/**
 * What gglib needs to know about a model, JSON-safe (the registry stores it as is). Absent fields were not in
 * the file.
 */
export interface ModelMetadata {
  /** The first file (the one to pass to `-m`). */
  path: string;
  /** Every file: the shards in order. */
  files: string[];
  /** Sum of the file sizes of all shards. */
  totalBytes: number;
  /** Sum of tensor data bytes (all shards). */
  tensorBytes: number;
  ggufVersion: number;
  architecture: string;
  /** `general.type`: "model", "mmproj", "adapter"… */
  type?: string;
  name?: string;
  /** `general.size_label`, e.g. "8B", "8x7B". */
  sizeLabel?: string;
  /** Sum of the tensors' element counts. */
  parameterCount: number;
  fileType?: number;
  /** "Q4_K_M", or the dominant tensor type when general.file_type is missing. */
  quantization?: string;
  contextLength?: number;
  blockCount?: number;
  embeddingLength?: number;
  feedForwardLength?: number;
  headCount?: number;
  /** The largest per-layer value when the file stores one per layer. */
  headCountKv?: number;
  /** Per layer, when the file stores an array (models with layers of different shape). */
  headCountKvPerLayer?: number[];
  keyLength?: number;
  valueLength?: number;
  /** `attention.key_length_swa` / `value_length_swa` (Gemma 4): the head size of sliding-window layers. */
  keyLengthSwa?: number;
  valueLengthSwa?: number;
  /** `attention.shared_kv_layers` (Gemma 4): the last n layers read an earlier layer's KV cache, keep none. */
  sharedKvLayers?: number;
  /** `embedding_length_per_layer_input` (Gemma 4 E2B/E4B): per-layer embedding values per layer and token. */
  embeddingLengthPerLayer?: number;
  /** Sliding-window size of SWA models (their SWA layers keep a bounded KV cache). */
  slidingWindow?: number;
  /** `attention.sliding_window_pattern` as a number: every n-th layer is global (src/models/estimate/layers.ts). */
  slidingWindowPattern?: number;
  /** `attention.sliding_window_pattern` as an array: per layer, true for a sliding-window layer. */
  slidingWindowLayers?: boolean[];
  /** `attention.recurrent_layers` (Qwen3.5): per layer, true for a recurrent (Gated DeltaNet) layer. */
  recurrentLayers?: boolean[];
  /** `full_attention_interval` (Qwen3.5): every n-th layer is attention, the others recurrent. */
  fullAttentionInterval?: number;
  /** Per layer, when the file stores `feed_forward_length` as an array (0 = no feed-forward in that block). */
  feedForwardLengthPerLayer?: number[];
  /** `ssm.conv_kernel`, `ssm.inner_size`, `ssm.state_size`, `ssm.group_count`: the recurrent state's shape. */
  ssmConvKernel?: number;
  ssmInnerSize?: number;
  ssmStateSize?: number;
  ssmGroupCount?: number;
  /** `ssm.time_step_rank`: Mamba-2's head count. */
  ssmTimeStepRank?: number;
  /** `shortconv.l_cache` (LFM2): the short convolution's length; its state keeps the last l_cache − 1 inputs. */
  shortconvLCache?: number;
  expertCount?: number;
  expertUsedCount?: number;
  /** Hidden width of one expert's FFN (MoE models). */
  expertFeedForwardLength?: number;
  vocabSize?: number;
  poolingType?: number;
  poolingTypeName?: string;
  /** `{arch}.attention.causal` = false: an encoder. */
  causalAttention?: boolean;
  chatTemplate?: string;
  /** Named extra templates (`tokenizer.chat_template.<name>`), e.g. tool_use. */
  chatTemplates?: Record<string, string>;
  /** A multimodal projector (not runnable alone; goes to `--mmproj`). */
  isMmproj: boolean;
  hasVisionEncoder?: boolean;
  hasAudioEncoder?: boolean;
  /** Split-model bookkeeping (`split.count`). */
  splitCount?: number;
  /** Data bytes per transformer block `blk.N.*` (index = N). */
  layerBytes: number[];
  /** `token_embd.*` bytes (llama.cpp keeps the input embedding on the host). */
  tokenEmbdBytes: number;
  /** `output.*` and `output_norm.*` bytes (on the GPU only when every layer is). */
  outputBytes: number;
  /** Tensors outside blocks other than the above (e.g. rope factors). */
  otherBytes: number;
  /**
   * The matrix weights grouped by type and shape, and which of them sit at the file's ends: what llama.cpp's CPU
   * backend may copy into AMX / CPU_REPACK buffers (src/models/repack.ts). Absent in registries written before.
   */
  matmul?: MatmulLayout;
}

export interface ReadModelOptions {
  /** Keep the chat template (default true). */
  chatTemplate?: boolean;
}

function num(v: GgufReadValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

function str(v: GgufReadValue | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function numOrArray(v: GgufReadValue | undefined): { max?: number; perLayer?: number[] } {
  if (Array.isArray(v)) {
    const nums = v.map((x) => num(x)).filter((x): x is number => x !== undefined);
    return nums.length > 0 ? { max: Math.max(...nums), perLayer: nums } : {};
  }
  const n = num(v);
  return n !== undefined ? { max: n } : {};
}

function bools(v: GgufReadValue | undefined): boolean[] | undefined {
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const out: boolean[] = [];
  for (const x of v) {
    if (typeof x === "boolean") out.push(x);
    else if (num(x) !== undefined) out.push(num(x) !== 0);
    else return undefined;
  }
  return out;
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

/**
 * Metadata of a model file (or of a split model, given any shard's path: the first shard is read for the
 * metadata, every shard for tensors and sizes). Throws GgufFormatError for a non-GGUF or truncated file and the
 * fs error (ENOENT…) for a missing one.
 */
export async function readModelMetadata(path: string, options: ReadModelOptions = {}): Promise<ModelMetadata> {
  const files = shardPaths(path);
  const first = files[0]!;
  // Per-layer arrays (head_count_kv of hybrid models) can exceed the default item cap; keep them whole.
  const header = await readGgufHeader(first, { maxArrayItems: 512 });
  const sizes = await Promise.all(files.map(fileSize));
  const tensors = [...header.tensors];
  if (files.length > 1) {
    const rest = await Promise.all(files.slice(1).map((f) => readGgufHeader(f, { maxArrayItems: 0 })));
    for (const h of rest) tensors.push(...h.tensors);
  }
  return describeHeader(header, { path: first, files, sizes, tensors }, options);
}

/** Builds ModelMetadata from a parsed header (exported for tests and for callers that already hold a header). */
export function describeHeader(
  header: GgufHeader,
  where: { path: string; files: string[]; sizes: number[]; tensors?: GgufTensorInfo[] },
  options: ReadModelOptions = {},
): ModelMetadata {
  const kv = header.kv;
  const architecture = str(kv.get("general.architecture")) ?? "unknown";
  const a = (k: string) => kv.get(`${architecture}.${k}`);
  const tensors = where.tensors ?? header.tensors;

  let parameterCount = 0;
  let tensorTotal = 0;
  const layerBytes: number[] = [];
  let tokenEmbdBytes = 0;
  let outputBytes = 0;
  let otherBytes = 0;
  const byType = new Map<number, number>();
  for (const t of tensors) {
    let n = 1;
    for (const d of t.shape) n *= d;
    parameterCount += n;
    const b = t.bytes ?? 0;
    tensorTotal += b;
    if (t.shape.length >= 2) byType.set(t.type, (byType.get(t.type) ?? 0) + b);
    const blk = /^blk\.(\d+)\./.exec(t.name);
    if (blk) {
      const i = Number(blk[1]);
      while (layerBytes.length <= i) layerBytes.push(0);
      layerBytes[i]! += b;
    } else if (t.name.startsWith("token_embd")) tokenEmbdBytes += b;
    else if (t.name.startsWith("output")) outputBytes += b;
    else otherBytes += b;
  }

  const generalType = str(kv.get("general.type"));
  const isMmproj = generalType === "mmproj" || architecture === "clip" || isMmprojFile(where.path);
  const m: ModelMetadata = {
    path: where.path,
    files: where.files,
    totalBytes: where.sizes.reduce((s, x) => s + x, 0),
    tensorBytes: tensorTotal,
    ggufVersion: header.version,
    architecture,
    parameterCount,
    isMmproj,
    layerBytes,
    tokenEmbdBytes,
    outputBytes,
    otherBytes,
    // the ends of the data matter for one file only (each shard is mapped on its own)
    matmul: matmulLayout(tensors, { ends: where.files.length <= 1 }),
  };
  const set = <K extends keyof ModelMetadata>(k: K, v: ModelMetadata[K] | undefined) => {
    if (v !== undefined) m[k] = v;
  };
  set("type", generalType);
  set("name", str(kv.get("general.name")));
  set("sizeLabel", str(kv.get("general.size_label")));
  const ft = num(kv.get("general.file_type"));
  set("fileType", ft);
  let quant = ft !== undefined ? FILE_TYPE_NAMES[ft] : undefined;
  if (quant === undefined && byType.size > 0) {
    const dominant = [...byType.entries()].sort((x, y) => y[1] - x[1])[0]![0];
    quant = ggmlTypeName(dominant);
  }
  set("quantization", quant);
  set("contextLength", num(a("context_length")));
  set("blockCount", num(a("block_count")));
  set("embeddingLength", num(a("embedding_length")));
  const ffn = numOrArray(a("feed_forward_length"));
  set("feedForwardLength", ffn.max);
  if (ffn.perLayer && ffn.perLayer.length > 1) set("feedForwardLengthPerLayer", ffn.perLayer);
  set("headCount", numOrArray(a("attention.head_count")).max);
  const kvHeads = numOrArray(a("attention.head_count_kv"));
  set("headCountKv", kvHeads.max);
  if (kvHeads.perLayer && kvHeads.perLayer.length > 1) set("headCountKvPerLayer", kvHeads.perLayer);
  set("keyLength", num(a("attention.key_length")));
  set("valueLength", num(a("attention.value_length")));
  set("keyLengthSwa", num(a("attention.key_length_swa")));
  set("valueLengthSwa", num(a("attention.value_length_swa")));
  set("sharedKvLayers", num(a("attention.shared_kv_layers")));
  set("embeddingLengthPerLayer", num(a("embedding_length_per_layer_input")));
  set("slidingWindow", num(a("attention.sliding_window")));
  const swaPattern = a("attention.sliding_window_pattern");
  set("slidingWindowPattern", num(swaPattern));
  set("slidingWindowLayers", bools(swaPattern));
  set("recurrentLayers", bools(a("attention.recurrent_layers")));
  set("fullAttentionInterval", num(a("full_attention_interval")));
  set("ssmConvKernel", num(a("ssm.conv_kernel")));
  set("ssmInnerSize", num(a("ssm.inner_size")));
  set("ssmStateSize", num(a("ssm.state_size")));
  set("ssmGroupCount", num(a("ssm.group_count")));
  set("ssmTimeStepRank", num(a("ssm.time_step_rank")));
  set("shortconvLCache", num(a("shortconv.l_cache")));
  set("expertCount", num(a("expert_count")));
  set("expertUsedCount", num(a("expert_used_count")));
  set("expertFeedForwardLength", num(a("expert_feed_forward_length")));
  const vocab = num(a("vocab_size")) ?? arrayLength(kv.get("tokenizer.ggml.tokens"));
  set("vocabSize", vocab);
  const pooling = num(a("pooling_type"));
  set("poolingType", pooling);
  if (pooling !== undefined) set("poolingTypeName", POOLING_TYPES[pooling]);
  const causal = a("attention.causal");
  if (typeof causal === "boolean") m.causalAttention = causal;
  if (options.chatTemplate !== false) {
    set("chatTemplate", str(kv.get("tokenizer.chat_template")));
    const named: Record<string, string> = {};
    for (const [k, v] of kv) {
      if (k.startsWith("tokenizer.chat_template.") && typeof v === "string")
        named[k.slice("tokenizer.chat_template.".length)] = v;
    }
    if (Object.keys(named).length > 0) m.chatTemplates = named;
  }
  const hv = kv.get("clip.has_vision_encoder");
  if (typeof hv === "boolean") m.hasVisionEncoder = hv;
  const ha = kv.get("clip.has_audio_encoder");
  if (typeof ha === "boolean") m.hasAudioEncoder = ha;
  set("splitCount", num(kv.get("split.count")));
  return m;
}

function arrayLength(v: GgufReadValue | undefined): number | undefined {
  if (Array.isArray(v)) return v.length;
  if (v !== undefined && typeof v === "object") return v.length;
  return undefined;
}
