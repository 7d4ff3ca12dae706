/**
 * Memory for the proxy's scheduler: the budget (`auto` or a size), a model's estimated need from its GGUF, and the
 * need measured from a running llama-server (its buffer-size log lines, else its resident memory).
 */
import { readFileSync, statSync } from "node:fs";
import type { KvCacheType } from "../core/config.js";
import { readModelMetadata, type ModelMetadata } from "../gguf/reader.js";
import {
  budgetFromSnapshot,
  estimateMemory,
  parseLlamaMemoryLog,
  poolBudget,
  type PoolBudget,
  type SwaEstimate,
} from "../models/estimator.js";
import type { ExtraBufferType } from "../models/repack.js";
import { runCommand } from "../system/exec.js";
import type { SystemProbe } from "../system/types.js";

const MiB = 1024 * 1024;

/**
 * The `auto` budget: the machine's memory read now, under the one budget policy `gglib models fit` uses
 * (src/models/estimator.ts budgetFromSnapshot), as one pool (poolBudget).
 */
export async function autoBudget(probe: Pick<SystemProbe, "memory">): Promise<PoolBudget> {
  return poolBudget(budgetFromSnapshot(await probe.memory({ fresh: true })));
}

export interface EstimateInput {
  /** Every file of the model (shards). */
  files: readonly string[];
  /** The multimodal projector, if any. */
  mmproj?: string;
  /** Requested context; 0/undefined = the trained context. */
  ctx?: number;
  cacheTypeK?: KvCacheType;
  cacheTypeV?: KvCacheType;
  /** Parallel slots when the KV cache is not unified (llama-server's default is unified: ctx is the total). */
  parallel?: number;
  /** The first file's metadata when the caller has read it already (otherwise it is read here). */
  metadata?: ModelMetadata;
  /**
   * `-ngl` as llama.cpp counts it, for a model whose offload devices are RPC workers: the estimate's
   * `offloadBytes` is what goes to them, `hostBytes` what stays. Unset: no offload split is asked for.
   */
  gpuLayers?: number;
  /** The CPU's features, for a model that runs on it: the weights its extra buffers copy count too. */
  cpu?: readonly string[];
  /** `--swa-full` (sliding-window layers at full size). */
  swaFull?: boolean;
}

export interface Estimate {
  bytes: number;
  weightsBytes: number;
  kvBytes: number;
  computeBytes: number;
  ctx: number;
  /** On this host (all of `bytes` unless `gpuLayers` was given). */
  hostBytes: number;
  /** On the offload devices (0 unless `gpuLayers` was given). */
  offloadBytes: number;
  /** Weights copied into the CPU's extra buffers (AMX, CPU_REPACK), part of `weightsBytes`; absent when none. */
  repack?: { bytes: number; buffers: Partial<Record<ExtraBufferType, number>> };
  /** A sliding-window model: its window cache and what `--swa-full` adds (src/models/estimate/estimate.ts). */
  swa?: SwaEstimate;
}

export function fileBytes(files: readonly string[]): number {
  let sum = 0;
  for (const f of files) {
    try {
      sum += statSync(f).size;
    } catch {
      // a missing file fails at load with llama-server's own message
    }
  }
  return sum;
}

/**
 * The model's need, from the one estimator (src/models/estimator.ts: weights + KV cache + compute + output, from
 * the GGUF's metadata). A file whose header cannot be read is estimated from its size alone.
 */
export async function estimateModel(input: EstimateInput): Promise<Estimate> {
  const first = input.files[0];
  const metadata = input.metadata ?? (first ? await readModelMetadata(first).catch(() => undefined) : undefined);
  const e = estimateMemory({
    metadata: metadata ?? {},
    fileBytes: fileBytes(input.files),
    ...(input.ctx !== undefined ? { ctx: input.ctx } : {}),
    ...(input.parallel !== undefined ? { parallel: input.parallel } : {}),
    ...(input.cacheTypeK ? { cacheTypeK: input.cacheTypeK } : {}),
    ...(input.cacheTypeV ? { cacheTypeV: input.cacheTypeV } : {}),
    mmprojBytes: input.mmproj ? fileBytes([input.mmproj]) : 0,
    ...(input.cpu ? { cpu: input.cpu } : {}),
    ...(input.swaFull ? { swaFull: true } : {}),
    // RPC devices claim every op (ggml-rpc's supports_op), so llama.cpp's flash attention "auto" is on for them
    ...(input.gpuLayers !== undefined ? { gpuLayers: input.gpuLayers, gpuBackend: true, flashAttention: true } : {}),
  });
  return {
    bytes: e.totalBytes,
    weightsBytes: e.weightsBytes,
    kvBytes: e.kvBytes,
    computeBytes: e.computeBytes + e.outputBytes + e.mmprojBytes,
    ctx: e.ctx,
    hostBytes: input.gpuLayers !== undefined ? e.hostBytes : e.totalBytes,
    offloadBytes: input.gpuLayers !== undefined ? e.gpuBytes : 0,
    ...(e.repack ? { repack: e.repack } : {}),
    ...(e.swa ? { swa: e.swa } : {}),
  };
}

/**
 * Measured buffers from llama-server's log (printed at `-lv 4`): model + KV + compute (+ output) buffer sizes,
 * summed over devices. Undefined when no such line was seen.
 */
export function parseMemoryLog(lines: readonly string[]): number | undefined {
  return parseLlamaMemoryLog(lines).totalBytes;
}

/** The same lines by place: this host's bytes, and each RPC worker's (`host:port` → bytes). */
export function parseMemorySplit(lines: readonly string[]): { localBytes?: number; remote?: Record<string, number> } {
  const m = parseLlamaMemoryLog(lines);
  const out: { localBytes?: number; remote?: Record<string, number> } = {};
  if (m.totalBytes !== undefined) out.localBytes = m.totalBytes;
  if (m.remote) out.remote = m.remote;
  return out;
}

/** Resident memory of a process (Linux /proc/PID/status VmRSS), bytes. */
export function processRss(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** GPU memory used by a process, from `nvidia-smi --query-compute-apps` (NVIDIA only), bytes. */
export async function processGpuBytes(pid: number): Promise<number | undefined> {
  const r = await runCommand("nvidia-smi", ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], {
    timeoutMs: 3_000,
  });
  if (!r.ok) return undefined;
  return parseComputeApps(r.stdout, pid);
}

/** `pid, used_memory [MiB]` lines → the bytes of one pid (summed over GPUs). */
export function parseComputeApps(text: string, pid: number): number | undefined {
  let total: number | undefined;
  for (const line of text.split("\n")) {
    const [p, mib] = line.split(",").map((x) => x.trim());
    if (Number(p) === pid && Number.isFinite(Number(mib))) total = (total ?? 0) + Number(mib) * MiB;
  }
  return total;
}
