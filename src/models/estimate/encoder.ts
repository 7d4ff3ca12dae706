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
 * What ggml's allocator (ggml/src/ggml-alloc.c) keeps live at the peak of one BERT block (src/models/bert.cpp), in
 * floats per token:
 *   - n_embd for the vector-embeddings input (build_inp_embd's `inp_embd`): ggml_build_forward_select puts it in
 *     the graph beside the token path, graph inputs are allocated before any node and a tensor is freed only after
 *     its last consumer, so with none it holds its place through the whole graph;
 *   - the attention: with flash attention 4.5 · n_embd (the block's input kept for the residual, Q, K, V, and K's
 *     F16 copy: build_attn_mha casts K and V to F16 when there is no cache); without it 5 · n_embd plus the n_head
 *     score matrices (measured; the live set we count there is one n_embd lower: the allocator's placement around
 *     the score matrices);
 *   - the feed-forward: w + 2 · n_embd (the residual, up, down), w being its live width: n_ff for BERT's
 *     up → GELU → down, 2 · n_ff where a gate is live beside up (LLM_FFN_PAR: nomic-bert, jina-bert-v2).
 * Checked against the rig's llama-server (CPU) for n_embd 64 and 128, n_ff 128–1024, 1–4 blocks, 1 and 4 heads,
 * 256–8192 tokens, with and without flash attention: within 0.3 floats per token (test/unit/models/
 * estimate-encoder.test.ts).
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
  const embdInput = 4 * T * E;
  const attention = opts.flashAttention ? 4 * T * 4.5 * E : 4 * T * 5 * E + H * T * T * 4;
  const feedForward = 4 * T * (w + 2 * E);
  const activations = embdInput + Math.max(attention, feedForward);
  return mask + inputs + activations;
}
