/**
 * Which models a restored KV cache helps, from GGUF metadata and the launch flags. A slot file holds no image or
 * audio state (llama.cpp #21133): multimodal models are skipped, with the reason shown in /api/status. Measured on
 * the rig's llama-server (80fb11a) with its tiny gemma3 and granitehybrid models (a 4,682-token prompt, slot saved,
 * server restarted, slot restored, a follow-up sent):
 *   - sliding-window models reuse nothing without `--swa-full` (the window cache keeps only the last window) and
 *     the whole prompt with it: they take part when they run with `--swa-full` (the catalog turns it on when the
 *     memory budget allows, src/models/swa-full.ts), and are skipped with that choice's reason otherwise; with
 *     our slot-checkpoints patch (below) the window cache rolls back to a restored checkpoint (2,023 of 2,028
 *     reused), so they take part without `--swa-full`;
 *   - hybrid and recurrent models (Mamba-2, Gated DeltaNet) reuse every saved token when the follow-up extends them
 *     (4,689 of 4,689) and none when it drops some (a chat template that re-renders the last answer differently, a
 *     thinking model's `<think>` removed from history): a recurrent state cannot roll back without llama.cpp's
 *     context checkpoints, which a plain llama.cpp slot file does not hold (upstream PR #20819). With our llama.cpp
 *     patch (src/llama/install/patches.ts, found in the binary: capabilities.ts `slotCheckpoints`) the slot file
 *     keeps them and a restored model rolls back to the last checkpoint before the first changed token, as the live
 *     server does (llama.cpp makes one at the start of the last user message, and 4 and 4+ubatch tokens before the
 *     prompt's end): they take part with no caveat. Without it they take part with that caveat; a model whose
 *     follow-ups miss twice is turned off by the reuse check (verify.ts).
 */
import type { ModelMetadata } from "../../gguf/reader.js";
import { HYBRID_ARCHS, RECURRENT_ARCHS } from "../../models/estimate/layers.js";

export type Eligibility = { eligible: true; caveat?: string } | { eligible: false; reason: string };

export interface EligibilityOptions {
  mmproj?: string | undefined;
  embeddings?: boolean | undefined;
  /** The server runs with `--swa-full`. */
  swaFull?: boolean | undefined;
  /** Why it does not (the catalog's choice), for the skip reason. */
  swaFullReason?: string | undefined;
  /** The llama-server keeps context checkpoints in slot files (our patch). */
  slotCheckpoints?: boolean | undefined;
}

export function contextEligibility(
  meta: Pick<
    ModelMetadata,
    "architecture" | "slidingWindow" | "headCountKvPerLayer" | "isMmproj" | "causalAttention" | "poolingType"
  >,
  opts: EligibilityOptions = {},
): Eligibility {
  if (meta.isMmproj) return { eligible: false, reason: "a multimodal projector, not a model" };
  if (opts.mmproj)
    return {
      eligible: false,
      reason: "multimodal (mmproj): a slot file holds no image or audio state (llama.cpp #21133)",
    };
  if (opts.embeddings || meta.causalAttention === false || (meta.poolingType !== undefined && meta.poolingType > 0))
    return { eligible: false, reason: "an embedding or reranking model: it keeps no conversation to restore" };
  if (meta.slidingWindow !== undefined && meta.slidingWindow > 0 && !opts.swaFull && !opts.slotCheckpoints)
    return {
      eligible: false,
      reason:
        `sliding-window attention (window ${meta.slidingWindow}) without --swa-full: a restored cache is not reused` +
        (opts.swaFullReason ? ` (--swa-full not used: ${opts.swaFullReason})` : ""),
    };
  if (
    RECURRENT_ARCHS.has(meta.architecture) ||
    HYBRID_ARCHS.has(meta.architecture) ||
    meta.headCountKvPerLayer?.some((n) => n === 0)
  ) {
    if (opts.slotCheckpoints) return { eligible: true };
    return {
      eligible: true,
      caveat:
        `hybrid/recurrent memory (${meta.architecture}): a restored state is reused only by a follow-up that extends ` +
        "every saved token; one that drops some (a thinking model's <think> left out of history) prefills again, " +
        "since this llama-server's slot files hold no context checkpoints (llama.cpp PR #20819; `gglib llama install " +
        "--source` builds one that does)",
    };
  }
  return { eligible: true };
}
