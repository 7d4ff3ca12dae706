/**
 * Tiny random-weight GGUF models that the real llama-server loads in milliseconds: llama architecture, an SPM
 * vocabulary of ~420 tokens (<unk>, <s>, </s>, the 256 byte tokens, ChatML markers, printable ASCII and a few
 * multi-character pieces), a ChatML chat template, weights from a seeded PRNG (same options → same bytes).
 *
 * Output is gibberish but always valid UTF-8 (llama-server answers 500 when a chat completion decodes to invalid
 * UTF-8). Every byte token except <0x0A>, and every special token, is "silenced": its `output` row is zero but
 * for a strongly negative weight on a bias dimension (dimension 0 of the residual stream, held at a constant by
 * token_embd and untouched by the blocks), while all other rows get +weight there and a wide spread (std 0.3).
 * Silenced tokens then sit ~40 logits below the rest, so even unfiltered sampling (top_k 0, min_p 0, high
 * temperature) does not reach them. The model never emits EOS on its own either: requests end by max_tokens,
 * a stop string or a grammar.
 *
 *   const path = await writeTinyModel(dir, { name: "tiny-a", kind: "chat" });
 *   const think = await writeTinyModel(dir, { name: "tiny-think", kind: "think" }); // use --reasoning-format deepseek
 */
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GgufValue, writeGguf, type GgufDocument, type GgufTensor } from "./gguf-writer.js";
import { TokenType } from "../../src/gguf/types.js";

export type TinyModelKind = "chat" | "think";

export interface TinyModelOptions {
  /** File name without .gguf (also general.name). */
  name: string;
  /** "chat": ChatML template. "think": ChatML that opens a <think> block (reasoning_content with deepseek format). */
  kind: TinyModelKind;
  /** PRNG seed for the weights. Default 1. */
  seed?: number;
  /** Transformer blocks. Default 1. */
  layers?: number;
  /** Embedding width, a multiple of 16 (16-wide attention heads). Default 64. */
  embd?: number;
  /** llama.context_length. Default 2048. */
  contextLength?: number;
  /** Jinja chat template text; overrides the one `kind` selects. */
  chatTemplate?: string;
  /** "think" models only: may sample `</think>` and so end their thinking (default true). false: they think forever. */
  endsThinking?: boolean;
  /** Storage type of the 2-D weight matrices (norms are always F32). Default "F16". */
  weightType?: "F16" | "F32";
}

const TEMPLATES_DIR = fileURLToPath(new URL("../fixtures/templates/", import.meta.url));
/** The template files baked into the models (pass one to --chat-template-file to override a model's own). */
export const TINY_TEMPLATE_FILES: Readonly<Record<TinyModelKind, string>> = {
  chat: join(TEMPLATES_DIR, "chatml.jinja"),
  think: join(TEMPLATES_DIR, "think-forced-open.jinja"),
};

export function tinyChatTemplate(kind: TinyModelKind): string {
  return readFileSync(TINY_TEMPLATE_FILES[kind], "utf8");
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

export interface TinyVocab {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
  /** Token ids the model must never produce (their `output` rows are zero). */
  readonly silenced: ReadonlySet<number>;
  /** The single token `</think>`: silenced in chat models, sampled now and then by "think" models. */
  readonly thinkEnd: number;
}

const SPACE = "\u2581"; // SentencePiece's "▁"
const PIECES = [
  "▁the",
  "▁and",
  "▁to",
  "▁of",
  "▁a",
  "▁in",
  "▁is",
  "▁it",
  "▁you",
  "▁that",
  "▁I",
  "▁Hello",
  "▁world",
  "▁hi",
  "ing",
  "er",
  "on",
  "an",
  "re",
  "th",
  "he",
  "in",
  "at",
  "en",
  "or",
  "es",
  "is",
  "ed",
  "ly",
  "ll",
  "Hello",
  "world",
];

let vocabCache: TinyVocab | undefined;

/** The vocabulary every tiny model shares. */
export function tinyVocab(): TinyVocab {
  if (vocabCache) return vocabCache;
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const index = new Map<string, number>();
  const silenced = new Set<number>();
  const add = (text: string, type: number, score: number, silent = false): number => {
    const existing = index.get(text);
    if (existing !== undefined) return existing;
    const id = tokens.length;
    tokens.push(text);
    scores.push(score);
    types.push(type);
    index.set(text, id);
    if (silent) silenced.add(id);
    return id;
  };
  const unk = add("<unk>", TokenType.UNKNOWN, 0, true);
  const bos = add("<s>", TokenType.CONTROL, 0, true);
  const eos = add("</s>", TokenType.CONTROL, 0, true);
  for (let b = 0; b < 256; b++) {
    const hex = b.toString(16).toUpperCase().padStart(2, "0");
    add(`<0x${hex}>`, TokenType.BYTE, 0, b !== 0x0a);
  }
  add("<|im_start|>", TokenType.CONTROL, 0, true);
  add("<|im_end|>", TokenType.CONTROL, 0, true);
  add(SPACE, TokenType.NORMAL, -1);
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c), TokenType.NORMAL, -1);
  // SPM merges pairs of adjacent symbols only when the joined text is a token, so every prefix of a piece must
  // exist too; longer pieces score higher and win.
  for (const piece of PIECES) {
    const chars = [...piece];
    for (let n = 2; n <= chars.length; n++) add(chars.slice(0, n).join(""), TokenType.NORMAL, n);
  }
  // one token for the closing tag, so a random "think" model can end its thinking (see THINK_END_BIAS); its
  // prefixes are tokens too, like every piece's
  const closing = [..."</think>"];
  for (let n = 2; n < closing.length; n++) add(closing.slice(0, n).join(""), TokenType.NORMAL, n);
  const thinkEnd = add("</think>", TokenType.NORMAL, closing.length);
  vocabCache = { tokens, scores, types, bos, eos, unk, silenced, thinkEnd };
  return vocabCache;
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic weights

/** 32-bit FNV-1a of a string, to give each tensor its own stream of the seeded PRNG. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32 PRNG → uniform [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic normal(0, std) weights for one tensor (its name picks the stream). */
export function normals(n: number, std: number, seed: number, name: string): Float32Array {
  const rand = prng(hash32(`${seed}:${name}`));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - rand();
    const u2 = rand();
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The model

export interface TinyModelShape {
  readonly embd: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ffn: number;
  readonly vocab: number;
  readonly contextLength: number;
}

export function tinyModelShape(opts: Pick<TinyModelOptions, "embd" | "layers" | "contextLength">): TinyModelShape {
  const embd = opts.embd ?? 64;
  const layers = opts.layers ?? 1;
  if (!Number.isInteger(embd) || embd < 16 || embd % 16 !== 0)
    throw new RangeError(`embd ${embd}: use a multiple of 16`);
  if (!Number.isInteger(layers) || layers < 1) throw new RangeError(`layers ${layers}: use 1 or more`);
  const headDim = 16;
  const heads = embd / headDim;
  const kvHeads = heads % 2 === 0 ? heads / 2 : heads;
  return {
    embd,
    layers,
    heads,
    kvHeads,
    headDim,
    ffn: embd * 2,
    vocab: tinyVocab().tokens.length,
    contextLength: opts.contextLength ?? 2048,
  };
}

const BIAS_DIM = 0;
const BIAS_INPUT = 8;
const BIAS_LOGIT = 4;
/**
 * Bias weight of `</think>` in "think" models: a little above the other tokens', so thinking ends after about a
 * dozen tokens on average and an answer follows (llama-server moves what precedes it into reasoning_content).
 * Chat models never produce it. Measured with the real llama-server (default sampling, max_tokens 64, 12 seeds):
 * 10 of 12 answers had content after the thinking; `</think>` may also turn up again inside an answer.
 */
const THINK_END_BIAS = 4.7;

/** The GGUF document of a tiny model (what writeTinyModel writes). */
export function tinyModelDocument(opts: TinyModelOptions): GgufDocument {
  const seed = opts.seed ?? 1;
  const shape = tinyModelShape(opts);
  const { embd, ffn, vocab: nVocab, heads, kvHeads, headDim } = shape;
  const vocab = tinyVocab();
  const wt = opts.weightType ?? "F16";
  const template = opts.chatTemplate ?? tinyChatTemplate(opts.kind);

  /** A [cols, rows] matrix (ggml order: rows of `cols` values); `edit` adjusts the values before storing. */
  const matrix = (
    name: string,
    cols: number,
    rows: number,
    std: number,
    edit?: (w: Float32Array) => void,
  ): GgufTensor => ({
    name,
    shape: [cols, rows],
    type: wt,
    data: () => {
      const w = normals(cols * rows, std, seed, name);
      edit?.(w);
      return w;
    },
  });
  // The bias dimension: token_embd holds it at BIAS_INPUT for every token, the blocks never write to it
  // (row BIAS_DIM of attn_output and ffn_down is zero), so after the final norm it is a positive constant-ish
  // and column BIAS_DIM of `output` acts as a per-token logit bias.
  const zeroRow = (cols: number) => (w: Float32Array) => w.fill(0, BIAS_DIM * cols, (BIAS_DIM + 1) * cols);
  const norm = (name: string): GgufTensor => ({
    name,
    shape: [embd],
    type: "F32",
    data: () => new Float32Array(embd).fill(1),
  });

  const tensors: GgufTensor[] = [
    matrix("token_embd.weight", embd, nVocab, 1, (w) => {
      for (let t = 0; t < nVocab; t++) w[t * embd + BIAS_DIM] = BIAS_INPUT;
    }),
    norm("output_norm.weight"),
    matrix("output.weight", embd, nVocab, 0.3, (w) => {
      for (let t = 0; t < nVocab; t++) {
        if (vocab.silenced.has(t) || t === vocab.thinkEnd) w.fill(0, t * embd, (t + 1) * embd);
        w[t * embd + BIAS_DIM] = vocab.silenced.has(t) ? -BIAS_LOGIT : BIAS_LOGIT;
        if (t === vocab.thinkEnd)
          w[t * embd + BIAS_DIM] = opts.kind === "think" && opts.endsThinking !== false ? THINK_END_BIAS : -BIAS_LOGIT;
      }
    }),
  ];
  const kvDim = kvHeads * headDim;
  const s = 1 / Math.sqrt(embd);
  for (let l = 0; l < shape.layers; l++) {
    const b = `blk.${l}.`;
    tensors.push(
      norm(`${b}attn_norm.weight`),
      matrix(`${b}attn_q.weight`, embd, embd, s),
      matrix(`${b}attn_k.weight`, embd, kvDim, s),
      matrix(`${b}attn_v.weight`, embd, kvDim, s),
      matrix(`${b}attn_output.weight`, embd, embd, s, zeroRow(embd)),
      norm(`${b}ffn_norm.weight`),
      matrix(`${b}ffn_gate.weight`, embd, ffn, s),
      matrix(`${b}ffn_up.weight`, embd, ffn, s),
      matrix(`${b}ffn_down.weight`, ffn, embd, 1 / Math.sqrt(ffn), zeroRow(ffn)),
    );
  }

  return {
    metadata: [
      ["general.architecture", GgufValue.string("llama")],
      ["general.name", GgufValue.string(opts.name)],
      ["general.file_type", GgufValue.u32(wt === "F16" ? 1 : 0)],
      ["llama.context_length", GgufValue.u32(shape.contextLength)],
      ["llama.embedding_length", GgufValue.u32(embd)],
      ["llama.block_count", GgufValue.u32(shape.layers)],
      ["llama.feed_forward_length", GgufValue.u32(ffn)],
      ["llama.attention.head_count", GgufValue.u32(heads)],
      ["llama.attention.head_count_kv", GgufValue.u32(kvHeads)],
      ["llama.attention.layer_norm_rms_epsilon", GgufValue.f32(1e-5)],
      ["llama.rope.dimension_count", GgufValue.u32(headDim)],
      ["llama.rope.freq_base", GgufValue.f32(10000)],
      ["llama.vocab_size", GgufValue.u32(nVocab)],
      ["tokenizer.ggml.model", GgufValue.string("llama")],
      ["tokenizer.ggml.tokens", GgufValue.array("string", vocab.tokens)],
      ["tokenizer.ggml.scores", GgufValue.array("f32", vocab.scores)],
      ["tokenizer.ggml.token_type", GgufValue.array("i32", vocab.types)],
      ["tokenizer.ggml.bos_token_id", GgufValue.u32(vocab.bos)],
      ["tokenizer.ggml.eos_token_id", GgufValue.u32(vocab.eos)],
      ["tokenizer.ggml.unknown_token_id", GgufValue.u32(vocab.unk)],
      ["tokenizer.ggml.add_bos_token", GgufValue.bool(true)],
      ["tokenizer.ggml.add_eos_token", GgufValue.bool(false)],
      ["tokenizer.chat_template", GgufValue.string(template)],
    ],
    tensors,
  };
}

function fileName(name: string): string {
  return name.endsWith(".gguf") ? name : `${name}.gguf`;
}

/** Writes `<dir>/<name>.gguf` and returns its path. The same options always give the same bytes. */
export async function writeTinyModel(dir: string, opts: TinyModelOptions): Promise<string> {
  const path = join(dir, fileName(opts.name));
  await writeGguf(path, tinyModelDocument({ ...opts, name: opts.name.replace(/\.gguf$/, "") }));
  return path;
}

/** Copies the first `bytes` bytes of a GGUF file (a model cut off mid-download). Returns `destPath`. */
export async function writeTruncatedGguf(srcPath: string, destPath: string, bytes: number): Promise<string> {
  const src = await readFile(srcPath);
  if (!Number.isInteger(bytes) || bytes < 0 || bytes >= src.length) {
    throw new RangeError(`truncate to ${bytes} bytes: the source has ${src.length}; pick 0..${src.length - 1}`);
  }
  await writeFile(destPath, src.subarray(0, bytes));
  return destPath;
}

/** Writes a file named like a model that is not GGUF (llama-server: "invalid magic characters"). */
export async function writeNotGguf(destPath: string): Promise<string> {
  const text = "NOTA GGUF FILE: this is a placeholder written by the gglib test rig.\n";
  await writeFile(destPath, text.repeat(64));
  return destPath;
}
