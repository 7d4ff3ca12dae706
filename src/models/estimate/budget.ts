/**
 * The memory gglib may use: free GPU memory and RAM minus headroom (`gglib models fit`, the launch defaults, the
 * proxy's `auto` budget).
 */
import type { MemorySnapshot } from "../../system/types.js";

const GIB = 1024 * 1024 * 1024;

export interface FitBudget {
  /** Free memory on the GPU(s) gglib may use, headroom already taken off. Undefined: no usable GPU. */
  gpuBytes?: number;
  /** Free RAM gglib may use, headroom already taken off. */
  hostBytes: number;
  /** The GPU shares RAM (Apple Silicon): both parts come out of the same memory. */
  unified?: boolean;
  /** For messages. */
  gpuName?: string;
  /** GPUs counted in gpuBytes. */
  gpuCount?: number;
}

/** llama.cpp's own `--fit` leaves 1 GiB per device; do the same. */
export const DEFAULT_HEADROOM_BYTES = GIB;

/**
 * The budget policy, for `gglib models fit`, the launch defaults and the proxy's `auto` budget alike: free memory
 * of discrete GPUs (summed: llama.cpp splits layers across them), or Metal's share of unified memory on Apple
 * Silicon; free RAM, capped by a container limit. Minus the headroom on each device.
 */
export function budgetFromSnapshot(snap: MemorySnapshot, headroomBytes = DEFAULT_HEADROOM_BYTES): FitBudget {
  let host = snap.ram.availableBytes;
  if (snap.ram.cgroupLimitBytes !== undefined) host = Math.min(host, snap.ram.cgroupLimitBytes);
  const budget: FitBudget = { hostBytes: Math.max(0, host - headroomBytes) };
  const discrete = snap.gpus.filter((g) => !g.unifiedMemory && g.freeBytes !== undefined);
  const unified = snap.gpus.find((g) => g.unifiedMemory && g.vendor === "apple" && g.freeBytes !== undefined);
  if (discrete.length > 0) {
    budget.gpuBytes = Math.max(
      0,
      discrete.reduce((s, g) => s + (g.freeBytes ?? 0), 0) - headroomBytes * discrete.length,
    );
    budget.gpuName = discrete.map((g) => g.name).join(" + ");
    budget.gpuCount = discrete.length;
  } else if (unified) {
    budget.gpuBytes = Math.max(0, (unified.freeBytes ?? 0) - headroomBytes);
    budget.unified = true;
    budget.gpuName = unified.name;
    budget.gpuCount = 1;
  }
  return budget;
}

/** One number for a scheduler that counts every model's whole need against one pool (the proxy's `auto`). */
export interface PoolBudget {
  bytes: number;
  /** The pool is GPU memory (then a server's use is measured on the GPU, not by its resident memory). */
  gpu: boolean;
  /** Where it came from, for the start-up report. */
  source: string;
}

/**
 * The budget as one pool: the discrete GPUs' memory when there are some, the unified memory the GPU may use on
 * Apple Silicon, else RAM. The same numbers `budgetFromSnapshot` gives `gglib models fit`.
 */
export function poolBudget(budget: FitBudget): PoolBudget {
  if (budget.gpuBytes !== undefined && !budget.unified)
    return { bytes: budget.gpuBytes, gpu: true, source: `free VRAM on ${budget.gpuCount ?? 1} GPU(s), minus headroom` };
  if (budget.gpuBytes !== undefined) {
    const bytes = Math.min(budget.gpuBytes, budget.hostBytes);
    return { bytes, gpu: false, source: "unified memory the GPU may use, minus headroom" };
  }
  return { bytes: budget.hostBytes, gpu: false, source: "available RAM, minus headroom" };
}
