/**
 * gemma4: Gemma 4's layout in miniature (llama.cpp src/models/gemma4.cpp, conversion/gemma.py), with the real
 * Gemma 4 chat template (google-gemma-4-31B-it.jinja, read at test time by index.ts):
 *
 *   - a per-layer sliding-window pattern (`attention.sliding_window_pattern` as a bool array, like the converter
 *     writes it): layers 0–2 and 4 slide (window 128), layers 3 and 5 are global;
 *   - other head sizes and KV heads on global layers: 32-wide heads and 1 KV head (`attention.key_length`,
 *     `head_count_kv` per layer) against 16-wide heads and 2 KV heads on the sliding ones
 *     (`attention.key_length_swa`); the global layers have no `attn_v` (V = K, "attention_k_eq_v") and share one
 *     `rope_freqs` tensor;
 *   - KV sharing: the last `attention.shared_kv_layers` = 2 layers keep no KV cache of their own and read the
 *     cache of the last layer of their kind before them (layer 4 → 2, layer 5 → 3; llama_model::create_memory);
 *   - per-layer embeddings (Gemma 4 E2B/E4B): `per_layer_token_embd` (8 values per layer and token), projected
 *     and gated into every block.
 *
 * The turn markers are `<|turn>` … `<turn|>` (the end of a turn, llama.cpp's end-of-generation token for Gemma 4);
 * every tag is silenced, so the model never stops on its own or opens a thought channel or a tool call (tests force
 * those with a grammar). Tool calls (`<|tool_call>call:NAME{…}<tool_call|>`) are not exercised: llama.cpp's Gemma 4
 * tool-call grammar (80fb11a) does not force a call with `tool_choice: "required"` (this model writes the same free
 * text as with "auto"), though it writes one under a user grammar.
 */
import { GgufValue, type GgufDocument } from "../gguf-writer.js";
import { TokenType } from "../../../src/gguf/types.js";
import { TensorSet, archKeys, archVocab, generalKeys, tokenizerMetadata } from "./common.js";
import type { FamilyInput, FamilySpec } from "./families.js";

export const GEMMA4_WINDOW = 128;
/** Per layer: true for a sliding-window layer. The last two layers share the KV of layers 2 and 3. */
const SWA = [true, true, true, false, true, false] as const;
const SHARED_KV_LAYERS = 2;
const EMBD = 64;
const HEADS = 4;
const HEAD_SWA = 16;
const KV_HEADS_SWA = 2;
const HEAD_FULL = 32;
const KV_HEADS_FULL = 1;
const FFN = 128;
const EMBD_PER_LAYER = 8;
/**
 * The weight of each block's per-layer-embedding post-norm. The branch's output is RMS-normed like the attention
 * and FFN outputs, but it is nearly the same vector for every token (its gate reads the constant bias dimension),
 * so at weight 1 its six additions drown the bias dimension and byte tokens come out (measured: invalid UTF-8 at
 * the default sampling); 0.25 keeps it a third of the stream's other parts.
 */
const PER_LAYER_POST_NORM = 0.25;
const W = "F16" as const;

function gemma4(i: FamilyInput): GgufDocument {
  const arch = "gemma4";
  const text = TokenType.USER_DEFINED;
  const vocab = archVocab(
    [
      { text: "<|turn>" },
      { text: "<turn|>" },
      { text: "<|think|>" },
      { text: "<|tool>" },
      { text: "<tool|>" },
      // the tags llama.cpp's converter makes visible (USER_DEFINED) so that the chat parser reads them
      { text: "<|channel>", type: text },
      { text: "<channel|>", type: text },
      { text: "<|tool_call>", type: text },
      { text: "<tool_call|>", type: text },
      { text: "<|tool_response>", type: text },
      { text: "<tool_response|>", type: text },
      { text: '<|"|>', type: text },
    ],
    "<turn|>",
  );
  const t = new TensorSet(i.seed, W);
  const layers = SWA.length;
  const kvFromStart = layers - SHARED_KV_LAYERS;
  t.head(EMBD, vocab);
  t.matrix("per_layer_token_embd.weight", [EMBD_PER_LAYER * layers, vocab.tokens.length], 1);
  t.matrix("per_layer_model_proj.weight", [EMBD, EMBD_PER_LAYER * layers]);
  t.fill("per_layer_proj_norm.weight", [EMBD_PER_LAYER], 1);
  t.fill("rope_freqs.weight", [HEAD_FULL / 2], 1);
  for (let l = 0; l < layers; l++) {
    const b = `blk.${l}.`;
    const swa = SWA[l]!;
    const head = swa ? HEAD_SWA : HEAD_FULL;
    const kvHeads = swa ? KV_HEADS_SWA : KV_HEADS_FULL;
    t.fill(`${b}attn_norm.weight`, [EMBD], 1);
    t.matrix(`${b}attn_q.weight`, [EMBD, HEADS * head]);
    t.fill(`${b}attn_q_norm.weight`, [head], 1);
    if (l < kvFromStart) {
      t.matrix(`${b}attn_k.weight`, [EMBD, kvHeads * head]);
      // global layers: no V projection, V = K (Gemma 4's attention_k_eq_v)
      if (swa) t.matrix(`${b}attn_v.weight`, [EMBD, kvHeads * head]);
      t.fill(`${b}attn_k_norm.weight`, [head], 1);
    }
    t.residual(`${b}attn_output.weight`, [HEADS * head, EMBD]);
    t.fill(`${b}post_attention_norm.weight`, [EMBD], 1);
    t.fill(`${b}ffn_norm.weight`, [EMBD], 1);
    t.gatedFfn(b, EMBD, FFN);
    t.fill(`${b}post_ffw_norm.weight`, [EMBD], 1);
    t.matrix(`${b}inp_gate.weight`, [EMBD, EMBD_PER_LAYER]);
    t.residual(`${b}proj.weight`, [EMBD_PER_LAYER, EMBD]);
    t.fill(`${b}post_norm.weight`, [EMBD], PER_LAYER_POST_NORM);
  }
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        embedding_length_per_layer_input: GgufValue.u32(EMBD_PER_LAYER),
        block_count: GgufValue.u32(layers),
        feed_forward_length: GgufValue.u32(FFN),
        "attention.head_count": GgufValue.u32(HEADS),
        "attention.head_count_kv": GgufValue.array(
          "u32",
          SWA.map((s) => (s ? KV_HEADS_SWA : KV_HEADS_FULL)),
        ),
        "attention.key_length": GgufValue.u32(HEAD_FULL),
        "attention.value_length": GgufValue.u32(HEAD_FULL),
        "attention.key_length_swa": GgufValue.u32(HEAD_SWA),
        "attention.value_length_swa": GgufValue.u32(HEAD_SWA),
        "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-6),
        "attention.sliding_window": GgufValue.u32(GEMMA4_WINDOW),
        "attention.sliding_window_pattern": GgufValue.array("bool", [...SWA]),
        "attention.shared_kv_layers": GgufValue.u32(SHARED_KV_LAYERS),
        "rope.dimension_count": GgufValue.u32(HEAD_FULL),
        "rope.dimension_count_swa": GgufValue.u32(HEAD_SWA),
        "rope.freq_base": GgufValue.f32(1_000_000),
        "rope.freq_base_swa": GgufValue.f32(10_000),
      }),
      ...tokenizerMetadata(vocab, i.template),
    ],
    tensors: t.tensors,
  };
}

export const GEMMA4: FamilySpec = {
  arch: "gemma4",
  template: "google-gemma-4-31B-it",
  layout: {
    layers: SWA.length,
    swa: SWA.filter(Boolean).length,
    window: GEMMA4_WINDOW,
    sharedKv: SHARED_KV_LAYERS,
  },
  document: gemma4,
};
