/**
 * Memory a llama-server needs for a model, before starting it, and fit advice: how many layers fit on the GPU and
 * the largest context that fits. The proxy's memory budget uses the same numbers, and replaces them with the
 * measured ones (`parseLlamaMemoryLog`) once a server has started.
 *
 * The parts are the four buffers llama-server allocates (and prints at `-lv 4`):
 *   model   the tensors: per transformer block (`blk.N.*`), the input embedding (always on the host), the output
 *           head (on the GPU only when every block is);
 *   KV      n_layer × n_head_kv × head_dim × cells × bytes per element, for K and for V; cells = ctx rounded up
 *           to 256 (llama-server's `-c` is the total over all slots when the cache is unified, its default).
 *           Sliding-window layers (Gemma 2/3, gpt-oss, Cohere 2…) hold a smaller cache (llama-kv-cache-iswa.cpp):
 *           pad256(min(cells per stream, window × (slots when unified, else 1) + ubatch)) per stream, or the full
 *           size with `--swa-full` (which a restored context cache needs: see `swa.fullExtraBytes`).
 *           Recurrent layers (Mamba, Mamba-2, Gated DeltaNet) hold no KV but a state per slot (llama-server's
 *           `RS` buffer, counted with KV): slots × (r + s) × 4 bytes, src/models/estimate/layers.ts;
 *   compute the scheduler's work buffer, the peak of live activations for one micro-batch (ubatch = 512):
 *           attention mask  n_kv × ubatch × (2 bytes with flash attention, 4 without), n_kv = the cells one
 *           slot can see (all of them with a unified cache, ctx / slots otherwise)
 *         + max( ubatch × 4 × max(9·n_embd, 3·n_ff + 4·n_embd),          feed-forward / residual stream
 *                ubatch × n_kv × n_head × 4 + …   (no flash attention),   attention scores
 *                slots × n_vocab × 4 + … )                                 logits
 *           These terms were fitted to what llama-server prints for models of several widths (test/e2e/
 *           estimator-vs-llama.test.ts states the error against the real server).
 *           A model without memory (BERT and the other encoders of NO_MEMORY_ARCHS) attends over the ubatch's own
 *           tokens instead: min(ctx, ubatch) of them, n_kv = that many, nothing grows with the context, and a
 *           BERT-graph model has its own terms (no logits): src/models/estimate/encoder.ts;
 *   output  the logits of each slot: slots × n_vocab × 4 bytes (plus n_embd × 4 with --embeddings).
 * On a CPU build, weights the CPU has kernels for are also copied into extra buffers (AMX, CPU_REPACK) beside the
 * mapped file (src/models/repack.ts): counted when the CPU's features are given (`cpu`).
 * A sliding-window model whose layer layout is unknown here (no pattern in the file, an architecture without a
 * default in layers.ts) is counted as full-context layers: the safe side.
 */
import type { KvCacheType } from "../../core/config.js";
import type { ModelMetadata } from "../../gguf/reader.js";
import { planRepack, type CpuFeatures, type ExtraBufferType } from "../repack.js";
import { bertComputeBytes, encoderTokens } from "./encoder.js";
import {
  attentionInRecurrentLayers,
  headSizes,
  mambaPeakFloatsPerToken,
  ownKvLayers,
  perLayerInputFloats,
  recurrentLayers,
  NO_MEMORY_ARCHS,
  recurrentStateBytesPerLayer,
  swaLayers,
  type LayerMetadata,
} from "./layers.js";

/** llama-server's defaults that change memory. */
export const LLAMA_DEFAULTS = {
  /** `--parallel` auto → 4 slots, unified KV cache. */
  parallel: 4,
  ubatch: 512,
  /** KV cells are allocated in multiples of this. */
  kvPad: 256,
} as const;

/** Head sizes the CUDA flash-attention kernels support; with others llama.cpp's "auto" turns flash attention off. */
export const GPU_FLASH_ATTN_HEAD_DIMS: ReadonlySet<number> = new Set([40, 64, 72, 80, 96, 112, 128, 256, 576]);

/** Bytes per element of each KV cache type (block types include their scale). */
export const KV_CACHE_BYTES: Readonly<Record<KvCacheType, number>> = {
  f32: 4,
  f16: 2,
  bf16: 2,
  q8_0: 34 / 32,
  q4_0: 18 / 32,
  q4_1: 20 / 32,
  iq4_nl: 18 / 32,
  q5_0: 22 / 32,
  q5_1: 24 / 32,
};

/** Elements per block: a quantized cache needs a head size that is a multiple of this. */
export const KV_CACHE_BLOCK: Readonly<Record<KvCacheType, number>> = {
  f32: 1,
  f16: 1,
  bf16: 1,
  q8_0: 32,
  q4_0: 32,
  q4_1: 32,
  iq4_nl: 32,
  q5_0: 32,
  q5_1: 32,
};

/** The metadata the estimator reads (any may be missing; it then falls back to file size and safe guesses). */
export type EstimatorModel = Partial<
  Pick<
    ModelMetadata,
    | "totalBytes"
    | "tensorBytes"
    | "contextLength"
    | "blockCount"
    | "embeddingLength"
    | "feedForwardLength"
    | "headCount"
    | "headCountKv"
    | "headCountKvPerLayer"
    | "keyLength"
    | "valueLength"
    | "vocabSize"
    | "layerBytes"
    | "tokenEmbdBytes"
    | "outputBytes"
    | "otherBytes"
    | "expertCount"
    | "expertUsedCount"
    | "expertFeedForwardLength"
    | "matmul"
    | "poolingType"
  >
> &
  LayerMetadata;

export interface EstimateMemoryInput {
  metadata: EstimatorModel;
  /** Bytes of the model files (all shards); default metadata.totalBytes. Used when tensor sizes are unknown. */
  fileBytes?: number;
  /** `-c`; 0/undefined = the trained context (llama-server's default). */
  ctx?: number;
  /** `--parallel` slots (default 4). */
  parallel?: number;
  /**
   * Unified KV cache. llama-server's default: on when `--parallel` is not given (auto = 4 slots), off when it is.
   * Without it each slot's attention spans ctx / parallel cells.
   */
  kvUnified?: boolean;
  cacheTypeK?: KvCacheType;
  cacheTypeV?: KvCacheType;
  /**
   * `-ngl`, counted the way llama.cpp counts it: the output head is layer n_layer and goes first, so 1 = the head
   * only, n_layer+1 (or -1) = everything. Default 0.
   */
  gpuLayers?: number;
  /**
   * Flash attention. Default: llama-server's "auto": on for the CPU; on the GPU only for head sizes its kernels
   * support (GPU_FLASH_ATTN_HEAD_DIMS).
   */
  flashAttention?: boolean;
  ubatch?: number;
  /**
   * llama-server runs on a GPU backend (CUDA, Metal, Vulkan…). Default: gpuLayers > 0. Set it for `-ngl 0` on a
   * GPU build: the compute buffer still goes to the GPU then.
   */
  gpuBackend?: boolean;
  /** `--embeddings`: the output buffer also holds one embedding per slot. */
  embeddings?: boolean;
  /** A multimodal projector file (loaded next to the model, on the GPU when there is one). */
  mmprojBytes?: number;
  /**
   * The CPU's features (src/system/types.ts SimdFlag names): a CPU-only llama-server copies some weights into
   * AMX / CPU_REPACK buffers on CPUs that have the kernels for them (src/models/repack.ts). Unset: none counted.
   */
  cpu?: CpuFeatures;
  /** llama-server maps the file (its default; `--no-mmap` = false). */
  mmap?: boolean;
  /** `--swa-full`: sliding-window layers keep a full-size cache (default false, llama-server's default). */
  swaFull?: boolean;
}

/** The sliding-window part of an estimate (models with sliding-window layers whose layout is known). */
export interface SwaEstimate {
  /** `{arch}.attention.sliding_window`. */
  window: number;
  /** Sliding-window layers (of `layers`) with a KV cache of their own (not Gemma 4's KV-sharing ones). */
  layers: number;
  /** KV cells of the sliding-window cache (all streams). */
  cells: number;
  /** `--swa-full` was counted: the sliding-window layers hold as many cells as the others. */
  full: boolean;
  /** KV bytes `--swa-full` adds over the window cache (counted in this estimate when `swaFull` was given). */
  fullExtraBytes: number;
}

export interface MemoryEstimate {
  /** Context asked for (after defaulting to the trained context). */
  ctx: number;
  /** KV cells allocated (ctx rounded up to 256). */
  kvCells: number;
  layers: number;
  /** Present for a model with sliding-window layers (see SwaEstimate). */
  swa?: SwaEstimate;
  /** The recurrent state (Mamba, Mamba-2, Gated DeltaNet layers), part of kvBytes; 0 for other models. */
  recurrentBytes: number;
  /** The `-ngl` value in effect (0..layers+1; layers+1 = everything). */
  gpuLayers: number;
  /** Transformer blocks on the GPU (0..layers). */
  gpuBlocks: number;
  /** The output head is on the GPU (llama.cpp offloads it first). */
  outputOnGpu: boolean;
  weightsBytes: number;
  /** KV cache and recurrent state (llama-server's `KV` and `RS` buffers). */
  kvBytes: number;
  /** KV bytes per token of context, K+V, over the layers whose cache grows with the context (not sliding-window ones). */
  kvBytesPerToken: number;
  computeBytes: number;
  outputBytes: number;
  mmprojBytes: number;
  totalBytes: number;
  gpuBytes: number;
  hostBytes: number;
  /** Split of the above by place. */
  gpu: { weights: number; kv: number; compute: number; mmproj: number };
  host: { weights: number; kv: number; compute: number; output: number; mmproj: number };
  /**
   * The weights' copies in the CPU's extra buffers (part of `host.weights`), per buffer type as llama-server names
   * them; absent when none.
   */
  repack?: { bytes: number; buffers: Partial<Record<ExtraBufferType, number>> };
}

function padTo(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/** Per-layer (K bytes + V bytes) per KV cell (0 for recurrent layers, which keep no KV cache). */
export function kvBytesPerCellByLayer(
  meta: EstimatorModel,
  cacheTypeK: KvCacheType = "f16",
  cacheTypeV: KvCacheType = "f16",
): number[] {
  const layers = meta.blockCount ?? meta.layerBytes?.length ?? 0;
  const heads = meta.headCount ?? 0;
  const embd = meta.embeddingLength ?? 0;
  const headDim = heads > 0 ? Math.floor(embd / heads) : 0;
  // per layer: sliding-window layers may have their own head size (Gemma 4's key_length_swa)
  const sizes = headSizes({ ...meta, blockCount: layers });
  const recurrent = attentionInRecurrentLayers(meta) ? undefined : recurrentLayers(meta);
  const own = ownKvLayers({ ...meta, blockCount: layers });
  const none = meta.architecture !== undefined && NO_MEMORY_ARCHS.has(meta.architecture);
  const out: number[] = [];
  for (let i = 0; i < layers; i++) {
    if (none || recurrent?.[i] || own?.[i] === false) {
      out.push(0);
      continue;
    }
    const dk = sizes[i]?.k ?? meta.keyLength ?? headDim;
    const dv = sizes[i]?.v ?? meta.valueLength ?? headDim;
    const kvHeads = meta.headCountKvPerLayer?.[i] ?? meta.headCountKv ?? heads;
    out.push(kvHeads * dk * KV_CACHE_BYTES[cacheTypeK] + kvHeads * dv * KV_CACHE_BYTES[cacheTypeV]);
  }
  return out;
}

/** The compute buffer of one device running the model's blocks (see the header comment). */
export function computeBufferBytes(
  meta: EstimatorModel,
  opts: { nKv: number; ubatch: number; flashAttention: boolean; parallel: number; nKvSwa?: number },
): number {
  const E = meta.embeddingLength ?? 4096;
  const experts = meta.expertUsedCount ?? 0;
  const F =
    experts > 0
      ? experts * (meta.expertFeedForwardLength ?? meta.feedForwardLength ?? 4 * E)
      : (meta.feedForwardLength ?? 4 * E);
  const H = meta.headCount ?? 32;
  const V = meta.vocabSize ?? 32000;
  const U = opts.ubatch;
  const L = meta.blockCount ?? meta.layerBytes?.length ?? 2;
  // one mask per cache: the sliding-window layers' cache has its own
  const mask = (opts.nKv + (opts.nKvSwa ?? 0)) * U * (opts.flashAttention ? 2 : 4);
  // Residual-stream peak (measured: 5, 8 and 9 × n_embd floats per token for 1, 2 and 4+ blocks) and the
  // feed-forward peak (gate + up + product live together: 3·n_ff + 4·n_embd, exact for n_ff/n_embd 2.7–16).
  const residual = (L <= 1 ? 5 : L === 2 ? 8 : 9) * E;
  const feedForward = F > 2 * E ? 3 * F + 4 * E : 0;
  // Gemma 4's per-layer inputs (P floats per token) live beside every block's peak; before the first block, four
  // P-sized tensors and the input embedding (looked up and scaled: 2·n_embd) live together (layers.ts).
  const P = perLayerInputFloats(meta);
  const ffn = U * 4 * (Math.max(residual, feedForward) + P);
  const perLayerInputs = P > 0 ? U * 4 * (4 * P + 2 * E) : 0;
  const scores = opts.flashAttention ? 0 : opts.nKv * U * H * 4 + 4 * E * U * 4;
  const logits = opts.parallel * V * 4 + E * U * 4;
  const ssm = U * 4 * (mambaPeakFloatsPerToken(meta) ?? 0);
  return mask + Math.max(ffn, scores, logits, ssm, perLayerInputs);
}

export function estimateMemory(input: EstimateMemoryInput): MemoryEstimate {
  const meta = input.metadata;
  const layers = meta.blockCount ?? meta.layerBytes?.length ?? 0;
  const ctx = input.ctx && input.ctx > 0 ? input.ctx : (meta.contextLength ?? 4096);
  const kvCells = padTo(ctx, LLAMA_DEFAULTS.kvPad);
  const parallel = Math.max(1, input.parallel ?? LLAMA_DEFAULTS.parallel);
  // llama-server: `--parallel` unset → 4 slots sharing one cache; set explicitly → one stream per slot of ctx/N.
  const unified = input.kvUnified ?? input.parallel === undefined;
  const nKv = unified ? kvCells : padTo(Math.ceil(kvCells / parallel), LLAMA_DEFAULTS.kvPad);
  const ubatch = input.ubatch ?? LLAMA_DEFAULTS.ubatch;
  // Sliding-window layers (llama_kv_cache_iswa): pad256(min(cells, window × (slots if unified) + ubatch)) per stream.
  const swa = swaLayers(meta);
  const swaFull = input.swaFull === true;
  const window = meta.slidingWindow ?? 0;
  const streams = unified ? 1 : parallel;
  const swaPerStream = swa
    ? swaFull
      ? nKv
      : padTo(Math.min(nKv, window * (unified ? parallel : 1) + Math.min(ubatch, kvCells)), LLAMA_DEFAULTS.kvPad)
    : nKv;
  const swaCells = unified ? swaPerStream : swaPerStream * streams;
  /** The window cache without --swa-full, for what --swa-full costs. */
  const swaWindowCells = swaFull
    ? padTo(Math.min(nKv, window * (unified ? parallel : 1) + Math.min(ubatch, kvCells)), LLAMA_DEFAULTS.kvPad) *
      (unified ? 1 : streams)
    : swaCells;
  // Recurrent layers: one state per slot (llama_memory_recurrent, mem_size = max(1, n_seq_max)), f32.
  const recurrent = recurrentLayers(meta);
  const statePerLayer = recurrent ? (recurrentStateBytesPerLayer(meta) ?? 0) * parallel : 0;

  // Weights by place.
  const fileBytes = input.fileBytes ?? meta.totalBytes ?? 0;
  let layerW: number[];
  let embdW: number;
  let outW: number;
  let otherW: number;
  if (meta.layerBytes && meta.layerBytes.length > 0 && (meta.tensorBytes ?? 0) > 0) {
    layerW = Array.from({ length: layers }, (_, i) => meta.layerBytes?.[i] ?? 0);
    embdW = meta.tokenEmbdBytes ?? 0;
    outW = meta.outputBytes ?? 0;
    otherW = meta.otherBytes ?? 0;
  } else {
    // Only the file size is known: spread it over the blocks plus one block's worth each for embedding and head.
    const share = fileBytes / (layers + 2 || 1);
    layerW = Array.from({ length: layers }, () => share);
    embdW = layers > 0 ? share : fileBytes;
    outW = layers > 0 ? share : 0;
    otherW = 0;
  }

  // llama.cpp counts the output head as layer n_layer and offloads from the top: `-ngl 1` puts only the output
  // head on the GPU, `-ngl k` the head and the last k-1 blocks, `-ngl n_layer+1` (or -1, "all") everything.
  let g = input.gpuLayers ?? 0;
  if (g < 0 || g > layers + 1) g = layers + 1;
  const outputOnGpu = g >= 1;
  const gpuBlocks = Math.max(0, Math.min(g - 1, layers));
  const firstGpu = layers - gpuBlocks;

  const kvPerCell = kvBytesPerCellByLayer(meta, input.cacheTypeK, input.cacheTypeV);
  const ownKv = ownKvLayers({ ...meta, blockCount: layers });
  let gpuWeights = outputOnGpu ? outW : 0;
  let hostWeights = embdW + otherW + (outputOnGpu ? 0 : outW);
  const gpuBackend = input.gpuBackend ?? g > 0;
  // A CPU build copies some matrix weights into AMX / CPU_REPACK buffers (a GPU build's host buffer comes first).
  const repack = !gpuBackend && input.cpu && meta.matmul ? planRepack(meta.matmul, input.cpu, input) : undefined;
  if (repack) hostWeights += repack.deltaBytes;
  let gpuKv = 0;
  let hostKv = 0;
  let recurrentBytes = 0;
  let swaExtra = 0;
  let kvPerToken = 0;
  for (let i = 0; i < layers; i++) {
    const perCell = kvPerCell[i] ?? 0;
    const slides = swa?.[i] === true;
    if (slides) swaExtra += Math.ceil(perCell * kvCells) - Math.ceil(perCell * swaWindowCells);
    if (!slides || swaFull) kvPerToken += perCell;
    const state = recurrent?.[i] ? statePerLayer : 0;
    recurrentBytes += state;
    const kv = Math.ceil(perCell * (slides ? swaCells : kvCells)) + state;
    if (i >= firstGpu) {
      gpuWeights += layerW[i]!;
      gpuKv += kv;
    } else {
      hostWeights += layerW[i]!;
      hostKv += kv;
    }
  }
  const E = meta.embeddingLength ?? 4096;
  // Flash attention "auto": on for the CPU; on a GPU only for head sizes its kernels support (CUDA's set).
  const hd = headDim(meta);
  const faOnGpu = input.flashAttention ?? (hd !== undefined && GPU_FLASH_ATTN_HEAD_DIMS.has(meta.keyLength ?? hd));
  const faOnCpu = input.flashAttention ?? true;
  // A model without memory (encoders: BERT…) reserves its graph for min(n_ctx, n_ubatch) tokens and attends over
  // them alone, whatever the context (src/models/estimate/encoder.ts); the others attend over the KV cells.
  const noMemory = meta.architecture !== undefined && NO_MEMORY_ARCHS.has(meta.architecture);
  const tokens = noMemory ? encoderTokens(kvCells, ubatch) : ubatch;
  const maskKv = noMemory ? tokens : nKv;
  const nKvSwa = swa ? (noMemory ? tokens : swaPerStream) : undefined;
  const compute = (flashAttention: boolean): number =>
    bertComputeBytes(meta, { tokens, flashAttention, parallel }) ??
    computeBufferBytes(meta, { nKv: maskKv, nKvSwa, ubatch: tokens, flashAttention, parallel });
  const cpuCompute = compute(faOnCpu);
  let gpuCompute = 0;
  let hostCompute = cpuCompute;
  if (gpuBackend) {
    // Measured on a CUDA build (H100): the GPU holds the compute buffer whatever -ngl is (with blocks on the CPU
    // it still runs the big batch matmuls, copying their weights over: two more n_embd rows per token), and the
    // host keeps a staging buffer for the inputs, the attention mask among them.
    const full = gpuBlocks === layers && outputOnGpu;
    if (gpuBlocks > 0) {
      gpuCompute = compute(faOnGpu) + (full ? 0 : 2 * E * tokens * 4);
      hostCompute = (maskKv + (nKvSwa ?? 0)) * tokens * (faOnGpu ? 2 : 4) + 2 * E * tokens * 4;
    } else {
      // No block on the GPU: attention runs on the CPU; the GPU only takes the batch matmuls.
      const F = meta.feedForwardLength ?? 4 * E;
      gpuCompute = tokens * 4 * (3 * F + 6 * E) + (faOnGpu ? maskKv * tokens * 2 : 0);
      hostCompute = (maskKv + (nKvSwa ?? 0)) * tokens * (faOnCpu ? 2 : 4) + 2 * E * tokens * 4;
    }
  }
  const output = parallel * ((meta.vocabSize ?? 32000) + (input.embeddings ? E : 0)) * 4;
  const mmproj = input.mmprojBytes ?? 0;
  const gpuMmproj = g > 0 ? mmproj : 0;
  const hostMmproj = g > 0 ? 0 : mmproj;
  gpuWeights = Math.round(gpuWeights);
  hostWeights = Math.round(hostWeights);

  const gpuBytes = gpuWeights + gpuKv + gpuCompute + gpuMmproj;
  const hostBytes = hostWeights + hostKv + hostCompute + output + hostMmproj;
  return {
    ctx,
    kvCells,
    layers,
    ...(swa
      ? {
          swa: {
            window,
            // sliding-window layers with a cache of their own (Gemma 4's KV-sharing layers have none)
            layers: swa.filter((slides, i) => slides && ownKv?.[i] !== false).length,
            cells: swaCells,
            full: swaFull || swaCells >= kvCells,
            fullExtraBytes: Math.max(0, swaExtra),
          },
        }
      : {}),
    recurrentBytes,
    gpuLayers: g,
    gpuBlocks,
    outputOnGpu,
    weightsBytes: gpuWeights + hostWeights,
    kvBytes: gpuKv + hostKv,
    kvBytesPerToken: kvPerToken,
    computeBytes: gpuCompute + hostCompute,
    outputBytes: output,
    mmprojBytes: mmproj,
    totalBytes: gpuBytes + hostBytes,
    gpuBytes,
    hostBytes,
    gpu: { weights: gpuWeights, kv: gpuKv, compute: gpuCompute, mmproj: gpuMmproj },
    host: { weights: hostWeights, kv: hostKv, compute: hostCompute, output, mmproj: hostMmproj },
    ...(repack && repack.extraBytes > 0 ? { repack: { bytes: repack.extraBytes, buffers: repack.buffers } } : {}),
  };
}

/** Head size from the embedding width and the head count (what llama.cpp assumes without `key_length`). */
export function headDim(meta: EstimatorModel): number | undefined {
  return meta.headCount && meta.embeddingLength ? Math.floor(meta.embeddingLength / meta.headCount) : undefined;
}
