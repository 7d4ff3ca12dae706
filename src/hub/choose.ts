/**
 * The default quantization when `gglib pull` is given none: the first variant in DEFAULT_QUANT_ORDER (Q4_K_M first)
 * that fits this machine at CHOICE_CTX tokens, by the memory estimator (src/models/estimator.ts) run on the model's
 * architecture (read from one GGUF header on the hub) and each variant's file size. Pure: the caller passes the
 * budget (from the system probe) and the architecture.
 */
import { formatBytes } from "../core/units.js";
import { adviseFit, type EstimatorModel, type FitBudget } from "../models/estimator.js";
import type { Variant } from "./files.js";
import { variantTag } from "./files.js";

/** The context the fit is judged at: a usable chat context, well under most trained contexts. */
export const CHOICE_CTX = 4096;

export interface VariantFit {
  variant: Variant;
  fits: boolean;
  /** full | partial | none (GPU offload of the estimate). */
  offload?: "full" | "partial" | "none";
  /** Estimated total bytes at CHOICE_CTX. */
  needBytes?: number;
}

export interface DefaultChoice {
  variant: Variant;
  /** One line for people: why this one. */
  reason: string;
  /** Whether it is expected to fit (undefined: not checked, no budget or architecture). */
  fits?: boolean;
  considered: VariantFit[];
}

/** The architecture fields only: sizes come from each variant's files, not from the header that was read. */
export function architectureOf(meta: EstimatorModel): EstimatorModel {
  const keep: (keyof EstimatorModel)[] = [
    "contextLength",
    "blockCount",
    "embeddingLength",
    "feedForwardLength",
    "headCount",
    "headCountKv",
    "headCountKvPerLayer",
    "keyLength",
    "valueLength",
    "vocabSize",
    "expertCount",
    "expertUsedCount",
    "expertFeedForwardLength",
  ];
  const out: Record<string, unknown> = {};
  for (const k of keep) if (meta[k] !== undefined) out[k] = meta[k];
  return out;
}

export function fitOf(v: Variant, arch: EstimatorModel, budget: FitBudget, mmprojBytes?: number): VariantFit {
  const trained = arch.contextLength ?? CHOICE_CTX;
  const advice = adviseFit(
    {
      metadata: arch,
      fileBytes: v.totalBytes,
      ctx: Math.min(trained, CHOICE_CTX),
      ...(mmprojBytes !== undefined ? { mmprojBytes } : {}),
    },
    budget,
  );
  return { variant: v, fits: advice.fits, offload: advice.offload, needBytes: advice.estimate.totalBytes };
}

/**
 * Variants come in preference order (repoModels sorts them). Without a budget or an architecture the first is
 * taken unchecked; with both, the first that fits; when none fits, the smallest, with a reason that says so.
 */
export function chooseDefault(
  variants: readonly Variant[],
  arch: EstimatorModel | undefined,
  budget: FitBudget | undefined,
  mmprojBytes?: number,
): DefaultChoice {
  if (variants.length === 0) throw new Error("chooseDefault: no variants");
  const first = variants[0]!;
  if (!arch || !budget) {
    return {
      variant: first,
      reason: `${variantTag(first)}: the preferred quantization here (fit not checked: ${!budget ? "no memory reading" : "model header unreadable"})`,
      considered: [],
    };
  }
  const considered = variants.map((v) => fitOf(v, arch, budget, mmprojBytes));
  const ok = considered.find((c) => c.fits);
  if (ok) {
    const tag = variantTag(ok.variant);
    const where = ok.offload === "full" ? "on the GPU" : ok.offload === "partial" ? "GPU + RAM" : "in RAM";
    const better = considered.slice(0, considered.indexOf(ok)).map((c) => variantTag(c.variant));
    const skipped = better.length > 0 ? `; ${better.join(", ")} would not fit` : "";
    return {
      variant: ok.variant,
      reason: `${tag}: fits this machine (${formatBytes(ok.needBytes ?? 0)} ${where} at ${CHOICE_CTX} tokens)${skipped}`,
      fits: true,
      considered,
    };
  }
  const smallest = [...considered].sort((a, b) => a.variant.totalBytes - b.variant.totalBytes)[0]!;
  return {
    variant: smallest.variant,
    reason: `${variantTag(smallest.variant)}: the smallest; no quantization fits this machine (it needs ${formatBytes(smallest.needBytes ?? 0)} at ${CHOICE_CTX} tokens)`,
    fits: false,
    considered,
  };
}
