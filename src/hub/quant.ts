/**
 * Quantization labels in GGUF file names (`Qwen3-4B-Q4_K_M.gguf`, `gemma-3-4b-it-UD-Q4_K_XL.gguf`,
 * `model-q8_0-00001-of-00002.gguf`) and the order a default is chosen in. Pure.
 */
import { quantOf } from "../gguf/names.js";

/** The label without the unsloth "UD-" (dynamic) prefix, for ranking. */
function baseQuant(q: string): string {
  return q.replace(/^UD-/, "");
}

/**
 * Default order: llama.cpp's and Ollama's usual default (Q4_K_M) first, then the other ~4-bit quants, then smaller
 * ones (a machine too small for Q4 still gets a model), then the larger ones (repos that only ship Q8_0/F16, like
 * small models). The first one present that fits the machine is chosen.
 */
export const DEFAULT_QUANT_ORDER: readonly string[] = [
  "Q4_K_M",
  "Q4_K_XL",
  "Q4_K_S",
  "IQ4_XS",
  "IQ4_NL",
  "Q4_0",
  "Q4_1",
  "MXFP4",
  "MXFP4_MOE",
  "Q3_K_XL",
  "Q3_K_L",
  "Q3_K_M",
  "IQ3_M",
  "Q3_K_S",
  "IQ3_S",
  "IQ3_XS",
  "IQ3_XXS",
  "Q2_K_XL",
  "Q2_K_L",
  "Q2_K",
  "Q2_K_S",
  "IQ2_M",
  "IQ2_S",
  "IQ2_XS",
  "IQ2_XXS",
  "TQ2_0",
  "IQ1_M",
  "IQ1_S",
  "TQ1_0",
  "Q5_K_M",
  "Q5_K_XL",
  "Q5_K_S",
  "Q5_0",
  "Q5_1",
  "Q6_K",
  "Q6_K_XL",
  "Q8_0",
  "Q8_K_XL",
  "BF16",
  "F16",
  "F32",
];

/** Rank in DEFAULT_QUANT_ORDER (lower is preferred); unknown labels and unlabeled files come last. */
export function quantRank(q: string | undefined): number {
  if (q === undefined) return DEFAULT_QUANT_ORDER.length + 1;
  const i = DEFAULT_QUANT_ORDER.indexOf(baseQuant(q));
  // the plain quant before its UD- twin of the same rank
  return (i < 0 ? DEFAULT_QUANT_ORDER.length : i) + (q.startsWith("UD-") ? 0.5 : 0);
}

/** Projector preference: F16 (what llama.cpp's converters write by default), BF16, Q8_0, F32, then anything. */
export function mmprojRank(fileName: string): number {
  const order = ["F16", "BF16", "Q8_0", "F32"];
  const q = quantOf(fileName);
  const i = q ? order.indexOf(q) : -1;
  return i < 0 ? order.length : i;
}

/** Two labels name the same quantization (case-insensitive; `Q4_K_XL` also matches `UD-Q4_K_XL`). */
export function sameQuant(asked: string, label: string): boolean {
  const a = asked.trim().toUpperCase();
  const l = label.toUpperCase();
  return a === l || (!a.startsWith("UD-") && `UD-${a}` === l);
}
