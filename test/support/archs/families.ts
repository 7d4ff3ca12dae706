/**
 * One GGUF document per family (see index.ts for the table). Sizes are tiny: 64-wide embeddings, 16-wide heads,
 * a handful of layers, the ~430-token vocabulary of common.ts.
 */
import { GgufValue, type GgufDocument } from "../gguf-writer.js";
import { TokenType } from "../../../src/gguf/types.js";
import { TensorSet, archKeys, archVocab, generalKeys, tokenizerMetadata } from "./common.js";
import { GEMMA4 } from "./gemma4.js";
import { LFM2 } from "./lfm2.js";

export interface FamilyInput {
  readonly name: string;
  readonly seed: number;
  readonly contextLength: number;
  readonly template: string | undefined;
  /**
   * Embedding width (default 64; gemma3, granitehybrid, qwen35 and gpt-oss only, for benchmarks that need a slower
   * prefill).
   */
  readonly embd?: number | undefined;
  /** Layer count (default: the family's; the same families). */
  readonly layers?: number | undefined;
}

/** Width-derived sizes: 16-wide heads, as many as the width holds (4 at the default 64), half of them for K/V. */
function widths(i: FamilyInput): { embd: number; heads: number; kvHeads: number; ffn: number } {
  const embd = i.embd ?? EMBD;
  const heads = Math.max(4, Math.floor(embd / HEAD));
  return { embd, heads, kvHeads: heads / 2, ffn: 2 * embd };
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

/**
 * Tool calls in the `<tool_call>…</tool_call>` formats (Qwen, Granite). The opener's weight on the bias dimension:
 * it is sampled now and then and always followed by the newline its call grammar expects, so a random model starts
 * a call within a few dozen tokens when tools are on (llama-server's grammar then writes a valid call); without
 * tools the tag is plain text in the content. Measured with the real llama-server (default sampling, 400 tokens,
 * seed 1): 4.3 → 15–17 calls opened in the Qwen models, 1 in granitehybrid; 4.45 → 45–48 and 12. The chosen
 * weights open one about every 20–30 tokens.
 *
 * The closer ends the answer: `<`, the `</…` pieces, `}` and `,` are silenced (a grammar still writes them where
 * it must), so after a call the grammar's choices are whitespace, `,` and another call in the same block, or the
 * closing tag; the closing token is a little less silenced than the rest and wins, a call's `}` chains into it
 * where it may follow directly, and it chains into the end-of-turn token.
 */
const TOOL_CALL_CLOSE_BIAS = -3.5;
const CALL_PUNCTUATION = ["<", "</", "</t", "</th", "</thi", "</thin", "</think", "}", ","];
const TOOL_CALL_BIAS = { qwen: 4.35, granite: 4.5 } as const;

// ---------------------------------------------------------------------------------------------------------------
// gemma3: sliding-window attention with a global layer every 6th (window 128)

export const GEMMA3_WINDOW = 128;
const GEMMA3_LAYERS = 6;
const GEMMA3_SWA_PERIOD = 6;

function gemma3(i: FamilyInput): GgufDocument {
  const arch = "gemma3";
  const vocab = archVocab([{ text: "<start_of_turn>" }, { text: "<end_of_turn>" }], "<end_of_turn>");
  const t = new TensorSet(i.seed, W);
  const { embd: EMBD, heads, kvHeads, ffn } = widths(i);
  const layers = i.layers ?? GEMMA3_LAYERS;
  t.head(EMBD, vocab);
  for (let l = 0; l < layers; l++) {
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
    t.gatedFfn(b, EMBD, ffn);
    t.fill(`${b}post_ffw_norm.weight`, [EMBD], 1);
  }
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        block_count: GgufValue.u32(layers),
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
      { text: "<tool_call>", type: TokenType.USER_DEFINED, bias: TOOL_CALL_BIAS.granite },
      { text: "</tool_call>", type: TokenType.USER_DEFINED, bias: TOOL_CALL_CLOSE_BIAS },
    ],
    "<|end_of_text|>",
    {
      chains: [
        ["<tool_call>", "<0x0A>"],
        ["}", "</tool_call>"],
        ["</tool_call>", "<|end_of_text|>"],
      ],
      silence: CALL_PUNCTUATION,
    },
  );
  const t = new TensorSet(i.seed, W);
  const { embd: EMBD, heads, kvHeads, ffn } = widths(i);
  const layers = i.layers ?? GRANITE_LAYERS;
  const dConv = 4;
  const dInner = 2 * EMBD;
  const dState = 16;
  const nGroup = 1;
  const ssmHeads = Math.max(8, dInner / 16);
  const dInProj = 2 * dInner + 2 * nGroup * dState + ssmHeads;
  const convChannels = dInner + 2 * nGroup * dState;
  const isAttn = (l: number) => l % GRANITE_ATTN_EVERY === GRANITE_ATTN_EVERY - 1;
  t.head(EMBD, vocab);
  for (let l = 0; l < layers; l++) {
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
    t.gatedFfn(b, EMBD, ffn);
  }
  const kvPerLayer = Array.from({ length: layers }, (_, l) => (isAttn(l) ? kvHeads : 0));
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        block_count: GgufValue.u32(layers),
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
// qwen3 / qwen3moe: dense or MoE attention blocks with q/k norms; the Qwen3 template (<think>, <tool_call>)

/** Qwen's chat markers and the tags its templates write (the tags are plain text in Qwen's vocabulary). */
function qwenVocab() {
  const text = TokenType.USER_DEFINED;
  return archVocab(
    [
      { text: "<|im_start|>" },
      { text: "<|im_end|>" },
      { text: "<|endoftext|>" },
      { text: "<think>", type: text },
      { text: "</think>", type: text },
      { text: "<tool_call>", type: text, bias: TOOL_CALL_BIAS.qwen },
      { text: "</tool_call>", type: text, bias: TOOL_CALL_CLOSE_BIAS },
      { text: "<tool_response>", type: text },
      { text: "</tool_response>", type: text },
    ],
    "<|im_end|>",
    {
      chains: [
        ["<tool_call>", "<0x0A>"],
        ["}", "</tool_call>"],
        ["</tool_call>", "<|im_end|>"],
      ],
      silence: CALL_PUNCTUATION,
    },
  );
}

const QWEN3_LAYERS = 2;
const QWEN3MOE_EXPERTS = 8;
const QWEN3MOE_USED = 2;

function qwen3Family(arch: "qwen3" | "qwen3moe") {
  return (i: FamilyInput): GgufDocument => {
    const vocab = qwenVocab();
    const t = new TensorSet(i.seed, W);
    const heads = 4;
    const kvHeads = 2;
    const ffn = 128;
    const ffnExp = 32;
    t.head(EMBD, vocab);
    for (let l = 0; l < QWEN3_LAYERS; l++) {
      const b = `blk.${l}.`;
      t.fill(`${b}attn_norm.weight`, [EMBD], 1);
      t.matrix(`${b}attn_q.weight`, [EMBD, heads * HEAD]);
      t.matrix(`${b}attn_k.weight`, [EMBD, kvHeads * HEAD]);
      t.matrix(`${b}attn_v.weight`, [EMBD, kvHeads * HEAD]);
      t.fill(`${b}attn_q_norm.weight`, [HEAD], 1);
      t.fill(`${b}attn_k_norm.weight`, [HEAD], 1);
      t.residual(`${b}attn_output.weight`, [heads * HEAD, EMBD]);
      t.fill(`${b}ffn_norm.weight`, [EMBD], 1);
      if (arch === "qwen3") {
        t.gatedFfn(b, EMBD, ffn);
      } else {
        t.matrix(`${b}ffn_gate_inp.weight`, [EMBD, QWEN3MOE_EXPERTS]);
        t.matrix(`${b}ffn_gate_exps.weight`, [EMBD, ffnExp, QWEN3MOE_EXPERTS]);
        t.matrix(`${b}ffn_up_exps.weight`, [EMBD, ffnExp, QWEN3MOE_EXPERTS]);
        t.residual(`${b}ffn_down_exps.weight`, [ffnExp, EMBD, QWEN3MOE_EXPERTS]);
      }
    }
    const moe: Record<string, GgufValue> =
      arch === "qwen3moe"
        ? {
            expert_count: GgufValue.u32(QWEN3MOE_EXPERTS),
            expert_used_count: GgufValue.u32(QWEN3MOE_USED),
            expert_feed_forward_length: GgufValue.u32(ffnExp),
          }
        : {};
    return {
      metadata: [
        ...generalKeys(arch, i.name, W),
        ...archKeys(arch, {
          context_length: GgufValue.u32(i.contextLength),
          embedding_length: GgufValue.u32(EMBD),
          block_count: GgufValue.u32(QWEN3_LAYERS),
          feed_forward_length: GgufValue.u32(ffn),
          "attention.head_count": GgufValue.u32(heads),
          "attention.head_count_kv": GgufValue.u32(kvHeads),
          "attention.key_length": GgufValue.u32(HEAD),
          "attention.value_length": GgufValue.u32(HEAD),
          "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-6),
          "rope.freq_base": GgufValue.f32(1_000_000),
          ...moe,
        }),
        ...tokenizerMetadata(vocab, i.template),
      ],
      tensors: t.tensors,
    };
  };
}

// ---------------------------------------------------------------------------------------------------------------
// qwen35: Gated DeltaNet layers with full (gated) attention every fourth layer

const QWEN35_LAYERS = 4;
const QWEN35_FULL_EVERY = 4;

function qwen35(i: FamilyInput): GgufDocument {
  const arch = "qwen35";
  const vocab = qwenVocab();
  const t = new TensorSet(i.seed, W);
  const { embd: EMBD, heads, kvHeads, ffn } = widths(i);
  const layers = i.layers ?? QWEN35_LAYERS;
  const dConv = 4;
  const dState = 16; // head_k_dim = head_v_dim
  const kHeads = kvHeads; // ssm.group_count (2 at the default width)
  const vHeads = heads; // ssm.time_step_rank (4)
  const keyDim = dState * kHeads;
  const valueDim = dState * vHeads; // ssm.inner_size
  const isRecurrent = (l: number) => (l + 1) % QWEN35_FULL_EVERY !== 0;
  t.head(EMBD, vocab);
  for (let l = 0; l < layers; l++) {
    const b = `blk.${l}.`;
    t.fill(`${b}attn_norm.weight`, [EMBD], 1);
    t.fill(`${b}post_attention_norm.weight`, [EMBD], 1);
    if (!isRecurrent(l)) {
      // q carries the output gate: 2 × heads × head_dim
      t.matrix(`${b}attn_q.weight`, [EMBD, heads * HEAD * 2]);
      t.matrix(`${b}attn_k.weight`, [EMBD, kvHeads * HEAD]);
      t.matrix(`${b}attn_v.weight`, [EMBD, kvHeads * HEAD]);
      t.fill(`${b}attn_q_norm.weight`, [HEAD], 1);
      t.fill(`${b}attn_k_norm.weight`, [HEAD], 1);
      t.residual(`${b}attn_output.weight`, [heads * HEAD, EMBD]);
    } else {
      t.matrix(`${b}attn_qkv.weight`, [EMBD, keyDim * 2 + valueDim]);
      t.matrix(`${b}attn_gate.weight`, [EMBD, valueDim]);
      t.randomF32(`${b}ssm_conv1d.weight`, [dConv, keyDim * 2 + valueDim], 0.5);
      t.fill(`${b}ssm_dt.bias`, [vHeads], 0);
      t.f32(`${b}ssm_a`, [vHeads], (h) => -(1 + h));
      t.matrix(`${b}ssm_beta.weight`, [EMBD, vHeads]);
      t.matrix(`${b}ssm_alpha.weight`, [EMBD, vHeads]);
      t.fill(`${b}ssm_norm.weight`, [dState], 1);
      t.residual(`${b}ssm_out.weight`, [valueDim, EMBD]);
    }
    t.gatedFfn(b, EMBD, ffn);
  }
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        block_count: GgufValue.u32(layers),
        feed_forward_length: GgufValue.u32(ffn),
        "attention.head_count": GgufValue.u32(heads),
        "attention.head_count_kv": GgufValue.u32(kvHeads),
        "attention.key_length": GgufValue.u32(HEAD),
        "attention.value_length": GgufValue.u32(HEAD),
        "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-6),
        "rope.dimension_count": GgufValue.u32(HEAD),
        // interleaved multi-section rope: sections add up to half the rotated dimensions
        "rope.dimension_sections": GgufValue.array("i32", [3, 3, 2, 0]),
        "rope.freq_base": GgufValue.f32(10_000_000),
        "ssm.conv_kernel": GgufValue.u32(dConv),
        "ssm.inner_size": GgufValue.u32(valueDim),
        "ssm.state_size": GgufValue.u32(dState),
        "ssm.time_step_rank": GgufValue.u32(vHeads),
        "ssm.group_count": GgufValue.u32(kHeads),
        full_attention_interval: GgufValue.u32(QWEN35_FULL_EVERY),
      }),
      ...tokenizerMetadata(vocab, i.template),
    ],
    tensors: t.tensors,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// gpt-oss: SWA on every other layer, MoE with biases, attention sinks, the harmony format

export const GPT_OSS_WINDOW = 128;
const GPT_OSS_LAYERS = 4;
const GPT_OSS_EXPERTS = 4;
const GPT_OSS_USED = 2;

/** The harmony format's tokens (control tokens in gpt-oss's vocabulary). */
export const HARMONY_TOKENS = [
  "<|start|>",
  "<|end|>",
  "<|message|>",
  "<|channel|>",
  "<|constrain|>",
  "<|return|>",
  "<|call|>",
  "<|endoftext|>",
] as const;

/**
 * "<|mess" (the first half of `<|message|>`, see below) is sampled now and then where a grammar allows it: a tool
 * call's header (`<|channel|>commentary to=functions.NAME …<|message|>`) lets the model add a constraint word of
 * any length first, which a random model would otherwise never end.
 */
const HARMONY_MESSAGE_BIAS = 4.2;

/**
 * The harmony turn a real gpt-oss writes, as chains (common.ts): `<|start|>assistant` (the generation prompt) →
 * `<|channel|>analysis<|message|>plan<|end|>` → `<|start|>assistant<|channel|>final<|message|>` → free text. The
 * second header is spelled with other tokens (`assist` `ant` `<|chan` `nel|>` … `<|mess` `age|>`, the same text)
 * so that its chains can differ from the first's; the free text never reaches `<|end|>` again. Where a tool-call
 * grammar forbids `final`, the commentary channel and its recipient (` to=functions.NAME`) come next in line.
 */
const HARMONY_CHAINS: readonly (readonly [string, string, number?])[] = [
  ["assistant", "<|channel|>"],
  ["<|channel|>", "analysis"],
  ["analysis", "<|message|>"],
  ["<|message|>", "plan"],
  ["plan", "<|end|>"],
  ["<|end|>", "<|start|>"],
  ["<|start|>", "assist"],
  ["assist", "ant"],
  ["ant", "<|chan"],
  ["<|chan", "nel|>"],
  ["nel|>", "final"],
  ["nel|>", "commentary", 10],
  ["commentary", "\u2581"],
  ["final", "<|mess"],
  ["<|mess", "age|>"],
];

/** What the tiny gpt-oss thinks before every answer (its analysis channel). */
export const GPT_OSS_THOUGHT = "plan";

function gptOss(i: FamilyInput): GgufDocument {
  const arch = "gpt-oss";
  const word = TokenType.USER_DEFINED;
  const vocab = archVocab(
    [
      ...HARMONY_TOKENS.map((text) => ({ text })),
      ...[
        "assistant",
        "final",
        "analysis",
        "commentary",
        GPT_OSS_THOUGHT,
        "assist",
        "ant",
        "<|chan",
        "nel|>",
        "age|>",
      ].map((text) => ({ text, type: word })),
      { text: "<|mess", type: word, bias: HARMONY_MESSAGE_BIAS },
    ],
    "<|return|>",
    { chains: HARMONY_CHAINS },
  );
  const t = new TensorSet(i.seed, W);
  const { embd: EMBD, heads, kvHeads, ffn } = widths(i);
  const layers = i.layers ?? GPT_OSS_LAYERS;
  const ffnExp = ffn / 4; // 32 at the default width
  t.head(EMBD, vocab);
  for (let l = 0; l < layers; l++) {
    const b = `blk.${l}.`;
    t.fill(`${b}attn_norm.weight`, [EMBD], 1);
    t.matrix(`${b}attn_q.weight`, [EMBD, heads * HEAD]);
    t.matrix(`${b}attn_k.weight`, [EMBD, kvHeads * HEAD]);
    t.matrix(`${b}attn_v.weight`, [EMBD, kvHeads * HEAD]);
    t.randomF32(`${b}attn_q.bias`, [heads * HEAD], 0.02);
    t.randomF32(`${b}attn_k.bias`, [kvHeads * HEAD], 0.02);
    t.randomF32(`${b}attn_v.bias`, [kvHeads * HEAD], 0.02);
    t.residual(`${b}attn_output.weight`, [heads * HEAD, EMBD]);
    t.residualBias(`${b}attn_output.bias`, [EMBD]);
    t.randomF32(`${b}attn_sinks.weight`, [heads], 0.5);
    t.fill(`${b}post_attention_norm.weight`, [EMBD], 1);
    t.matrix(`${b}ffn_gate_inp.weight`, [EMBD, GPT_OSS_EXPERTS]);
    t.randomF32(`${b}ffn_gate_inp.bias`, [GPT_OSS_EXPERTS], 0.02);
    t.matrix(`${b}ffn_gate_exps.weight`, [EMBD, ffnExp, GPT_OSS_EXPERTS]);
    t.randomF32(`${b}ffn_gate_exps.bias`, [ffnExp, GPT_OSS_EXPERTS], 0.02);
    t.matrix(`${b}ffn_up_exps.weight`, [EMBD, ffnExp, GPT_OSS_EXPERTS]);
    t.randomF32(`${b}ffn_up_exps.bias`, [ffnExp, GPT_OSS_EXPERTS], 0.02);
    t.residual(`${b}ffn_down_exps.weight`, [ffnExp, EMBD, GPT_OSS_EXPERTS]);
    t.residualBias(`${b}ffn_down_exps.bias`, [EMBD, GPT_OSS_EXPERTS]);
  }
  return {
    metadata: [
      ...generalKeys(arch, i.name, W),
      ...archKeys(arch, {
        context_length: GgufValue.u32(i.contextLength),
        embedding_length: GgufValue.u32(EMBD),
        block_count: GgufValue.u32(layers),
        feed_forward_length: GgufValue.u32(ffnExp),
        expert_count: GgufValue.u32(GPT_OSS_EXPERTS),
        expert_used_count: GgufValue.u32(GPT_OSS_USED),
        expert_feed_forward_length: GgufValue.u32(ffnExp),
        "attention.head_count": GgufValue.u32(heads),
        "attention.head_count_kv": GgufValue.u32(kvHeads),
        "attention.key_length": GgufValue.u32(HEAD),
        "attention.value_length": GgufValue.u32(HEAD),
        "attention.layer_norm_rms_epsilon": GgufValue.f32(1e-5),
        "attention.sliding_window": GgufValue.u32(GPT_OSS_WINDOW),
        "rope.dimension_count": GgufValue.u32(HEAD),
        "rope.freq_base": GgufValue.f32(150_000),
      }),
      ...tokenizerMetadata(vocab, i.template),
    ],
    tensors: t.tensors,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// bert: an encoder; mean pooling (embedding model) or a classification head with rank pooling (reranker)

const BERT_LAYERS = 2;
const BERT_CONTEXT = 512;
/** llama.cpp's pooling types (include/llama.h). */
const POOLING = { mean: 1, cls: 2, last: 3, rank: 4 } as const;

function bertFamily(kind: "embed" | "rerank") {
  return (i: FamilyInput): GgufDocument => {
    const arch = "bert";
    const vocab = archVocab([{ text: "[SEP]" }], undefined);
    const t = new TensorSet(i.seed, W);
    const heads = 4;
    const ffn = 128;
    const nVocab = vocab.tokens.length;
    t.matrix("token_embd.weight", [EMBD, nVocab], 1);
    // added to the embeddings as they are: F32 like llama.cpp's converter writes them (an F16 add is unsupported)
    t.randomF32("token_types.weight", [EMBD, 2], 0.1);
    t.randomF32("position_embd.weight", [EMBD, BERT_CONTEXT], 0.1);
    t.fill("token_embd_norm.weight", [EMBD], 1);
    t.fill("token_embd_norm.bias", [EMBD], 0);
    for (let l = 0; l < BERT_LAYERS; l++) {
      const b = `blk.${l}.`;
      for (const p of ["q", "k", "v"]) {
        t.matrix(`${b}attn_${p}.weight`, [EMBD, EMBD]);
        t.randomF32(`${b}attn_${p}.bias`, [EMBD], 0.02);
      }
      t.matrix(`${b}attn_output.weight`, [EMBD, EMBD]);
      t.randomF32(`${b}attn_output.bias`, [EMBD], 0.02);
      t.fill(`${b}attn_output_norm.weight`, [EMBD], 1);
      t.fill(`${b}attn_output_norm.bias`, [EMBD], 0);
      t.matrix(`${b}ffn_up.weight`, [EMBD, ffn]);
      t.randomF32(`${b}ffn_up.bias`, [ffn], 0.02);
      t.matrix(`${b}ffn_down.weight`, [ffn, EMBD]);
      t.randomF32(`${b}ffn_down.bias`, [EMBD], 0.02);
      t.fill(`${b}layer_output_norm.weight`, [EMBD], 1);
      t.fill(`${b}layer_output_norm.bias`, [EMBD], 0);
    }
    if (kind === "rerank") {
      t.matrix("cls.weight", [EMBD, EMBD]);
      t.randomF32("cls.bias", [EMBD], 0.02);
      t.matrix("cls.output.weight", [EMBD, 1]);
      t.randomF32("cls.output.bias", [1], 0.02);
    }
    return {
      metadata: [
        ...generalKeys(arch, i.name, W),
        ...archKeys(arch, {
          context_length: GgufValue.u32(Math.min(i.contextLength, BERT_CONTEXT)),
          embedding_length: GgufValue.u32(EMBD),
          block_count: GgufValue.u32(BERT_LAYERS),
          feed_forward_length: GgufValue.u32(ffn),
          "attention.head_count": GgufValue.u32(heads),
          "attention.layer_norm_epsilon": GgufValue.f32(1e-12),
          "attention.causal": GgufValue.bool(false),
          pooling_type: GgufValue.u32(kind === "rerank" ? POOLING.rank : POOLING.mean),
        }),
        ...tokenizerMetadata(vocab, undefined, [
          ["tokenizer.ggml.token_type_count", GgufValue.u32(2)],
          ["tokenizer.ggml.seperator_token_id", GgufValue.u32(vocab.id("[SEP]"))],
          ["tokenizer.ggml.add_sep_token", GgufValue.bool(kind === "rerank")],
        ]),
      ],
      tensors: t.tensors,
    };
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
  gemma4: GEMMA4,
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
  qwen3: {
    arch: "qwen3",
    template: "Qwen-Qwen3-0.6B",
    layout: { layers: QWEN3_LAYERS },
    document: qwen3Family("qwen3"),
  },
  qwen3moe: {
    arch: "qwen3moe",
    template: "Qwen-Qwen3-0.6B",
    layout: { layers: QWEN3_LAYERS, experts: QWEN3MOE_EXPERTS, expertsUsed: QWEN3MOE_USED },
    document: qwen3Family("qwen3moe"),
  },
  qwen35: {
    arch: "qwen35",
    template: "Qwen3.5-4B",
    layout: {
      layers: QWEN35_LAYERS,
      attention: Math.floor(QWEN35_LAYERS / QWEN35_FULL_EVERY),
      recurrent: QWEN35_LAYERS - Math.floor(QWEN35_LAYERS / QWEN35_FULL_EVERY),
    },
    document: qwen35,
  },
  "gpt-oss": {
    arch: "gpt-oss",
    template: "openai-gpt-oss-120b",
    layout: {
      layers: GPT_OSS_LAYERS,
      swa: GPT_OSS_LAYERS / 2,
      window: GPT_OSS_WINDOW,
      experts: GPT_OSS_EXPERTS,
      expertsUsed: GPT_OSS_USED,
    },
    document: gptOss,
  },
  embed: {
    arch: "bert",
    layout: { layers: BERT_LAYERS },
    document: bertFamily("embed"),
  },
  rerank: {
    arch: "bert",
    layout: { layers: BERT_LAYERS },
    document: bertFamily("rerank"),
  },
  lfm2: LFM2,
} as const satisfies Record<string, FamilySpec>;

export type ArchFamily = keyof typeof FAMILIES;
