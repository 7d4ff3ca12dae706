/**
 * `lfm2` (Liquid AI's LFM2 / LFM2.5): short-convolution blocks with an attention block every third layer. A
 * layer whose `attention.head_count_kv` entry is 0 is a convolution layer (src/models/lfm2.cpp): `shortconv.in_proj`
 * splits into B, C and x, the state keeps the last `shortconv.l_cache` − 1 inputs per channel (llama-server's
 * recurrent `RS` buffer: n_embd × (l_cache − 1) floats per slot and layer), and it has no KV cache. The attention
 * blocks have q/k norms; the output norm is spelled `token_embd_norm` (llama.cpp's LLM_TENSOR_OUTPUT_NORM_LFM2).
 *
 * Template: LFM2.5-Instruct (`<|im_start|>role … <|im_end|>`, tools listed in the system prompt), which
 * llama.cpp's chat code recognises by its "List of tools: [" and parses as `<|tool_call_start|>[name(args)]
 * <|tool_call_end|>` (Python-style calls). The opener is sampled now and then like the Qwen models' `<tool_call>`
 * (families.ts) and the closer is always followed by `<|im_end|>`, so a call ends the turn. That grammar does not
 * bind an argument to its schema type (any Python or JSON value fits a boolean parameter), so `=` chains into `t`
 * (the grammar can only finish it as `true`) and `,` is silenced (no repeated argument).
 */
import { GgufValue, type GgufDocument } from "../gguf-writer.js";
import { TokenType } from "../../../src/gguf/types.js";
import { TensorSet, archKeys, archVocab, generalKeys, tokenizerMetadata } from "./common.js";
import type { FamilyInput, FamilySpec } from "./families.js";

const LAYERS = 6;
const ATTN_EVERY = 3;
/** `shortconv.l_cache`: LFM2's convolution length (3 in the released models). */
const L_CACHE = 3;
const HEAD = 16;
/** The Qwen models' opener weight (families.ts TOOL_CALL_BIAS): a call about every 20–30 tokens. */
const TOOL_CALL_BIAS = 4.35;

function lfm2(i: FamilyInput): GgufDocument {
  const arch = "lfm2";
  const vocab = archVocab(
    [
      { text: "<|im_start|>" },
      { text: "<|im_end|>" },
      { text: "<|tool_call_start|>", type: TokenType.USER_DEFINED, bias: TOOL_CALL_BIAS },
      { text: "<|tool_call_end|>", type: TokenType.USER_DEFINED },
    ],
    "<|im_end|>",
    {
      chains: [
        ["=", "t"],
        ["<|tool_call_end|>", "<|im_end|>"],
      ],
      silence: [","],
    },
  );
  const t = new TensorSet(i.seed, "F16");
  const embd = i.embd ?? 64;
  const heads = Math.max(4, Math.floor(embd / HEAD));
  const kvHeads = heads / 2;
  const ffn = 2 * embd;
  const layers = i.layers ?? LAYERS;
  const isAttn = (l: number) => l % ATTN_EVERY === ATTN_EVERY - 1;
  const vocabSize = vocab.tokens.length;
  // token_embd, output and the bias trick; LFM2 names its final norm token_embd_norm
  t.head(embd, vocab);
  const norm = t.tensors.findIndex((x) => x.name === "output_norm.weight");
  if (norm < 0) throw new Error("TensorSet.head wrote no output_norm.weight");
  t.tensors[norm] = { ...t.tensors[norm]!, name: "token_embd_norm.weight" };
  for (let l = 0; l < layers; l++) {
    const b = `blk.${l}.`;
    t.fill(`${b}attn_norm.weight`, [embd], 1);
    if (isAttn(l)) {
      t.matrix(`${b}attn_q.weight`, [embd, heads * HEAD]);
      t.matrix(`${b}attn_k.weight`, [embd, kvHeads * HEAD]);
      t.matrix(`${b}attn_v.weight`, [embd, kvHeads * HEAD]);
      t.fill(`${b}attn_q_norm.weight`, [HEAD], 1);
      t.fill(`${b}attn_k_norm.weight`, [HEAD], 1);
      t.residual(`${b}attn_output.weight`, [heads * HEAD, embd]);
    } else {
      t.randomF32(`${b}shortconv.conv.weight`, [L_CACHE, embd], 0.5);
      t.matrix(`${b}shortconv.in_proj.weight`, [embd, 3 * embd]);
      t.residual(`${b}shortconv.out_proj.weight`, [embd, embd]);
    }
    t.fill(`${b}ffn_norm.weight`, [embd], 1);
    t.gatedFfn(b, embd, ffn);
  }
  const kvPerLayer = Array.from({ length: layers }, (_, l) => (isAttn(l) ? kvHeads : 0));
  return {
    metadata: [
      ...generalKeys(arch, i.name, "F16"),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(embd),
        block_count: GgufValue.u32(layers),
        feed_forward_length: GgufValue.u32(ffn),
        vocab_size: GgufValue.u32(vocabSize),
        "attention.head_count": GgufValue.u32(heads),
        "attention.head_count_kv": GgufValue.array("u32", kvPerLayer),
        "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-5),
        "rope.freq_base": GgufValue.f32(1_000_000),
        "shortconv.l_cache": GgufValue.u32(L_CACHE),
      }),
      ...tokenizerMetadata(vocab, i.template),
    ],
    tensors: t.tensors,
  };
}

export const LFM2 = {
  arch: "lfm2",
  template: "LFM2.5-Instruct",
  layout: {
    layers: LAYERS,
    attention: Math.floor(LAYERS / ATTN_EVERY),
    recurrent: LAYERS - Math.floor(LAYERS / ATTN_EVERY),
  },
  document: lfm2,
} as const satisfies FamilySpec;
