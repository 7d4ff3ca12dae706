/**
 * Fit advice: how many layers fit on the GPU and the largest context that fits, from the estimate (estimate.ts)
 * and the budget (budget.ts).
 */
import {
  KV_CACHE_BLOCK,
  LLAMA_DEFAULTS,
  estimateMemory,
  headDim,
  type EstimateMemoryInput,
  type MemoryEstimate,
} from "./estimate.js";
import type { FitBudget } from "./budget.js";
import { formatBytes } from "../../core/units.js";

export type FitInput = Omit<EstimateMemoryInput, "gpuLayers"> & {
  /** Fixed `-ngl`; undefined = choose the most that fit. */
  gpuLayers?: number;
};

export interface FitAdvice {
  /** The estimate at the requested context with the chosen layer split. */
  estimate: MemoryEstimate;
  fits: boolean;
  /** The `-ngl` of the chosen split (-1 when everything is on the GPU). */
  gpuLayers: number;
  offload: "full" | "partial" | "none";
  /** Largest context (multiple of 256, at most the trained context) that fits with the best split; undefined if none. */
  maxCtx?: number;
  /** Largest context that fits with every layer on the GPU; undefined without a GPU or if none. */
  maxCtxFullGpu?: number;
  /** One line per finding, for people. */
  messages: string[];
}

function fitsBudget(e: MemoryEstimate, b: FitBudget): boolean {
  if (b.unified) return e.gpuBytes <= (b.gpuBytes ?? 0) && e.totalBytes <= b.hostBytes;
  return e.gpuBytes <= (b.gpuBytes ?? 0) && e.hostBytes <= b.hostBytes;
}

/** The most GPU layers that fit at this context (0..layers+1), or the fixed value. */
function chooseLayers(input: FitInput, budget: FitBudget, ctx: number): MemoryEstimate {
  const gpu = budget.gpuBytes !== undefined && budget.gpuBytes > 0;
  const at = (gpuLayers: number) =>
    estimateMemory({
      ...input,
      ctx,
      gpuLayers,
      ...(gpu && input.gpuBackend === undefined ? { gpuBackend: true } : {}),
    });
  if (input.gpuLayers !== undefined) return at(input.gpuLayers);
  if (budget.gpuBytes === undefined || budget.gpuBytes <= 0) return at(0);
  const layers = input.metadata.blockCount ?? input.metadata.layerBytes?.length ?? 0;
  if (budget.unified) return at(-1);
  // GPU bytes grow with each layer: the largest g whose GPU part fits.
  for (let g = layers + 1; g > 0; g--) {
    const e = at(g);
    if (e.gpuBytes <= budget.gpuBytes) return e;
  }
  return at(0);
}

/** Largest multiple of 256 up to `upTo` for which ok() holds (ok is monotone: more context never fits better). */
function largestCtx(upTo: number, ok: (ctx: number) => boolean): number | undefined {
  const step = LLAMA_DEFAULTS.kvPad;
  if (!ok(step)) return undefined;
  let lo = 1;
  let hi = Math.max(1, Math.floor(upTo / step));
  if (ok(hi * step)) return Math.min(upTo, hi * step);
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ok(mid * step)) lo = mid;
    else hi = mid;
  }
  return lo * step;
}

export function adviseFit(input: FitInput, budget: FitBudget): FitAdvice {
  const meta = input.metadata;
  const trained = meta.contextLength ?? 4096;
  const ctx = input.ctx && input.ctx > 0 ? input.ctx : trained;
  const est = chooseLayers(input, budget, ctx);
  const layers = est.layers;
  const fits = fitsBudget(est, budget);
  const hasGpu = budget.gpuBytes !== undefined && budget.gpuBytes > 0;
  const offload: FitAdvice["offload"] =
    est.gpuLayers === 0 ? "none" : est.gpuBlocks === layers && est.outputOnGpu ? "full" : "partial";
  const cap = Math.max(trained, ctx);
  const maxCtx = largestCtx(Math.min(cap, trained), (c) => fitsBudget(chooseLayers(input, budget, c), budget));
  const maxCtxFullGpu = hasGpu
    ? largestCtx(trained, (c) => fitsBudget(estimateMemory({ ...input, ctx: c, gpuLayers: -1 }), budget))
    : undefined;

  const messages: string[] = [];
  const gb = formatBytes;
  const where = hasGpu ? (budget.gpuName ?? "the GPU") : "";
  if (fits) {
    if (offload === "full")
      messages.push(
        `Fits at ${ctx} tokens: ${gb(est.gpuBytes)} on ${where} (all ${layers} layers), ${gb(est.hostBytes)} in RAM.`,
      );
    else if (offload === "partial") {
      messages.push(
        `Fits at ${ctx} tokens with ${est.gpuBlocks} of ${layers} layers on ${where} (${gb(est.gpuBytes)}) and the rest on the CPU (${gb(est.hostBytes)} of RAM): slower than all on the GPU.`,
      );
    } else messages.push(`Fits at ${ctx} tokens in RAM: ${gb(est.totalBytes)} of ${gb(budget.hostBytes)} free.`);
  } else {
    const need =
      hasGpu && !budget.unified
        ? `${gb(est.gpuBytes)} on the GPU and ${gb(est.hostBytes)} of RAM`
        : `${gb(est.totalBytes)}`;
    const have =
      hasGpu && !budget.unified
        ? `${gb(budget.gpuBytes ?? 0)} and ${gb(budget.hostBytes)} free`
        : `${gb(budget.unified ? Math.min(budget.gpuBytes ?? 0, budget.hostBytes) : budget.hostBytes)} free`;
    messages.push(`Does not fit at ${ctx} tokens: needs ${need}, ${have}.`);
  }
  if (maxCtx !== undefined && (!fits || maxCtx < trained)) {
    messages.push(`Largest context that fits: ${maxCtx} tokens (trained: ${trained}). Use --ctx ${maxCtx} or less.`);
  } else if (maxCtx === undefined) {
    messages.push(`Even ${LLAMA_DEFAULTS.kvPad} tokens do not fit: use a smaller quantization or free memory.`);
  }
  if (hasGpu && offload !== "full" && maxCtxFullGpu !== undefined) {
    messages.push(`With every layer on ${where}, up to ${maxCtxFullGpu} tokens fit.`);
  }
  const swa = est.swa;
  if (swa && !input.swaFull && swa.fullExtraBytes > 0) {
    const withFull = estimateMemory({ ...input, ctx, gpuLayers: est.gpuLayers, swaFull: true });
    messages.push(
      `${swa.layers} of ${layers} layers use a ${swa.window}-token sliding window (${swa.cells} KV cells): --swa-full, ` +
        `which the proxy's context cache needs to reuse a restored conversation, adds ${gb(withFull.totalBytes - est.totalBytes)}` +
        (fits ? (fitsBudget(withFull, budget) ? " and still fits." : " and does not fit.") : "."),
    );
  }
  if (ctx > trained)
    messages.push(`${ctx} tokens is more than the ${trained} the model was trained on: quality drops past it.`);
  for (const [which, t] of [
    ["K", input.cacheTypeK],
    ["V", input.cacheTypeV],
  ] as const) {
    if (!t) continue;
    const block = KV_CACHE_BLOCK[t];
    const dim = which === "K" ? (meta.keyLength ?? headDim(meta)) : (meta.valueLength ?? headDim(meta));
    if (block > 1 && dim !== undefined && dim % block !== 0) {
      messages.push(
        `The ${which} cache type ${t} needs a head size that is a multiple of ${block}; this model's is ${dim}: llama-server will refuse it.`,
      );
    }
  }
  return {
    estimate: est,
    fits,
    gpuLayers: offload === "full" ? -1 : est.gpuLayers,
    offload,
    maxCtx,
    maxCtxFullGpu,
    messages,
  };
}
