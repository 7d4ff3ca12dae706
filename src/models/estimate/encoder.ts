/**
 * The compute buffer of a model llama.cpp gives no memory (no KV cache, no recurrent state: the encoders and
 * diffusion models of NO_MEMORY_ARCHS), the way llama.cpp 80fb11a sizes it. Pure.
 *
 * What the source fixes:
 *   - The worst-case graph is reserved for n_tokens = min(n_ctx, n_ubatch) tokens (src/llama-context.cpp
 *     sched_reserve), n_ctx being `-c` rounded up to 256. llama-server lowers n_batch to n_ubatch for embeddings
 *     (tools/server/server.cpp), and a non-causal model must take a whole input in one ubatch (decode(): "non-causal
 *     attention requires n_ubatch >= n_tokens"), so the ubatch is the longest input it can embed.
 *   - With no KV cache the attention spans the ubatch's own tokens (src/llama-graph.cpp build_attn_inp_no_cache:
 *     "the number of KV values is equal to the number of tokens in the batch"): a mask of n_tokens × n_tokens (F16
 *     with flash attention, F32 without), and without flash attention n_head score matrices of that size. Nothing
 *     grows with `-c` beyond the ubatch.
 *   - Every token is an output (n_outputs_max = n_batch: the last layer's get_rows keeps all rows) and the graph
 *     has no output head, only the pooled embedding: no logits term. Its inputs hold three int32 per token (token
 *     ids, positions, output ids) and, for mean pooling, an n_tokens × n_seqs F32 averaging matrix
 *     (build_inp_mean).
 * What the allocator makes of one BERT block (src/models/bert.cpp, measured): the peak of live activations per
 * token is max(5.5 · n_embd, w + 3 · n_embd) floats with flash attention (the attention with K and V cast to F16;
 * the feed-forward), max(6 · n_embd, w + 2 · n_embd) without (Q, K, V, V made contiguous, the output, the residual;
 * the residual, up and down), w being the feed-forward's live width: n_ff for BERT's up → GELU → down, 2 · n_ff
 * where a gate is live beside up (nomic-bert, jina-bert-v2). Measured on the rig's llama-server (CPU) for n_embd
 * 64 and 128, n_ff 128–512, 1–4 blocks, 1 and 4 heads, 256–8192 tokens: within 0.3 floats per token.
 * Other no-memory architectures (other encoders, diffusion models) keep the general terms (estimate.ts) over the
 * same n_tokens.
 */
import type { ModelMetadata } from "../../gguf/reader.js";

/** Architectures built by llama.cpp's BERT graph (src/models/bert.cpp, llama_model_bert). */
export const BERT_GRAPH_ARCHS: ReadonlySet<string> = new Set([
  "bert",
  "nomic-bert",
  "nomic-bert-moe",
  "jina-bert-v2",
  "jina-bert-v3",
]);

/** Of those, the ones whose feed-forward has a gate beside up (LLM_FFN_PAR in bert.cpp). */
const GATED_FFN: ReadonlySet<string> = new Set(["nomic-bert", "jina-bert-v2"]);

/** llama.cpp's LLAMA_POOLING_TYPE_MEAN. */
const POOLING_MEAN = 1;

export type EncoderMetadata = Partial<
  Pick<
    ModelMetadata,
    "architecture" | "embeddingLength" | "feedForwardLength" | "headCount" | "poolingType" | "blockCount"
  >
>;

/** Tokens of the reserved graph: min(n_ctx rounded up to 256, n_ubatch). */
export function encoderTokens(kvCells: number, ubatch: number): number {
  return Math.min(kvCells, ubatch);
}

/**
 * The compute buffer of a BERT-graph model for `tokens` tokens (encoderTokens) and `parallel` slots (n_seq_max).
 * Undefined for other architectures.
 */
export function bertComputeBytes(
  meta: EncoderMetadata,
  opts: { tokens: number; flashAttention: boolean; parallel: number },
): number | undefined {
  const arch = meta.architecture ?? "";
  if (!BERT_GRAPH_ARCHS.has(arch)) return undefined;
  const T = opts.tokens;
  const E = meta.embeddingLength ?? 768;
  const H = meta.headCount ?? 12;
  const F = meta.feedForwardLength ?? 4 * E;
  const w = GATED_FFN.has(arch) ? 2 * F : F;
  const mask = T * T * (opts.flashAttention ? 2 : 4);
  const inputs = T * (3 * 4 + (meta.poolingType === POOLING_MEAN ? opts.parallel * 4 : 0));
  const activations = opts.flashAttention
    ? 4 * T * Math.max(5.5 * E, w + 3 * E)
    : Math.max(4 * T * 6 * E + H * T * T * 4, 4 * T * (w + 2 * E));
  return mask + inputs + activations;
}
