/**
 * Which models a restored KV cache helps, from GGUF metadata. llama.cpp restores the state of sliding-window,
 * hybrid and recurrent models but does not reuse it for the next prompt (#25913, #28194), and a slot file holds no
 * image or audio state (#21133): such models are skipped, with the reason shown in /api/status.
 */
import type { ModelMetadata } from "../../gguf/reader.js";

export type Eligibility = { eligible: true } | { eligible: false; reason: string };

/** Architectures whose memory is recurrent (Mamba, RWKV) or hybrid (attention mixed with recurrent layers). */
const RECURRENT_OR_HYBRID = new Set([
  "mamba",
  "mamba2",
  "rwkv6",
  "rwkv6qwen2",
  "rwkv7",
  "arwkv7",
  "jamba",
  "falcon-h1",
  "granitehybrid",
  "lfm2",
  "lfm2moe",
  "nemotron_h",
  "plamo2",
  "qwen3next",
  "kimi-linear",
]);

export function contextEligibility(
  meta: Pick<
    ModelMetadata,
    "architecture" | "slidingWindow" | "headCountKvPerLayer" | "isMmproj" | "causalAttention" | "poolingType"
  >,
  opts: { mmproj?: string | undefined; embeddings?: boolean | undefined } = {},
): Eligibility {
  if (meta.isMmproj) return { eligible: false, reason: "a multimodal projector, not a model" };
  if (opts.mmproj)
    return {
      eligible: false,
      reason: "multimodal (mmproj): a slot file holds no image or audio state (llama.cpp #21133)",
    };
  if (opts.embeddings || meta.causalAttention === false || (meta.poolingType !== undefined && meta.poolingType > 0))
    return { eligible: false, reason: "an embedding or reranking model: it keeps no conversation to restore" };
  if (RECURRENT_OR_HYBRID.has(meta.architecture) || meta.headCountKvPerLayer?.some((n) => n === 0))
    return {
      eligible: false,
      reason: `hybrid/recurrent memory (${meta.architecture}): llama.cpp does not reuse a restored cache (#28194)`,
    };
  if (meta.slidingWindow !== undefined && meta.slidingWindow > 0)
    return {
      eligible: false,
      reason: `sliding-window attention (window ${meta.slidingWindow}): llama.cpp does not reuse a restored cache (#25913)`,
    };
  return { eligible: true };
}
