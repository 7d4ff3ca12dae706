/**
 * Which blocks of a model keep what kind of memory, the way llama.cpp (80fb11a) decides it from the GGUF header:
 *   - sliding-window (SWA) layers: a KV cache bounded by the window (src/llama-kv-cache-iswa.cpp);
 *   - recurrent layers (Mamba, Mamba-2, Gated DeltaNet): a fixed state per sequence (src/llama-memory-recurrent.cpp)
 *     and no KV cache; the other blocks of a hybrid model keep a full-context KV cache.
 * Pure: the tables below are llama.cpp's per-architecture defaults (src/models/<arch>.cpp, src/llama-arch.cpp).
 */
import type { ModelMetadata } from "../../gguf/reader.js";

/** The metadata these rules read. */
export type LayerMetadata = Partial<
  Pick<
    ModelMetadata,
    | "architecture"
    | "blockCount"
    | "headCountKv"
    | "headCountKvPerLayer"
    | "keyLength"
    | "valueLength"
    | "keyLengthSwa"
    | "valueLengthSwa"
    | "sharedKvLayers"
    | "embeddingLengthPerLayer"
    | "feedForwardLengthPerLayer"
    | "slidingWindow"
    | "slidingWindowPattern"
    | "slidingWindowLayers"
    | "recurrentLayers"
    | "fullAttentionInterval"
    | "ssmConvKernel"
    | "ssmInnerSize"
    | "ssmStateSize"
    | "ssmGroupCount"
    | "ssmTimeStepRank"
    | "shortconvLCache"
  >
>;

/**
 * `{arch}.attention.sliding_window_pattern` when the file has none: every `period`-th layer is global, the others
 * slide (`denseFirst`: layer 0, period, 2·period… are global; otherwise period-1, 2·period-1…). llama.cpp's
 * set_swa_pattern with each architecture's default.
 */
const SWA_PERIOD: Readonly<Record<string, { period: number; denseFirst?: boolean }>> = {
  gemma2: { period: 2 },
  gemma3: { period: 6 },
  gemma3n: { period: 5 },
  "gpt-oss": { period: 2 },
  cohere2: { period: 4 },
  llama4: { period: 4 },
  olmo2: { period: 4 },
  exaone4: { period: 4 },
  "exaone-moe": { period: 4 },
  afmoe: { period: 4 },
  plamo3: { period: 8 },
  smallthinker: { period: 4, denseFirst: true },
};

/** llama.cpp's llm_arch_is_recurrent: every layer keeps a recurrent state, none a KV cache. */
export const RECURRENT_ARCHS: ReadonlySet<string> = new Set([
  "mamba",
  "mamba2",
  "rwkv6",
  "rwkv6qwen2",
  "rwkv7",
  "arwkv7",
]);

/**
 * Architectures llama.cpp gives no memory at all (llama_model::create_memory returns none: encoders, diffusion
 * models): no KV cache and no recurrent state, whatever the context.
 */
export const NO_MEMORY_ARCHS: ReadonlySet<string> = new Set([
  "bert",
  "jina-bert-v2",
  "jina-bert-v3",
  "nomic-bert",
  "nomic-bert-moe",
  "neo-bert",
  "eurobert",
  "wavtokenizer-dec",
  "modern-bert",
  "gemma-embedding",
  "dream",
  "llada",
  "llada-moe",
  "rnd1",
]);

/** llama.cpp's llm_arch_is_hybrid: attention layers mixed with recurrent ones. */
export const HYBRID_ARCHS: ReadonlySet<string> = new Set([
  "jamba",
  "falcon-h1",
  "plamo2",
  "granitehybrid",
  "lfm2",
  "lfm2moe",
  "nemotron_h",
  "nemotron_h_moe",
  "qwen3next",
  "kimi-linear",
  "bailingmoe3",
  "kimi-k3",
  "qwen35",
  "qwen35moe",
  "qwen4exp",
  "deepseek4",
  "minimax-01",
]);

function layerCount(meta: LayerMetadata): number {
  return meta.blockCount ?? 0;
}

/**
 * Per layer: true for a sliding-window layer. Undefined when the model has no window, or has one but its layout
 * is unknown here (an architecture without a default pattern and no pattern in the file): the caller then counts
 * every layer at full context, the safe side.
 */
export function swaLayers(meta: LayerMetadata): boolean[] | undefined {
  const n = layerCount(meta);
  if (!meta.slidingWindow || meta.slidingWindow <= 0 || n === 0) return undefined;
  if (meta.slidingWindowLayers && meta.slidingWindowLayers.length >= n) return meta.slidingWindowLayers.slice(0, n);
  const arch = meta.architecture ?? "";
  const known = SWA_PERIOD[arch];
  const period = meta.slidingWindowPattern ?? known?.period;
  if (period === undefined || !known) return undefined;
  return Array.from({ length: n }, (_, il) =>
    known.denseFirst ? period === 0 || il % period !== 0 : period === 0 || il % period < period - 1,
  );
}

/**
 * Per layer: false for a layer that keeps no KV cache of its own because it reads an earlier layer's (llama.cpp's
 * `n_layer_kv_from_start` and the reuse callback of llama_model::create_memory): in Gemma 4 the last
 * `attention.shared_kv_layers` layers, in Gemma 3n every layer from the 21st on (src/models/gemma3n.cpp). Undefined
 * for the other architectures (every layer has its own).
 */
export function ownKvLayers(meta: LayerMetadata): boolean[] | undefined {
  const n = layerCount(meta);
  const fromStart =
    meta.architecture === "gemma4" ? n - (meta.sharedKvLayers ?? 0) : meta.architecture === "gemma3n" ? 20 : undefined;
  if (fromStart === undefined || fromStart >= n) return undefined;
  return Array.from({ length: n }, (_, i) => i < fromStart);
}

/**
 * Per layer: the K and V head sizes (llama_hparams::n_embd_head_k(il)): `attention.key_length_swa` /
 * `value_length_swa` on sliding-window layers when the file has them (Gemma 4), `key_length` / `value_length`
 * (default n_embd / n_head) elsewhere.
 */
export function headSizes(
  meta: LayerMetadata & { embeddingLength?: number | undefined; headCount?: number | undefined },
): { k: number; v: number }[] {
  const n = layerCount(meta);
  const heads = meta.headCount ?? 0;
  const base = heads > 0 ? Math.floor((meta.embeddingLength ?? 0) / heads) : 0;
  const k = meta.keyLength ?? base;
  const v = meta.valueLength ?? base;
  const swa = swaLayers(meta);
  return Array.from({ length: n }, (_, i) =>
    swa?.[i] ? { k: meta.keyLengthSwa ?? k, v: meta.valueLengthSwa ?? v } : { k, v },
  );
}

/**
 * Floats per token of Gemma 4's per-layer inputs (src/models/gemma4.cpp, project_per_layer_inputs):
 * n_embd_per_layer × n_layer, 0 for other models. Their permuted copy is read by every block, so it stays live
 * through the whole graph; before the first block the graph holds four tensors of this size at once (the looked-up
 * per-layer embeddings, the projection of the input embedding, their sum, its permuted copy).
 */
export function perLayerInputFloats(meta: LayerMetadata): number {
  if (meta.architecture !== "gemma4") return 0;
  return (meta.embeddingLengthPerLayer ?? 0) * layerCount(meta);
}

/** Per layer: true for a recurrent layer. Undefined for a model without recurrent layers. */
export function recurrentLayers(meta: LayerMetadata): boolean[] | undefined {
  const n = layerCount(meta);
  const arch = meta.architecture ?? "";
  if (n === 0) return undefined;
  if (RECURRENT_ARCHS.has(arch)) return Array.from({ length: n }, () => true);
  if (!HYBRID_ARCHS.has(arch)) return undefined;
  if (arch === "falcon-h1") return Array.from({ length: n }, () => true);
  if (arch === "qwen35" || arch === "qwen35moe" || arch === "qwen3next" || arch === "qwen4exp") {
    if (meta.recurrentLayers && meta.recurrentLayers.length >= n) return meta.recurrentLayers.slice(0, n);
    const every = meta.fullAttentionInterval ?? 4;
    return Array.from({ length: n }, (_, i) => (i + 1) % every !== 0);
  }
  const kv = (i: number) => meta.headCountKvPerLayer?.[i] ?? meta.headCountKv ?? 1;
  if (arch === "nemotron_h" || arch === "nemotron_h_moe")
    return Array.from({ length: n }, (_, i) => kv(i) === 0 && (meta.feedForwardLengthPerLayer?.[i] ?? 0) === 0);
  // granitehybrid, jamba, plamo2, lfm2…: a layer is recurrent when its n_head_kv is 0
  if (meta.recurrentLayers && meta.recurrentLayers.length >= n) return meta.recurrentLayers.slice(0, n);
  return Array.from({ length: n }, (_, i) => kv(i) === 0);
}

const GATED_DELTA_NET: ReadonlySet<string> = new Set(["qwen35", "qwen35moe", "qwen3next", "qwen4exp"]);

/** Recurrent layers keep no KV cache except in falcon-h1, whose every layer has both. */
export function attentionInRecurrentLayers(meta: LayerMetadata): boolean {
  return meta.architecture === "falcon-h1";
}

/**
 * Bytes of one recurrent layer's state for one sequence (f32): the convolution state r = (d_conv − 1) ·
 * (d_inner + 2 · n_group · d_state) and the SSM state s = d_state · d_inner (Mamba, Mamba-2 and Gated DeltaNet
 * alike: llama_hparams::n_embd_r / n_embd_s). LFM2's short convolution (`shortconv.l_cache`) keeps only r =
 * n_embd · (l_cache − 1) and no SSM state (s = 0: it has no ssm.* keys). Undefined without either (RWKV: not
 * modelled).
 */
export function recurrentStateBytesPerLayer(
  meta: LayerMetadata & { embeddingLength?: number | undefined },
): number | undefined {
  if (meta.shortconvLCache !== undefined && meta.shortconvLCache > 0 && meta.embeddingLength !== undefined)
    return meta.embeddingLength * (meta.shortconvLCache - 1) * 4;
  const { ssmConvKernel: conv, ssmInnerSize: inner, ssmStateSize: state } = meta;
  if (conv === undefined || inner === undefined || state === undefined) return undefined;
  const groups = meta.ssmGroupCount ?? 0;
  const r = (conv > 0 ? conv - 1 : 0) * (inner + 2 * groups * state);
  const s = state * inner;
  return (r + s) * 4;
}

/**
 * Floats per token a Mamba-2 block holds at its peak in the compute buffer: the input projection (z, xBC, dt),
 * the convolution's input and output, the scan's output and five rows of the residual stream. Fitted to
 * llama-server's compute buffer for the rig's granitehybrid model (-c 8192 and -c 4096 -np 2: within 0.01 MiB);
 * undefined for models without Mamba-2 layers (the ssm.* keys).
 */
export function mambaPeakFloatsPerToken(
  meta: LayerMetadata & { embeddingLength?: number | undefined },
): number | undefined {
  const { ssmConvKernel: conv, ssmInnerSize: inner, ssmStateSize: state } = meta;
  if (conv === undefined || inner === undefined || state === undefined || !recurrentLayers(meta)?.some(Boolean))
    return undefined;
  // Gated DeltaNet (Qwen3.5, Qwen3-Next) has the same state keys but another graph: not this fit
  if (GATED_DELTA_NET.has(meta.architecture ?? "")) return undefined;
  const groups = meta.ssmGroupCount ?? 1;
  const heads = meta.ssmTimeStepRank ?? 0;
  const channels = inner + 2 * groups * state;
  const inProj = inner + channels + heads;
  return inProj + 2 * channels + inner + 5 * (meta.embeddingLength ?? 0);
}
