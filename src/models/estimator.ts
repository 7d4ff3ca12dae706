/**
 * Memory a llama-server needs for a model, before starting it, and fit advice: how many layers fit on the GPU and
 * the largest context that fits. The proxy's memory budget uses the same numbers, and replaces them with the
 * measured ones (`parseLlamaMemoryLog`) once a server has started.
 *
 * The parts are the four buffers llama-server allocates (and prints at `-lv 4`):
 *   model   the tensors: per transformer block (`blk.N.*`), the input embedding (always on the host), the output
 *           head (on the GPU only when every block is);
 *   KV      n_layer × n_head_kv × head_dim × cells × bytes per element, for K and for V; cells = ctx rounded up
 *           to 256 (llama-server's `-c` is the total over all slots when the cache is unified, its default);
 *   compute the scheduler's work buffer, the peak of live activations for one micro-batch (ubatch = 512):
 *           attention mask  n_kv × ubatch × (2 bytes with flash attention, 4 without), n_kv = the cells one
 *           slot can see (all of them with a unified cache, ctx / slots otherwise)
 *         + max( ubatch × 4 × max(9·n_embd, 3·n_ff + 4·n_embd),          feed-forward / residual stream
 *                ubatch × n_kv × n_head × 4 + …   (no flash attention),   attention scores
 *                slots × n_vocab × 4 + … )                                 logits
 *           These terms were fitted to what llama-server prints for models of several widths (test/e2e/
 *           estimator-vs-llama.test.ts states the error against the real server);
 *   output  the logits of each slot: slots × n_vocab × 4 bytes (plus n_embd × 4 with --embeddings).
 * On a CPU build, weights the CPU has kernels for are also copied into extra buffers (AMX, CPU_REPACK) beside the
 * mapped file (src/models/repack.ts): counted when the CPU's features are given (`cpu`).
 * Sliding-window layers (Gemma, gpt-oss) are counted as full-context layers: the estimate stays on the safe side.
 */
import type { KvCacheType } from "../core/config.js";
import type { ModelMetadata } from "../gguf/reader.js";
import type { MemorySnapshot } from "../system/types.js";
import { planRepack, type CpuFeatures, type ExtraBufferType } from "./repack.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

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
  >
>;

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
}

export interface MemoryEstimate {
  /** Context asked for (after defaulting to the trained context). */
  ctx: number;
  /** KV cells allocated (ctx rounded up to 256). */
  kvCells: number;
  layers: number;
  /** The `-ngl` value in effect (0..layers+1; layers+1 = everything). */
  gpuLayers: number;
  /** Transformer blocks on the GPU (0..layers). */
  gpuBlocks: number;
  /** The output head is on the GPU (llama.cpp offloads it first). */
  outputOnGpu: boolean;
  weightsBytes: number;
  kvBytes: number;
  /** KV bytes per token of context (all layers, K+V). */
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

/** Per-layer (K bytes + V bytes) per KV cell. */
export function kvBytesPerCellByLayer(
  meta: EstimatorModel,
  cacheTypeK: KvCacheType = "f16",
  cacheTypeV: KvCacheType = "f16",
): number[] {
  const layers = meta.blockCount ?? meta.layerBytes?.length ?? 0;
  const heads = meta.headCount ?? 0;
  const embd = meta.embeddingLength ?? 0;
  const headDim = heads > 0 ? Math.floor(embd / heads) : 0;
  const dk = meta.keyLength ?? headDim;
  const dv = meta.valueLength ?? headDim;
  const out: number[] = [];
  for (let i = 0; i < layers; i++) {
    const kvHeads = meta.headCountKvPerLayer?.[i] ?? meta.headCountKv ?? heads;
    out.push(kvHeads * dk * KV_CACHE_BYTES[cacheTypeK] + kvHeads * dv * KV_CACHE_BYTES[cacheTypeV]);
  }
  return out;
}

/** The compute buffer of one device running the model's blocks (see the header comment). */
export function computeBufferBytes(
  meta: EstimatorModel,
  opts: { nKv: number; ubatch: number; flashAttention: boolean; parallel: number },
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
  const mask = opts.nKv * U * (opts.flashAttention ? 2 : 4);
  // Residual-stream peak (measured: 5, 8 and 9 × n_embd floats per token for 1, 2 and 4+ blocks) and the
  // feed-forward peak (gate + up + product live together: 3·n_ff + 4·n_embd, exact for n_ff/n_embd 2.7–16).
  const residual = (L <= 1 ? 5 : L === 2 ? 8 : 9) * E;
  const feedForward = F > 2 * E ? 3 * F + 4 * E : 0;
  const ffn = U * 4 * Math.max(residual, feedForward);
  const scores = opts.flashAttention ? 0 : opts.nKv * U * H * 4 + 4 * E * U * 4;
  const logits = opts.parallel * V * 4 + E * U * 4;
  return mask + Math.max(ffn, scores, logits);
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
  let gpuWeights = outputOnGpu ? outW : 0;
  let hostWeights = embdW + otherW + (outputOnGpu ? 0 : outW);
  const gpuBackend = input.gpuBackend ?? g > 0;
  // A CPU build copies some matrix weights into AMX / CPU_REPACK buffers (a GPU build's host buffer comes first).
  const repack = !gpuBackend && input.cpu && meta.matmul ? planRepack(meta.matmul, input.cpu, input) : undefined;
  if (repack) hostWeights += repack.deltaBytes;
  let gpuKv = 0;
  let hostKv = 0;
  for (let i = 0; i < layers; i++) {
    const kv = Math.ceil((kvPerCell[i] ?? 0) * kvCells);
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
  const cpuCompute = computeBufferBytes(meta, { nKv, ubatch, flashAttention: faOnCpu, parallel });
  let gpuCompute = 0;
  let hostCompute = cpuCompute;
  if (gpuBackend) {
    // Measured on a CUDA build (H100): the GPU holds the compute buffer whatever -ngl is (with blocks on the CPU
    // it still runs the big batch matmuls, copying their weights over: two more n_embd rows per token), and the
    // host keeps a staging buffer for the inputs, the attention mask among them.
    const full = gpuBlocks === layers && outputOnGpu;
    if (gpuBlocks > 0) {
      gpuCompute =
        computeBufferBytes(meta, { nKv, ubatch, flashAttention: faOnGpu, parallel }) + (full ? 0 : 2 * E * ubatch * 4);
      hostCompute = nKv * ubatch * (faOnGpu ? 2 : 4) + 2 * E * ubatch * 4;
    } else {
      // No block on the GPU: attention runs on the CPU; the GPU only takes the batch matmuls.
      const F = meta.feedForwardLength ?? 4 * E;
      gpuCompute = ubatch * 4 * (3 * F + 6 * E) + (faOnGpu ? nKv * ubatch * 2 : 0);
      hostCompute = nKv * ubatch * (faOnCpu ? 2 : 4) + 2 * E * ubatch * 4;
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
    gpuLayers: g,
    gpuBlocks,
    outputOnGpu,
    weightsBytes: gpuWeights + hostWeights,
    kvBytes: gpuKv + hostKv,
    kvBytesPerToken: kvPerCell.reduce((s, x) => s + x, 0),
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

// ---------------------------------------------------------------------------------------------------------------
// Fit advice

export interface FitBudget {
  /** Free memory on the GPU(s) gglib may use, headroom already taken off. Undefined: no usable GPU. */
  gpuBytes?: number;
  /** Free RAM gglib may use, headroom already taken off. */
  hostBytes: number;
  /** The GPU shares RAM (Apple Silicon): both parts come out of the same memory. */
  unified?: boolean;
  /** For messages. */
  gpuName?: string;
  /** GPUs counted in gpuBytes. */
  gpuCount?: number;
}

/** llama.cpp's own `--fit` leaves 1 GiB per device; do the same. */
export const DEFAULT_HEADROOM_BYTES = GIB;

/**
 * The budget policy, for `gglib models fit`, the launch defaults and the proxy's `auto` budget alike: free memory
 * of discrete GPUs (summed: llama.cpp splits layers across them), or Metal's share of unified memory on Apple
 * Silicon; free RAM, capped by a container limit. Minus the headroom on each device.
 */
export function budgetFromSnapshot(snap: MemorySnapshot, headroomBytes = DEFAULT_HEADROOM_BYTES): FitBudget {
  let host = snap.ram.availableBytes;
  if (snap.ram.cgroupLimitBytes !== undefined) host = Math.min(host, snap.ram.cgroupLimitBytes);
  const budget: FitBudget = { hostBytes: Math.max(0, host - headroomBytes) };
  const discrete = snap.gpus.filter((g) => !g.unifiedMemory && g.freeBytes !== undefined);
  const unified = snap.gpus.find((g) => g.unifiedMemory && g.vendor === "apple" && g.freeBytes !== undefined);
  if (discrete.length > 0) {
    budget.gpuBytes = Math.max(
      0,
      discrete.reduce((s, g) => s + (g.freeBytes ?? 0), 0) - headroomBytes * discrete.length,
    );
    budget.gpuName = discrete.map((g) => g.name).join(" + ");
    budget.gpuCount = discrete.length;
  } else if (unified) {
    budget.gpuBytes = Math.max(0, (unified.freeBytes ?? 0) - headroomBytes);
    budget.unified = true;
    budget.gpuName = unified.name;
    budget.gpuCount = 1;
  }
  return budget;
}

/** One number for a scheduler that counts every model's whole need against one pool (the proxy's `auto`). */
export interface PoolBudget {
  bytes: number;
  /** The pool is GPU memory (then a server's use is measured on the GPU, not by its resident memory). */
  gpu: boolean;
  /** Where it came from, for the start-up report. */
  source: string;
}

/**
 * The budget as one pool: the discrete GPUs' memory when there are some, the unified memory the GPU may use on
 * Apple Silicon, else RAM. The same numbers `budgetFromSnapshot` gives `gglib models fit`.
 */
export function poolBudget(budget: FitBudget): PoolBudget {
  if (budget.gpuBytes !== undefined && !budget.unified)
    return { bytes: budget.gpuBytes, gpu: true, source: `free VRAM on ${budget.gpuCount ?? 1} GPU(s), minus headroom` };
  if (budget.gpuBytes !== undefined) {
    const bytes = Math.min(budget.gpuBytes, budget.hostBytes);
    return { bytes, gpu: false, source: "unified memory the GPU may use, minus headroom" };
  }
  return { bytes: budget.hostBytes, gpu: false, source: "available RAM, minus headroom" };
}

/** `1.5 GiB`, `300 MiB`, `12 KiB`: for messages. */
function formatBytes(n: number): string {
  return n >= GIB
    ? `${(n / GIB).toFixed(1)} GiB`
    : n >= 10 * MIB
      ? `${Math.round(n / MIB)} MiB`
      : n >= MIB
        ? `${(n / MIB).toFixed(1)} MiB`
        : `${Math.max(0, Math.round(n / 1024))} KiB`;
}

export type FitInput = Omit<EstimateMemoryInput, "gpuLayers"> & {
  /** Fixed `-ngl`; undefined = choose the most that fit. */
  gpuLayers?: number;
};

export interface FitAdvice {
  /** The estimate at the requested context with the chosen layer split. */
  estimate: MemoryEstimate;
  fits: boolean;
  /** The `-ngl` of the chosen split (-1 when everything is on the GPU). */
  gpuLayers: number;
  offload: "full" | "partial" | "none";
  /** Largest context (multiple of 256, at most the trained context) that fits with the best split; undefined if none. */
  maxCtx?: number;
  /** Largest context that fits with every layer on the GPU; undefined without a GPU or if none. */
  maxCtxFullGpu?: number;
  /** One line per finding, for people. */
  messages: string[];
}

function fitsBudget(e: MemoryEstimate, b: FitBudget): boolean {
  if (b.unified) return e.gpuBytes <= (b.gpuBytes ?? 0) && e.totalBytes <= b.hostBytes;
  return e.gpuBytes <= (b.gpuBytes ?? 0) && e.hostBytes <= b.hostBytes;
}

/** The most GPU layers that fit at this context (0..layers+1), or the fixed value. */
function chooseLayers(input: FitInput, budget: FitBudget, ctx: number): MemoryEstimate {
  const gpu = budget.gpuBytes !== undefined && budget.gpuBytes > 0;
  const at = (gpuLayers: number) =>
    estimateMemory({
      ...input,
      ctx,
      gpuLayers,
      ...(gpu && input.gpuBackend === undefined ? { gpuBackend: true } : {}),
    });
  if (input.gpuLayers !== undefined) return at(input.gpuLayers);
  if (budget.gpuBytes === undefined || budget.gpuBytes <= 0) return at(0);
  const layers = input.metadata.blockCount ?? input.metadata.layerBytes?.length ?? 0;
  if (budget.unified) return at(-1);
  // GPU bytes grow with each layer: the largest g whose GPU part fits.
  for (let g = layers + 1; g > 0; g--) {
    const e = at(g);
    if (e.gpuBytes <= budget.gpuBytes) return e;
  }
  return at(0);
}

/** Largest multiple of 256 up to `upTo` for which ok() holds (ok is monotone: more context never fits better). */
function largestCtx(upTo: number, ok: (ctx: number) => boolean): number | undefined {
  const step = LLAMA_DEFAULTS.kvPad;
  if (!ok(step)) return undefined;
  let lo = 1;
  let hi = Math.max(1, Math.floor(upTo / step));
  if (ok(hi * step)) return Math.min(upTo, hi * step);
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ok(mid * step)) lo = mid;
    else hi = mid;
  }
  return lo * step;
}

export function adviseFit(input: FitInput, budget: FitBudget): FitAdvice {
  const meta = input.metadata;
  const trained = meta.contextLength ?? 4096;
  const ctx = input.ctx && input.ctx > 0 ? input.ctx : trained;
  const est = chooseLayers(input, budget, ctx);
  const layers = est.layers;
  const fits = fitsBudget(est, budget);
  const hasGpu = budget.gpuBytes !== undefined && budget.gpuBytes > 0;
  const offload: FitAdvice["offload"] =
    est.gpuLayers === 0 ? "none" : est.gpuBlocks === layers && est.outputOnGpu ? "full" : "partial";
  const cap = Math.max(trained, ctx);
  const maxCtx = largestCtx(Math.min(cap, trained), (c) => fitsBudget(chooseLayers(input, budget, c), budget));
  const maxCtxFullGpu = hasGpu
    ? largestCtx(trained, (c) => fitsBudget(estimateMemory({ ...input, ctx: c, gpuLayers: -1 }), budget))
    : undefined;

  const messages: string[] = [];
  const gb = formatBytes;
  const where = hasGpu ? (budget.gpuName ?? "the GPU") : "";
  if (fits) {
    if (offload === "full")
      messages.push(
        `Fits at ${ctx} tokens: ${gb(est.gpuBytes)} on ${where} (all ${layers} layers), ${gb(est.hostBytes)} in RAM.`,
      );
    else if (offload === "partial") {
      messages.push(
        `Fits at ${ctx} tokens with ${est.gpuBlocks} of ${layers} layers on ${where} (${gb(est.gpuBytes)}) and the rest on the CPU (${gb(est.hostBytes)} of RAM): slower than all on the GPU.`,
      );
    } else messages.push(`Fits at ${ctx} tokens in RAM: ${gb(est.totalBytes)} of ${gb(budget.hostBytes)} free.`);
  } else {
    const need =
      hasGpu && !budget.unified
        ? `${gb(est.gpuBytes)} on the GPU and ${gb(est.hostBytes)} of RAM`
        : `${gb(est.totalBytes)}`;
    const have =
      hasGpu && !budget.unified
        ? `${gb(budget.gpuBytes ?? 0)} and ${gb(budget.hostBytes)} free`
        : `${gb(budget.unified ? Math.min(budget.gpuBytes ?? 0, budget.hostBytes) : budget.hostBytes)} free`;
    messages.push(`Does not fit at ${ctx} tokens: needs ${need}, ${have}.`);
  }
  if (maxCtx !== undefined && (!fits || maxCtx < trained)) {
    messages.push(`Largest context that fits: ${maxCtx} tokens (trained: ${trained}). Use --ctx ${maxCtx} or less.`);
  } else if (maxCtx === undefined) {
    messages.push(`Even ${LLAMA_DEFAULTS.kvPad} tokens do not fit: use a smaller quantization or free memory.`);
  }
  if (hasGpu && offload !== "full" && maxCtxFullGpu !== undefined) {
    messages.push(`With every layer on ${where}, up to ${maxCtxFullGpu} tokens fit.`);
  }
  if (ctx > trained)
    messages.push(`${ctx} tokens is more than the ${trained} the model was trained on: quality drops past it.`);
  for (const [which, t] of [
    ["K", input.cacheTypeK],
    ["V", input.cacheTypeV],
  ] as const) {
    if (!t) continue;
    const block = KV_CACHE_BLOCK[t];
    const dim = which === "K" ? (meta.keyLength ?? headDim(meta)) : (meta.valueLength ?? headDim(meta));
    if (block > 1 && dim !== undefined && dim % block !== 0) {
      messages.push(
        `The ${which} cache type ${t} needs a head size that is a multiple of ${block}; this model's is ${dim}: llama-server will refuse it.`,
      );
    }
  }
  return {
    estimate: est,
    fits,
    gpuLayers: offload === "full" ? -1 : est.gpuLayers,
    offload,
    maxCtx,
    maxCtxFullGpu,
    messages,
  };
}

function headDim(meta: EstimatorModel): number | undefined {
  return meta.headCount && meta.embeddingLength ? Math.floor(meta.embeddingLength / meta.headCount) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Measured: llama-server's own buffer lines

export interface MeasuredBuffers {
  modelBytes?: number;
  kvBytes?: number;
  computeBytes?: number;
  outputBytes?: number;
  /** Sum of what was seen. */
  totalBytes?: number;
  /** On GPUs (any buffer whose device is not CPU/host). */
  gpuBytes?: number;
  hostBytes?: number;
  /**
   * On RPC workers (other hosts): not part of the totals above, which count this host's memory only. Absent when
   * no RPC buffer was seen.
   */
  remoteBytes?: number;
  /** RPC buffers per worker (`host:port` → bytes, all its devices and kinds); absent without RPC buffers. */
  remote?: Record<string, number>;
  /** Per buffer, e.g. { "CUDA0 model": …, "CPU_Mapped model": …, "RPC0[10.0.0.2:50052] KV": … } in bytes. */
  buffers: Record<string, number>;
}

const BUFFER_RE =
  /\b([A-Za-z][\w-]*(?:\[[^\]\s]+\])?)\s+(model|KV|RS|compute|output)\s+buffer size\s*=\s*([\d.]+)\s*MiB/;
/** A device of an RPC worker: `RPC0[10.0.0.2:50052]` (llama.cpp's RPC buffer type names). */
const RPC_DEVICE_RE = /^RPC\d*\[([^\]]+)\]$/;
/** Before llama.cpp named the model buffer: `llm_load_tensors:        CPU buffer size =  7.97 MiB`. */
const OLD_MODEL_RE = /llm_load_tensors:\s+([A-Za-z][\w-]*)\s+buffer size\s*=\s*([\d.]+)\s*MiB/;

/** The CPU backend's buffers: CPU, CPU_Mapped, CPU_REPACK, *_Host, and the extra AMX / KleidiAI ones. */
function isHostBuffer(name: string): boolean {
  return /^CPU/i.test(name) || /host/i.test(name) || /^(AMX|KLEIDIAI)/i.test(name);
}

/**
 * Reads llama-server's buffer-size lines (printed at `-lv 4`; the proxy starts servers that way to measure):
 *   load_tensors:   CPU_Mapped model buffer size =     7.97 MiB
 *   llama_context:        CPU  output buffer size =     0.49 MiB
 *   llama_kv_cache:        CPU KV buffer size =     1.00 MiB
 *   sched_reserve:        CPU compute buffer size =     3.01 MiB
 * (and `CUDA0 …`, `CUDA_Host …`, `Metal …`, `RS` for recurrent state, `RPC0[host:port] …` on an RPC worker). A
 * buffer seen twice (a reload) counts once, with its last value. Fields are absent when no line of that kind was
 * seen. RPC workers' buffers are counted apart (`remote`, `remoteBytes`): the other fields are this host's.
 */
export function parseLlamaMemoryLog(lines: Iterable<string>): MeasuredBuffers {
  const buffers: Record<string, number> = {};
  for (const line of lines) {
    const m = BUFFER_RE.exec(line);
    if (m) {
      buffers[`${m[1]} ${m[2]}`] = Number(m[3]) * MIB;
      continue;
    }
    const o = OLD_MODEL_RE.exec(line);
    if (o) buffers[`${o[1]} model`] = Number(o[2]) * MIB;
  }
  const out: MeasuredBuffers = { buffers };
  const local: Record<string, number> = {};
  const remote: Record<string, number> = {};
  let remoteTotal: number | undefined;
  for (const [k, v] of Object.entries(buffers)) {
    const rpc = RPC_DEVICE_RE.exec(k.slice(0, k.lastIndexOf(" ")));
    if (!rpc) {
      local[k] = v;
      continue;
    }
    remote[rpc[1]!] = (remote[rpc[1]!] ?? 0) + v;
    remoteTotal = (remoteTotal ?? 0) + v;
  }
  if (remoteTotal !== undefined) {
    for (const ep of Object.keys(remote)) remote[ep] = Math.round(remote[ep]!);
    out.remote = remote;
    out.remoteBytes = Math.round(remoteTotal);
  }
  const sum = (...kinds: string[]) => {
    let total: number | undefined;
    for (const [k, v] of Object.entries(local))
      if (kinds.some((kind) => k.endsWith(` ${kind}`))) total = (total ?? 0) + v;
    return total === undefined ? undefined : Math.round(total);
  };
  const model = sum("model");
  const kv = sum("KV", "RS");
  const compute = sum("compute");
  const output = sum("output");
  if (model !== undefined) out.modelBytes = model;
  if (kv !== undefined) out.kvBytes = kv;
  if (compute !== undefined) out.computeBytes = compute;
  if (output !== undefined) out.outputBytes = output;
  const keys = Object.keys(local);
  if (keys.length > 0) {
    let host = 0;
    let gpu = 0;
    for (const k of keys) {
      const name = k.slice(0, k.lastIndexOf(" "));
      if (isHostBuffer(name)) host += local[k]!;
      else gpu += local[k]!;
    }
    out.hostBytes = Math.round(host);
    out.gpuBytes = Math.round(gpu);
    out.totalBytes = Math.round(host + gpu);
  }
  return out;
}
