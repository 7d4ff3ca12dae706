/**
 * Whether a sliding-window model runs with `--swa-full`. Without it llama-server keeps only the last window of
 * its sliding-window layers, so a slot restored from disk (the proxy's context cache) cannot be reused and every
 * follow-up after a swap is prefilled from the start (measured on the rig's gemma3: `cache_n` 0 without, the whole
 * prompt with). With it those layers keep the full context: more KV memory, and a larger attention mask in the
 * compute buffer (the estimate with `swaFull` minus the one without).
 *
 * Pure. The user's choice wins: `--swa-full` in the model's extraArgs or `swaFull: true` turn it on,
 * `swaFull: false` (or LLAMA_ARG_SWA_FULL=0 in its env) off. Otherwise it is on when the context cache is on and
 * the model with the full cache still fits the memory budget (or there is no budget), unless the llama-server keeps
 * the context checkpoints in its slot files (gglib's patch, src/llama/install/patches.ts): then a restored window
 * cache rolls back to the checkpoint made a few tokens before the old prompt's end, as the live server does
 * (measured on the rig's gemma3: 2,023 of 2,028 tokens reused without `--swa-full`), and the memory is not spent.
 */
import type { MemoryEstimate } from "./estimate/estimate.js";
import { formatBytes } from "../core/units.js";

export interface SwaFullChoice {
  /** `--swa-full` is passed (or was set by the user). */
  on: boolean;
  /** Bytes `--swa-full` adds to the model's need (KV cache and compute), whether or not it is on. */
  extraBytes: number;
  /** Who decided: the user's settings, the budget, or nobody needed to (context cache off, nothing to add). */
  by: "user" | "budget" | "default";
  /** Why, in words (the start report, /api/status, the context cache's skip reason). */
  reason: string;
}

export interface SwaFullInput {
  /** The estimate without `--swa-full`. */
  estimate: Pick<MemoryEstimate, "swa" | "totalBytes">;
  /** The model's whole need with `--swa-full` (default: the estimate plus the sliding-window layers' extra KV). */
  fullBytes?: number | undefined;
  /** The model's `swaFull` setting. */
  setting?: boolean | undefined;
  extraArgs?: readonly string[] | undefined;
  env?: Readonly<Record<string, string>> | undefined;
  /** The memory budget the model must fit in (undefined: no limit). */
  budgetBytes?: number | undefined;
  /** The context cache is on (the reason to pay for the full cache). */
  contextCache: boolean;
  /** The llama-server keeps context checkpoints in slot files (then the window cache restores as well). */
  slotCheckpoints?: boolean | undefined;
}

/** llama.cpp reads boolean env values as true / 1 / on / enabled (common/arg.cpp). */
function envOff(v: string | undefined): boolean {
  return v !== undefined && !["1", "true", "on", "enabled"].includes(v.trim().toLowerCase());
}

/** Undefined for a model without sliding-window layers (or whose layout the estimator does not know). */
export function chooseSwaFull(i: SwaFullInput): SwaFullChoice | undefined {
  const swa = i.estimate.swa;
  if (!swa) return undefined;
  const extraBytes = Math.max(0, (i.fullBytes ?? i.estimate.totalBytes + swa.fullExtraBytes) - i.estimate.totalBytes);
  const cost = `+${formatBytes(extraBytes)}`;
  if (i.extraArgs?.includes("--swa-full"))
    return { on: true, extraBytes, by: "user", reason: `--swa-full is in the model's extraArgs (${cost})` };
  if (i.setting === false || envOff(i.env?.LLAMA_ARG_SWA_FULL))
    return { on: false, extraBytes, by: "user", reason: "turned off by the model's settings (swaFull: false)" };
  if (i.setting === true) return { on: true, extraBytes, by: "user", reason: `swaFull: true (${cost})` };
  if (swa.fullExtraBytes === 0)
    return { on: true, extraBytes, by: "default", reason: "the window cache already spans the whole context" };
  if (!i.contextCache)
    return { on: false, extraBytes, by: "default", reason: "the context cache is off: nothing to restore" };
  if (i.slotCheckpoints)
    return {
      on: false,
      extraBytes,
      by: "default",
      reason:
        "not needed: this llama-server keeps context checkpoints in its slot files, so a restored window cache is " +
        `reused (${cost} saved)`,
    };
  const need = i.estimate.totalBytes + extraBytes;
  if (i.budgetBytes === undefined)
    return { on: true, extraBytes, by: "budget", reason: `no memory budget: on for the context cache (${cost})` };
  if (need <= i.budgetBytes)
    return {
      on: true,
      extraBytes,
      by: "budget",
      reason: `fits the memory budget: ${formatBytes(need)} of ${formatBytes(i.budgetBytes)} (${cost})`,
    };
  return {
    on: false,
    extraBytes,
    by: "budget",
    reason: `the memory budget does not allow it: ${formatBytes(need)} with it, ${formatBytes(i.budgetBytes)} budget`,
  };
}
