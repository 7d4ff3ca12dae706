/**
 * What every tiny architecture model shares: the vocabulary (the tiny SPM vocabulary of tiny-models.ts plus a
 * family's own special tokens), seeded weights, and the output head with the bias-dimension trick that keeps
 * generated text valid UTF-8 (see tiny-models.ts: dimension 0 of the residual stream is held at a constant by
 * token_embd and never written by a block, so column 0 of `output` acts as a per-token logit bias that keeps byte
 * and special tokens ~40 logits below the printable pieces).
 *
 * Dimensions 1..CHAIN_DIMS work the same way for "chains": token X's embedding sets its own dimension and the
 * `output` row of token Y weighs that dimension heavily, so X is always followed by Y (a bigram the random weights
 * cannot override; a second, lighter target is next in line where a grammar forbids the first). The harmony model
 * uses them to write a whole turn (analysis, then the final channel), the tool-calling models to follow
 * `<tool_call>` with the newline their call grammar expects and to end the turn after `</tool_call>`.
 *
 * A block keeps these dimensions untouched when every matrix that writes into the residual stream (attention
 * output, FFN / expert down projections, SSM out projections) has zero output rows there and a zero bias:
 * `residual` matrices below do that.
 */
import { GgufValue, type GgufTensor } from "../gguf-writer.js";
import { normals, tinyVocab } from "../tiny-models.js";
import { TokenType } from "../../../src/gguf/types.js";

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

export interface ArchVocab {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
  /** Ids the model never produces on its own (their `output` rows carry the negative bias only). */
  readonly silenced: ReadonlySet<number>;
  /** Ids sampled now and then: their `output` rows carry only this weight on the bias dimension. */
  readonly biased: ReadonlyMap<number, number>;
  /** [from, to, weight]: `to` follows `from` (the heaviest allowed target wins; see CHAIN_WEIGHT). */
  readonly chains: readonly (readonly [number, number, number])[];
  /** The flag dimension of each chain's `from` token. */
  readonly chainDims: ReadonlyMap<number, number>;
  readonly id: (text: string) => number;
}

export interface ExtraToken {
  readonly text: string;
  /** CONTROL (default): special, rendered only when the server asks for special tokens. USER_DEFINED: plain text. */
  readonly type?: TokenType;
  /**
   * Instead of silencing it, give the token this weight on the bias dimension (the other printable tokens have
   * BIAS_LOGIT = 4 plus a random spread): a little above 4 and a random model samples it now and then.
   */
  readonly bias?: number;
}

/**
 * The tiny vocabulary with `extra` tokens appended (their ids follow the base ones, so tokens the base already
 * has keep their ids). Every special and extra token is silenced, and so is `</think>`: a random model never
 * opens or closes a block on its own, tests force those with a grammar.
 */
export function archVocab(
  extra: readonly ExtraToken[],
  eosText?: string,
  o: {
    bos?: string;
    chains?: readonly (readonly [string, string, number?])[];
    /** Tokens of the base vocabulary to silence as well. */
    silence?: readonly string[];
  } = {},
): ArchVocab {
  const base = tinyVocab();
  const tokens = [...base.tokens];
  const scores = [...base.scores];
  const types = [...base.types];
  const silenced = new Set(base.silenced);
  silenced.add(base.thinkEnd);
  const biased = new Map<number, number>();
  const index = new Map(tokens.map((t, i) => [t, i]));
  for (const x of extra) {
    const have = index.get(x.text);
    const at = have ?? tokens.length;
    if (x.bias !== undefined) {
      silenced.delete(at);
      biased.set(at, x.bias);
    } else silenced.add(at);
    if (have !== undefined) {
      types[have] = x.type ?? TokenType.CONTROL;
      continue;
    }
    index.set(x.text, tokens.length);
    tokens.push(x.text);
    scores.push(0);
    types.push(x.type ?? TokenType.CONTROL);
  }
  const id = (text: string): number => {
    const i = index.get(text);
    if (i === undefined) throw new Error(`token ${text} is not in the vocabulary`);
    return i;
  };
  for (const text of o.silence ?? []) silenced.add(id(text));
  const chains = (o.chains ?? []).map(([from, to, w]) => [id(from), id(to), w ?? CHAIN_WEIGHT] as const);
  const chainDims = new Map<number, number>();
  for (const [from] of chains) if (!chainDims.has(from)) chainDims.set(from, 1 + chainDims.size);
  if (chainDims.size > CHAIN_DIMS) throw new Error(`at most ${CHAIN_DIMS} tokens can start chains`);
  return {
    tokens,
    scores,
    types,
    bos: o.bos ? id(o.bos) : base.bos,
    eos: eosText ? id(eosText) : base.eos,
    unk: base.unk,
    silenced,
    biased,
    chains,
    chainDims,
    id,
  };
}

/** The SPM tokenizer keys for a vocabulary (every family uses the same "llama" tokenizer model, no space prefix). */
export function tokenizerMetadata(
  vocab: ArchVocab,
  template: string | undefined,
  extra: ReadonlyArray<readonly [string, GgufValue]> = [],
): [string, GgufValue][] {
  const out: [string, GgufValue][] = [
    ["tokenizer.ggml.model", GgufValue.string("llama")],
    ["tokenizer.ggml.tokens", GgufValue.array("string", vocab.tokens)],
    ["tokenizer.ggml.scores", GgufValue.array("f32", vocab.scores)],
    ["tokenizer.ggml.token_type", GgufValue.array("i32", vocab.types)],
    ["tokenizer.ggml.bos_token_id", GgufValue.u32(vocab.bos)],
    ["tokenizer.ggml.eos_token_id", GgufValue.u32(vocab.eos)],
    ["tokenizer.ggml.unknown_token_id", GgufValue.u32(vocab.unk)],
    ["tokenizer.ggml.add_bos_token", GgufValue.bool(true)],
    ["tokenizer.ggml.add_eos_token", GgufValue.bool(false)],
    // no "▁" before the text that follows a special token: `<|im_start|>assistant` must tokenize to the same text
    // (llama-server feeds the generation prompt's tokens to a tool-call grammar, which would reject " assistant")
    ["tokenizer.ggml.add_space_prefix", GgufValue.bool(false)],
    ...extra.map(([k, v]): [string, GgufValue] => [k, v]),
  ];
  if (template !== undefined) out.push(["tokenizer.chat_template", GgufValue.string(template)]);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic weights: the llama generator's (tiny-models.ts), re-exported for the families

export { normals };

const BIAS_DIM = 0;
const BIAS_INPUT = 24;
const BIAS_LOGIT = 4;
/** Dimensions 1..CHAIN_DIMS carry chain flags; 0..CHAIN_DIMS are never written by a block. */
const CHAIN_DIMS = 14;
const RESERVED_DIMS = CHAIN_DIMS + 1;
/**
 * Weight of a chain's flag in its target's `output` row: beats the silencing bias and every other token. A second
 * target of the same token with a smaller weight (above BIAS_LOGIT × 2) is next in line when a grammar forbids the
 * first.
 */
export const CHAIN_WEIGHT = 16;

/**
 * Collects the tensors of one model. Shapes are in ggml order (`[in, out]` for a matrix, `[in, out, n_expert]`
 * for stacked experts).
 */
export class TensorSet {
  readonly tensors: GgufTensor[] = [];
  constructor(
    readonly seed: number,
    readonly weightType: "F16" | "F32" = "F16",
  ) {}

  /** An F32 tensor with every value `value` (norm weights: 1). */
  fill(name: string, shape: readonly number[], value: number): void {
    const n = shape.reduce((a, b) => a * b, 1);
    this.tensors.push({ name, shape, type: "F32", data: () => new Float32Array(n).fill(value) });
  }

  /** An F32 tensor from a function of the element index. */
  f32(name: string, shape: readonly number[], at: (i: number) => number): void {
    const n = shape.reduce((a, b) => a * b, 1);
    this.tensors.push({
      name,
      shape,
      type: "F32",
      data: () => Float32Array.from({ length: n }, (_, i) => at(i)),
    });
  }

  /** A random F32 tensor (biases, small parameters). */
  randomF32(name: string, shape: readonly number[], std: number): void {
    const n = shape.reduce((a, b) => a * b, 1);
    this.tensors.push({ name, shape, type: "F32", data: () => normals(n, std, this.seed, name) });
  }

  /** A gated feed-forward block's weights (`ffn_gate`, `ffn_up`, `ffn_down`) under the block prefix `b`. */
  gatedFfn(b: string, embd: number, ffn: number): void {
    this.matrix(`${b}ffn_gate.weight`, [embd, ffn]);
    this.matrix(`${b}ffn_up.weight`, [embd, ffn]);
    this.residual(`${b}ffn_down.weight`, [ffn, embd]);
  }

  /** A random weight matrix (or stack of them), std 1/sqrt(in) unless given. */
  matrix(name: string, shape: readonly number[], std = 1 / Math.sqrt(shape[0]!)): void {
    const n = shape.reduce((a, b) => a * b, 1);
    this.tensors.push({ name, shape, type: this.weightType, data: () => normals(n, std, this.seed, name) });
  }

  /**
   * A matrix (or stack of experts) whose output is added to the residual stream: shape `[in, n_embd, ...]`, rows
   * 0..CHAIN_DIMS of every slice are zero.
   */
  residual(name: string, shape: readonly number[], std = 1 / Math.sqrt(shape[0]!)): void {
    const n = shape.reduce((a, b) => a * b, 1);
    const [cols, rows] = [shape[0]!, shape[1]!];
    this.tensors.push({
      name,
      shape,
      type: this.weightType,
      data: () => {
        const w = normals(n, std, this.seed, name);
        for (let s = 0; s < n; s += cols * rows) w.fill(0, s, s + RESERVED_DIMS * cols);
        return w;
      },
    });
  }

  /** A bias added to the residual stream (`[n_embd, ...]`): random but zero at 0..CHAIN_DIMS. */
  residualBias(name: string, shape: readonly number[], std = 0.02): void {
    const n = shape.reduce((a, b) => a * b, 1);
    const width = shape[0]!;
    this.tensors.push({
      name,
      shape,
      type: "F32",
      data: () => {
        const w = normals(n, std, this.seed, name);
        for (let s = 0; s < n; s += width) w.fill(0, s, s + RESERVED_DIMS);
        return w;
      },
    });
  }

  /**
   * token_embd (dimension BIAS_DIM held at BIAS_INPUT), output_norm and, unless `tiedOutput`, `output` with the
   * per-token bias column (a larger input than tiny-models.ts's 8, since several blocks add to the other
   * dimensions before the final norm).
   */
  head(embd: number, vocab: ArchVocab, o: { outputNormBias?: boolean; tiedOutput?: boolean } = {}): void {
    const nVocab = vocab.tokens.length;
    const seed = this.seed;
    this.tensors.push({
      name: "token_embd.weight",
      shape: [embd, nVocab],
      type: this.weightType,
      data: () => {
        const w = normals(embd * nVocab, 1, seed, "token_embd.weight");
        for (let t = 0; t < nVocab; t++) {
          w.fill(0, t * embd, t * embd + RESERVED_DIMS);
          w[t * embd + BIAS_DIM] = BIAS_INPUT;
        }
        for (const [from, dim] of vocab.chainDims) w[from * embd + dim] = BIAS_INPUT;
        return w;
      },
    });
    this.fill("output_norm.weight", [embd], 1);
    if (o.outputNormBias) this.fill("output_norm.bias", [embd], 0);
    if (o.tiedOutput) return;
    this.tensors.push({
      name: "output.weight",
      shape: [embd, nVocab],
      type: this.weightType,
      data: () => {
        const w = normals(embd * nVocab, 0.3, seed, "output.weight");
        for (let t = 0; t < nVocab; t++) {
          const bias = vocab.biased.get(t);
          if (vocab.silenced.has(t) || bias !== undefined) w.fill(0, t * embd, (t + 1) * embd);
          w.fill(0, t * embd + 1, t * embd + RESERVED_DIMS);
          w[t * embd + BIAS_DIM] = bias ?? (vocab.silenced.has(t) ? -BIAS_LOGIT : BIAS_LOGIT);
        }
        for (const [from, to, weight] of vocab.chains) w[to * embd + vocab.chainDims.get(from)!] = weight;
        return w;
      },
    });
  }
}

/** `<arch>.<key>` metadata entries. */
export function archKeys(arch: string, entries: Record<string, GgufValue>): [string, GgufValue][] {
  return Object.entries(entries).map(([k, v]) => [`${arch}.${k}`, v]);
}

export function generalKeys(arch: string, name: string, weightType: "F16" | "F32"): [string, GgufValue][] {
  return [
    ["general.architecture", GgufValue.string(arch)],
    ["general.name", GgufValue.string(name)],
    ["general.file_type", GgufValue.u32(weightType === "F16" ? 1 : 0)],
  ];
}
