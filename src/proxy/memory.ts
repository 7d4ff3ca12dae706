/**
 * Memory for the proxy's scheduler: the budget (`auto` or a size), a model's estimated need from its GGUF, and the
 * need measured from a running llama-server (its buffer-size log lines, else its resident memory).
 */
import { readFileSync, statSync } from "node:fs";
import type { KvCacheType } from "../core/config.js";
import { readModelMetadata, type ModelMetadata } from "../gguf/reader.js";
import { estimateMemory, parseLlamaMemoryLog } from "../models/estimator.js";
import { runCommand } from "../system/exec.js";
import type { SystemProbe } from "../system/types.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Parses `24GiB`, `512 MiB`, `8G`, `1.5 GB`, `1000000` (bytes). Binary units for K/M/G/T with or without "i". */
export function parseSize(text: string | number): number {
  if (typeof text === "number") {
    if (!Number.isFinite(text) || text < 0) throw new Error(`Invalid size: ${text}`);
    return Math.floor(text);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m) throw new Error(`Invalid size "${text}": use a number of bytes or a value like 512MiB, 24GiB, 8G.`);
  const n = Number(m[1]);
  const unit = (m[2] ?? "").toLowerCase();
  const mult = unit === "k" ? 1024 : unit === "m" ? MiB : unit === "g" ? GiB : unit === "t" ? 1024 * GiB : 1;
  return Math.floor(n * mult);
}

export interface BudgetReading {
  bytes: number;
  /** Where it came from, for the start-up report. */
  source: string;
}

/**
 * The `auto` budget: free VRAM (sum over GPUs that report it, discrete ones) on GPU machines, else RAM available
 * (capped by a cgroup limit), minus headroom (10 % and at least 512 MiB) for the OS, the proxy and buffers.
 */
export async function autoBudget(probe: Pick<SystemProbe, "memory">): Promise<BudgetReading> {
  const snap = await probe.memory({ fresh: true });
  const gpus = snap.gpus.filter((g) => !g.unifiedMemory && g.freeBytes !== undefined);
  const headroom = (free: number) => Math.max(0, Math.floor(free - Math.max(free * 0.1, 512 * MiB)));
  if (gpus.length > 0) {
    const free = gpus.reduce((s, g) => s + (g.freeBytes ?? 0), 0);
    return { bytes: headroom(free), source: `free VRAM ${fmt(free)} on ${gpus.length} GPU(s), minus headroom` };
  }
  let avail = snap.ram.availableBytes;
  if (snap.ram.cgroupLimitBytes !== undefined) avail = Math.min(avail, snap.ram.cgroupLimitBytes);
  return { bytes: headroom(avail), source: `available RAM ${fmt(avail)}, minus headroom` };
}

function fmt(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / MiB)} MiB`;
}

/** Bytes per element of a KV cache type (block formats include their scales). */
export function kvBytesPerElement(t: KvCacheType = "f16"): number {
  switch (t) {
    case "f32":
      return 4;
    case "f16":
    case "bf16":
      return 2;
    case "q8_0":
      return 34 / 32;
    case "q4_0":
    case "iq4_nl":
      return 18 / 32;
    case "q4_1":
      return 20 / 32;
    case "q5_0":
      return 22 / 32;
    case "q5_1":
      return 24 / 32;
  }
}

export interface KvShape {
  nLayer: number;
  nHeadKv: number;
  headDimK: number;
  headDimV: number;
  /** The model's trained context. */
  trainedCtx: number;
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
}

export interface Estimate {
  bytes: number;
  weightsBytes: number;
  kvBytes: number;
  computeBytes: number;
  ctx: number;
}

/**
 * weights (file sizes of all shards + projector) + KV cache (n_layer × n_head_kv × head_dim × ctx × bytes per
 * element, for K and V) + a compute allowance (the larger of 5 % of the weights and 64 MiB, plus 0.25 MiB per
 * 1k tokens of context). `shape` is read from the GGUF when not given; without it the KV part is 0.
 */
export function estimateFromShape(input: EstimateInput, shape: KvShape | undefined, fileBytes: number): Estimate {
  const ctx = input.ctx && input.ctx > 0 ? input.ctx : (shape?.trainedCtx ?? 4096);
  let kvBytes = 0;
  if (shape) {
    const k = shape.nLayer * shape.nHeadKv * shape.headDimK * ctx * kvBytesPerElement(input.cacheTypeK);
    const v = shape.nLayer * shape.nHeadKv * shape.headDimV * ctx * kvBytesPerElement(input.cacheTypeV);
    kvBytes = Math.ceil(k + v);
  }
  const computeBytes = Math.ceil(Math.max(fileBytes * 0.05, 64 * MiB) + (ctx / 1024) * 0.25 * MiB);
  return { bytes: fileBytes + kvBytes + computeBytes, weightsBytes: fileBytes, kvBytes, computeBytes, ctx };
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

/** The attention shape from the GGUF's metadata (the project's own reader); undefined when keys are missing. */
export function kvShapeOf(md: ModelMetadata): KvShape | undefined {
  const nLayer = md.blockCount;
  const nHead = md.headCount;
  const nEmbd = md.embeddingLength;
  if (!nLayer || !nHead || !nEmbd) return undefined;
  const nHeadKv = md.headCountKvPerLayer?.length ? Math.max(...md.headCountKvPerLayer) : (md.headCountKv ?? nHead);
  return {
    nLayer,
    nHeadKv,
    headDimK: md.keyLength ?? Math.floor(nEmbd / nHead),
    headDimV: md.valueLength ?? Math.floor(nEmbd / nHead),
    trainedCtx: md.contextLength ?? 4096,
  };
}

/**
 * The model's need: the shared estimator (src/models/estimator.ts: weights + KV cache + compute + output, from the
 * GGUF's metadata) when the header can be read, else files + KV from the header's attention shape + an allowance.
 */
export async function estimateModel(input: EstimateInput): Promise<Estimate> {
  const first = input.files[0];
  const bytes = fileBytes(input.files);
  const mmprojBytes = input.mmproj ? fileBytes([input.mmproj]) : 0;
  const metadata = input.metadata ?? (first ? await readModelMetadata(first).catch(() => undefined) : undefined);
  if (metadata) {
    try {
      const e = estimateMemory({
        metadata,
        fileBytes: bytes,
        ...(input.ctx !== undefined ? { ctx: input.ctx } : {}),
        ...(input.parallel !== undefined ? { parallel: input.parallel } : {}),
        ...(input.cacheTypeK ? { cacheTypeK: input.cacheTypeK } : {}),
        ...(input.cacheTypeV ? { cacheTypeV: input.cacheTypeV } : {}),
        mmprojBytes,
      });
      return {
        bytes: e.totalBytes,
        weightsBytes: e.weightsBytes,
        kvBytes: e.kvBytes,
        computeBytes: e.computeBytes + e.outputBytes + e.mmprojBytes,
        ctx: e.ctx,
      };
    } catch {
      // fall through to the simple estimate
    }
  }
  return estimateFromShape(input, metadata ? kvShapeOf(metadata) : undefined, bytes + mmprojBytes);
}

/**
 * Measured buffers from llama-server's log (printed at `-lv 4`): model + KV + compute (+ output) buffer sizes,
 * summed over devices. Undefined when no such line was seen.
 */
export function parseMemoryLog(lines: readonly string[]): number | undefined {
  return parseLlamaMemoryLog(lines).totalBytes;
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
