/**
 * One GGUF document per family (see index.ts for the table). Sizes are tiny: 64-wide embeddings, 16-wide heads,
 * a handful of layers, the ~430-token vocabulary of common.ts.
 */
import { GgufValue, type GgufDocument } from "../gguf-writer.js";
import { TensorSet, archKeys, archVocab, generalKeys, tokenizerMetadata } from "./common.js";

export interface FamilyInput {
  readonly name: string;
  readonly seed: number;
  readonly contextLength: number;
  readonly template: string | undefined;
}

export interface FamilySpec {
  /** `general.architecture`. */
  readonly arch: string;
  /** File name under llama.cpp's models/templates/, when the family chats. */
  readonly template?: string;
  /** Layers by kind, for tests and the estimator work (what llama-server should report). */
  readonly layout: { readonly layers: number; readonly [kind: string]: number };
  readonly document: (i: FamilyInput) => GgufDocument;
}

const EMBD = 64;
const HEAD = 16;
const W = "F16" as const;

// ---------------------------------------------------------------------------------------------------------------
// gemma3: sliding-window attention with a global layer every 6th (window 128)

export const GEMMA3_WINDOW = 128;
const GEMMA3_LAYERS = 6;
const GEMMA3_SWA_PERIOD = 6;

function gemma3(i: FamilyInput): GgufDocument {
  const arch = "gemma3";
  const vocab = archVocab([{ text: "<start_of_turn>" }, { text: "<end_of_turn>" }], "<end_of_turn>");
  const t = new TensorSet(i.seed, W);
  const heads = 4;
  const kvHeads = 2;
  const ffn = 128;
  t.head(EMBD, vocab);
  for (let l = 0; l < GEMMA3_LAYERS; l++) {
    const b = `blk.${l}.`;
    t.fill(`${b}attn_norm.weight`, [EMBD], 1);
    t.matrix(`${b}attn_q.weight`, [EMBD, heads * HEAD]);
    t.matrix(`${b}attn_k.weight`, [EMBD, kvHeads * HEAD]);
    t.matrix(`${b}attn_v.weight`, [EMBD, kvHeads * HEAD]);
    t.fill(`${b}attn_q_norm.weight`, [HEAD], 1);
    t.fill(`${b}attn_k_norm.weight`, [HEAD], 1);
    t.residual(`${b}attn_output.weight`, [heads * HEAD, EMBD]);
    t.fill(`${b}post_attention_norm.weight`, [EMBD], 1);
    t.fill(`${b}ffn_norm.weight`, [EMBD], 1);
    t.matrix(`${b}ffn_gate.weight`, [EMBD, ffn]);
    t.matrix(`${b}ffn_up.weight`, [EMBD, ffn]);
    t.residual(`${b}ffn_down.weight`, [ffn, EMBD]);
    t.fill(`${b}post_ffw_norm.weight`, [EMBD], 1);
  }
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        block_count: GgufValue.u32(GEMMA3_LAYERS),
        feed_forward_length: GgufValue.u32(ffn),
        "attention.head_count": GgufValue.u32(heads),
        "attention.head_count_kv": GgufValue.u32(kvHeads),
        "attention.key_length": GgufValue.u32(HEAD),
        "attention.value_length": GgufValue.u32(HEAD),
        "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-6),
        "attention.sliding_window": GgufValue.u32(GEMMA3_WINDOW),
        "attention.sliding_window_pattern": GgufValue.u32(GEMMA3_SWA_PERIOD),
        "rope.freq_base": GgufValue.f32(1_000_000),
        "rope.freq_base_swa": GgufValue.f32(10_000),
      }),
      ...tokenizerMetadata(vocab, i.template),
    ],
    tensors: t.tensors,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// granitehybrid: Mamba-2 layers, attention every third layer (n_head_kv 0 marks a recurrent layer)

const GRANITE_LAYERS = 6;
const GRANITE_ATTN_EVERY = 3;

function granitehybrid(i: FamilyInput): GgufDocument {
  const arch = "granitehybrid";
  const vocab = archVocab(
    [
      { text: "<|start_of_role|>" },
      { text: "<|end_of_role|>" },
      { text: "<|end_of_text|>" },
      { text: "<tool_call>" },
      { text: "</tool_call>" },
    ],
    "<|end_of_text|>",
  );
  const t = new TensorSet(i.seed, W);
  const heads = 4;
  const kvHeads = 2;
  const ffn = 128;
  const dConv = 4;
  const dInner = 2 * EMBD;
  const dState = 16;
  const nGroup = 1;
  const ssmHeads = 8;
  const dInProj = 2 * dInner + 2 * nGroup * dState + ssmHeads;
  const convChannels = dInner + 2 * nGroup * dState;
  const isAttn = (l: number) => l % GRANITE_ATTN_EVERY === GRANITE_ATTN_EVERY - 1;
  t.head(EMBD, vocab);
  for (let l = 0; l < GRANITE_LAYERS; l++) {
    const b = `blk.${l}.`;
    t.fill(`${b}attn_norm.weight`, [EMBD], 1);
    if (isAttn(l)) {
      t.matrix(`${b}attn_q.weight`, [EMBD, heads * HEAD]);
      t.matrix(`${b}attn_k.weight`, [EMBD, kvHeads * HEAD]);
      t.matrix(`${b}attn_v.weight`, [EMBD, kvHeads * HEAD]);
      t.residual(`${b}attn_output.weight`, [heads * HEAD, EMBD]);
    } else {
      t.matrix(`${b}ssm_in.weight`, [EMBD, dInProj]);
      t.randomF32(`${b}ssm_conv1d.weight`, [dConv, convChannels], 0.5);
      t.fill(`${b}ssm_conv1d.bias`, [convChannels], 0);
      t.fill(`${b}ssm_dt.bias`, [ssmHeads], 0);
      // A = -exp(A_log) < 0 (a decaying state), D = 1
      t.f32(`${b}ssm_a`, [1, ssmHeads], (h) => -(1 + h));
      t.fill(`${b}ssm_d`, [1, ssmHeads], 1);
      t.fill(`${b}ssm_norm.weight`, [dInner / nGroup, nGroup], 1);
      t.residual(`${b}ssm_out.weight`, [dInner, EMBD]);
    }
    t.fill(`${b}ffn_norm.weight`, [EMBD], 1);
    t.matrix(`${b}ffn_gate.weight`, [EMBD, ffn]);
    t.matrix(`${b}ffn_up.weight`, [EMBD, ffn]);
    t.residual(`${b}ffn_down.weight`, [ffn, EMBD]);
  }
  const kvPerLayer = Array.from({ length: GRANITE_LAYERS }, (_, l) => (isAttn(l) ? kvHeads : 0));
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        block_count: GgufValue.u32(GRANITE_LAYERS),
        feed_forward_length: GgufValue.u32(ffn),
        "attention.head_count": GgufValue.u32(heads),
        "attention.head_count_kv": GgufValue.array("u32", kvPerLayer),
        "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-5),
        "rope.dimension_count": GgufValue.u32(HEAD),
        "rope.freq_base": GgufValue.f32(10_000),
        "ssm.conv_kernel": GgufValue.u32(dConv),
        "ssm.inner_size": GgufValue.u32(dInner),
        "ssm.state_size": GgufValue.u32(dState),
        "ssm.time_step_rank": GgufValue.u32(ssmHeads),
        "ssm.group_count": GgufValue.u32(nGroup),
      }),
      ...tokenizerMetadata(vocab, i.template),
    ],
    tensors: t.tensors,
  };
}

// ---------------------------------------------------------------------------------------------------------------

export const FAMILIES = {
  gemma3: {
    arch: "gemma3",
    template: "google-gemma-2-2b-it",
    layout: {
      layers: GEMMA3_LAYERS,
      swa: GEMMA3_LAYERS - Math.floor(GEMMA3_LAYERS / GEMMA3_SWA_PERIOD),
      window: GEMMA3_WINDOW,
    },
    document: gemma3,
  },
  granitehybrid: {
    arch: "granitehybrid",
    template: "ibm-granite-granite-4.0",
    layout: {
      layers: GRANITE_LAYERS,
      attention: Math.floor(GRANITE_LAYERS / GRANITE_ATTN_EVERY),
      recurrent: GRANITE_LAYERS - Math.floor(GRANITE_LAYERS / GRANITE_ATTN_EVERY),
    },
    document: granitehybrid,
  },
} as const satisfies Record<string, FamilySpec>;

export type ArchFamily = keyof typeof FAMILIES;
