/**
 * Pure parsers: one tool's text output in, data out. No I/O here, so every parser is tested on recorded outputs
 * (test/fixtures/system/). Each tolerates warnings around the payload and returns empty results, not errors,
 * on text it does not recognise.
 */
import { MiB } from "../core/units.js";
import type { GpuDevice, SimdFlag } from "./types.js";

// ---------------------------------------------------------------------------------------------------------------
// Linux /proc

export interface MeminfoReading {
  totalBytes: number;
  availableBytes: number;
}

/** `/proc/meminfo`: `MemTotal` and `MemAvailable` (kB). Kernels before 3.14 lack MemAvailable: Free+Buffers+Cached. */
export function parseProcMeminfo(text: string): MeminfoReading | undefined {
  const kb = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([\w()]+):\s+(\d+)(?:\s*kB)?\s*$/.exec(line.trim());
    if (m) kb.set(m[1]!, Number(m[2]) * 1024);
  }
  const total = kb.get("MemTotal");
  if (total === undefined) return undefined;
  const available =
    kb.get("MemAvailable") ?? (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  return { totalBytes: total, availableBytes: Math.min(available, total) };
}

/** cgroup v2 `memory.max` ("max" or bytes) or v1 `memory.limit_in_bytes` (a huge number means none). */
export function parseCgroupMemoryLimit(text: string | undefined, totalRamBytes: number): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n > 0 && n < totalRamBytes ? n : undefined;
}

export interface CpuinfoReading {
  model?: string;
  logicalCores: number;
  physicalCores?: number;
  simd: SimdFlag[];
}

const X86_FLAGS: ReadonlyArray<[SimdFlag, (f: Set<string>) => boolean]> = [
  ["SSE3", (f) => f.has("pni") || f.has("sse3")],
  ["SSSE3", (f) => f.has("ssse3")],
  ["AVX", (f) => f.has("avx")],
  ["AVX_VNNI", (f) => f.has("avx_vnni")],
  ["AVX2", (f) => f.has("avx2")],
  ["F16C", (f) => f.has("f16c")],
  ["FMA", (f) => f.has("fma")],
  ["BMI2", (f) => f.has("bmi2")],
  ["AVX512", (f) => f.has("avx512f")],
  ["AVX512_VBMI", (f) => f.has("avx512vbmi")],
  ["AVX512_VNNI", (f) => f.has("avx512_vnni") || f.has("avx512vnni")],
  ["AVX512_BF16", (f) => f.has("avx512_bf16")],
  ["AMX_INT8", (f) => f.has("amx_int8")],
];

const ARM_FLAGS: ReadonlyArray<[SimdFlag, (f: Set<string>) => boolean]> = [
  ["NEON", (f) => f.has("asimd") || f.has("neon")],
  ["ARM_FMA", (f) => f.has("asimd") || f.has("vfpv4")],
  ["FP16_VA", (f) => f.has("asimdhp") || f.has("fphp")],
  ["DOTPROD", (f) => f.has("asimddp")],
  ["MATMUL_INT8", (f) => f.has("i8mm")],
  ["SVE", (f) => f.has("sve")],
  ["SME", (f) => f.has("sme")],
];

/** `/proc/cpuinfo` on x86 (`model name`, `flags`) and ARM (`Features`, no model name on many kernels). */
export function parseProcCpuinfo(text: string): CpuinfoReading {
  const blocks = text.split(/\n\s*\n/).filter((b) => /^processor\s*:/m.test(b));
  let model: string | undefined;
  let flags = new Set<string>();
  const cores = new Set<string>();
  let coresPerSocket: number | undefined;
  const sockets = new Set<string>();
  for (const block of blocks) {
    const fields = new Map<string, string>();
    for (const line of block.split("\n")) {
      const i = line.indexOf(":");
      if (i > 0) fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    model ??= fields.get("model name") ?? fields.get("hardware") ?? fields.get("cpu model");
    if (flags.size === 0) {
      const f = fields.get("flags") ?? fields.get("features");
      if (f) flags = new Set(f.split(/\s+/).filter(Boolean));
    }
    const phys = fields.get("physical id");
    const core = fields.get("core id");
    if (phys !== undefined) sockets.add(phys);
    if (phys !== undefined && core !== undefined) cores.add(`${phys}:${core}`);
    const cpuCores = fields.get("cpu cores");
    if (cpuCores !== undefined && /^\d+$/.test(cpuCores)) coresPerSocket = Number(cpuCores);
  }
  const table = flags.has("asimd") || flags.has("neon") || flags.has("fp") ? ARM_FLAGS : X86_FLAGS;
  const simd = table.filter(([, has]) => has(flags)).map(([name]) => name);
  let physicalCores: number | undefined = cores.size > 0 ? cores.size : undefined;
  if (physicalCores === undefined && coresPerSocket !== undefined)
    physicalCores = coresPerSocket * Math.max(1, sockets.size);
  const reading: CpuinfoReading = { logicalCores: blocks.length, simd };
  if (model) reading.model = model;
  if (physicalCores !== undefined) reading.physicalCores = physicalCores;
  return reading;
}

// ---------------------------------------------------------------------------------------------------------------
// NVIDIA

/** The query gglib runs; keep the column order in step with `parseNvidiaSmiQuery`. */
export const NVIDIA_SMI_QUERY_ARGS = [
  "--query-gpu=index,name,memory.total,memory.used,memory.free,driver_version",
  "--format=csv,noheader,nounits",
] as const;

function mibField(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  // "[N/A]", "[Not Supported]", "[Insufficient Permissions]" on some boards (unified-memory Grace parts, MIG).
  if (!/^\d+(\.\d+)?$/.test(t)) return undefined;
  return Math.round(Number(t) * MiB);
}

/**
 * `nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free,driver_version --format=csv,noheader,nounits`:
 * one line per GPU, `0, NVIDIA H100 80GB HBM3, 81559, 0, 81079, 580.159.04` (MiB). Names never contain commas.
 */
export function parseNvidiaSmiQuery(text: string): GpuDevice[] {
  const gpus: GpuDevice[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const cols = line.split(",").map((c) => c.trim());
    if (cols.length < 6 || !/^\d+$/.test(cols[0]!)) continue;
    const gpu: GpuDevice = {
      index: Number(cols[0]),
      vendor: "nvidia",
      name: cols[1]!,
      source: "nvidia-smi",
      unifiedMemory: false,
    };
    const total = mibField(cols[2]);
    const used = mibField(cols[3]);
    const free = mibField(cols[4]);
    if (total !== undefined) gpu.totalBytes = total;
    if (used !== undefined) gpu.usedBytes = used;
    if (free !== undefined) gpu.freeBytes = free;
    if (cols[5] && !cols[5].startsWith("[")) gpu.driverVersion = cols[5];
    if (cols[6] && /^\d+\.\d+$/.test(cols[6])) gpu.architecture = cols[6];
    gpus.push(gpu);
  }
  return gpus;
}

/** The CUDA version the driver supports, from plain `nvidia-smi`'s banner: `… CUDA Version: 13.0 |`. */
export function parseNvidiaSmiCudaVersion(text: string): string | undefined {
  return /CUDA Version:\s*(\d+(?:\.\d+)+)/.exec(text)?.[1];
}

/** `nvcc --version`: `Cuda compilation tools, release 13.0, V13.0.88` → "13.0". */
export function parseNvccVersion(text: string): string | undefined {
  return /release\s+(\d+(?:\.\d+)+)/.exec(text)?.[1];
}

// ---------------------------------------------------------------------------------------------------------------
// AMD

/** rocm-smi prints warnings ("WARNING: AMD GPU device(s) is/are in a low-power state…") before the JSON. */
function extractJsonObject(text: string): Record<string, unknown> | undefined {
  const start = text.indexOf("{");
  const end = text.lastIndexOf("}");
  if (start < 0 || end <= start) return undefined;
  try {
    const v: unknown = JSON.parse(text.slice(start, end + 1));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function lowerKeys(o: unknown): Map<string, string> {
  const m = new Map<string, string>();
  if (o !== null && typeof o === "object") {
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
      if (typeof v === "string" || typeof v === "number") m.set(k.toLowerCase(), String(v));
    }
  }
  return m;
}

/**
 * `rocm-smi --showmeminfo vram --json` and `rocm-smi --showproductname --showdriverversion --json`, merged:
 * `{"card0": {"VRAM Total Memory (B)": "…", "VRAM Total Used Memory (B)": "…"}}` and
 * `{"card0": {"Card Series": "…", "GFX Version": "gfx90a", …}, "system": {"Driver version": "…"}}`.
 * Key spelling changed between ROCm releases ("Card series" / "Card Series"), so keys are matched case-blind.
 */
export function parseRocmSmi(memText: string | undefined, productText: string | undefined): GpuDevice[] {
  const mem = memText ? extractJsonObject(memText) : undefined;
  const prod = productText ? extractJsonObject(productText) : undefined;
  const driver = lowerKeys(prod?.system).get("driver version");
  const cards = new Set<string>();
  for (const src of [mem, prod]) for (const k of Object.keys(src ?? {})) if (/^card\d+$/.test(k)) cards.add(k);
  const gpus: GpuDevice[] = [];
  for (const card of [...cards].sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))) {
    const m = lowerKeys(mem?.[card]);
    const p = lowerKeys(prod?.[card]);
    const series = p.get("card series");
    const model = p.get("card model");
    const name =
      series && !/^0x/i.test(series) ? series : model && !/^0x/i.test(model) ? model : (series ?? model ?? card);
    const gpu: GpuDevice = {
      index: Number(card.slice(4)),
      vendor: "amd",
      name,
      source: "rocm-smi",
      unifiedMemory: false,
    };
    const total = m.get("vram total memory (b)");
    const used = m.get("vram total used memory (b)");
    if (total && /^\d+$/.test(total)) gpu.totalBytes = Number(total);
    if (used && /^\d+$/.test(used)) gpu.usedBytes = Number(used);
    if (gpu.totalBytes !== undefined && gpu.usedBytes !== undefined)
      gpu.freeBytes = Math.max(0, gpu.totalBytes - gpu.usedBytes);
    const gfx = p.get("gfx version");
    if (gfx) gpu.architecture = gfx;
    if (driver) gpu.driverVersion = driver;
    gpus.push(gpu);
  }
  return gpus;
}

// ---------------------------------------------------------------------------------------------------------------
// Vulkan

export interface VulkanSummary {
  instanceVersion?: string;
  gpus: GpuDevice[];
}

const VULKAN_VENDORS: Record<string, GpuDevice["vendor"]> = {
  "0x10de": "nvidia",
  "0x1002": "amd",
  "0x1022": "amd",
  "0x8086": "intel",
  "0x106b": "apple",
};

/**
 * `vulkaninfo --summary`: the `Devices:` section lists `GPU0:` blocks of `key = value` lines. CPU devices
 * (llvmpipe, SwiftShader) are left out: they are not GPUs. The summary has no memory sizes.
 */
export function parseVulkaninfoSummary(text: string): VulkanSummary {
  const out: VulkanSummary = { gpus: [] };
  const ver = /Vulkan Instance Version:\s*(\d+(?:\.\d+)+)/.exec(text);
  if (ver) out.instanceVersion = ver[1];
  const devIdx = text.search(/^Devices:\s*$/m);
  if (devIdx < 0) return out;
  const lines = text.slice(devIdx).split(/\r?\n/);
  let cur: { index: number; fields: Map<string, string> } | undefined;
  const blocks: Array<{ index: number; fields: Map<string, string> }> = [];
  for (const line of lines) {
    const head = /^GPU(\d+):\s*$/.exec(line.trim());
    if (head) {
      cur = { index: Number(head[1]), fields: new Map() };
      blocks.push(cur);
      continue;
    }
    const kv = /^\s*(\w+)\s*=\s*(.*?)\s*$/.exec(line);
    if (cur && kv) cur.fields.set(kv[1]!, kv[2]!);
  }
  for (const b of blocks) {
    const type = b.fields.get("deviceType") ?? "";
    if (/CPU/.test(type)) continue;
    const vendorId = (b.fields.get("vendorID") ?? "").toLowerCase();
    const deviceType = /DISCRETE/.test(type)
      ? "discrete"
      : /INTEGRATED/.test(type)
        ? "integrated"
        : /VIRTUAL/.test(type)
          ? "virtual"
          : "other";
    const gpu: GpuDevice = {
      index: b.index,
      vendor: VULKAN_VENDORS[vendorId] ?? "other",
      name: b.fields.get("deviceName") ?? `GPU${b.index}`,
      source: "vulkaninfo",
      unifiedMemory: deviceType === "integrated",
      deviceType,
    };
    const driver = b.fields.get("driverInfo") ?? b.fields.get("driverVersion");
    if (driver) gpu.driverVersion = driver;
    out.gpus.push(gpu);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// macOS

/** The keys gglib asks `sysctl` for on macOS (unknown ones make sysctl complain on stderr; the rest still print). */
export const SYSCTL_KEYS = [
  "hw.memsize",
  "hw.ncpu",
  "hw.physicalcpu",
  "hw.logicalcpu",
  "machdep.cpu.brand_string",
  "hw.optional.arm64",
  "iogpu.wired_limit_mb",
  "hw.optional.AdvSIMD",
  "hw.optional.arm.FEAT_DotProd",
  "hw.optional.arm.FEAT_I8MM",
  "hw.optional.arm.FEAT_FP16",
  "hw.optional.arm.FEAT_SME",
  "machdep.cpu.features",
  "machdep.cpu.leaf7_features",
] as const;

export interface SysctlReading {
  memBytes?: number;
  cpuModel?: string;
  logicalCores?: number;
  physicalCores?: number;
  appleSilicon: boolean;
  /** `iogpu.wired_limit_mb` when set above 0 (the user raised/lowered Metal's share). */
  wiredLimitBytes?: number;
  simd: SimdFlag[];
}

/** `sysctl hw.memsize hw.ncpu …`: `name: value` lines. */
export function parseSysctl(text: string): SysctlReading {
  const v = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([\w.]+):\s*(.*)$/.exec(line.trim());
    if (m) v.set(m[1]!, m[2]!.trim());
  }
  const num = (k: string): number | undefined => {
    const s = v.get(k);
    return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
  };
  const on = (k: string) => v.get(k) === "1";
  const appleSilicon = on("hw.optional.arm64");
  const simd: SimdFlag[] = [];
  if (appleSilicon) {
    if (on("hw.optional.AdvSIMD") || appleSilicon) simd.push("NEON", "ARM_FMA");
    if (on("hw.optional.arm.FEAT_FP16")) simd.push("FP16_VA");
    if (on("hw.optional.arm.FEAT_DotProd")) simd.push("DOTPROD");
    if (on("hw.optional.arm.FEAT_I8MM")) simd.push("MATMUL_INT8");
    if (on("hw.optional.arm.FEAT_SME")) simd.push("SME");
  } else {
    const feats = new Set(
      `${v.get("machdep.cpu.features") ?? ""} ${v.get("machdep.cpu.leaf7_features") ?? ""}`.toLowerCase().split(/\s+/),
    );
    const map: ReadonlyArray<[SimdFlag, string]> = [
      ["SSE3", "sse3"],
      ["SSSE3", "ssse3"],
      ["AVX", "avx1.0"],
      ["AVX2", "avx2"],
      ["F16C", "f16c"],
      ["FMA", "fma"],
      ["BMI2", "bmi2"],
      ["AVX512", "avx512f"],
    ];
    for (const [flag, key] of map) if (feats.has(key)) simd.push(flag);
  }
  const r: SysctlReading = { appleSilicon, simd };
  const mem = num("hw.memsize");
  if (mem !== undefined) r.memBytes = mem;
  const brand = v.get("machdep.cpu.brand_string");
  if (brand) r.cpuModel = brand;
  const logical = num("hw.logicalcpu") ?? num("hw.ncpu");
  if (logical !== undefined) r.logicalCores = logical;
  const physical = num("hw.physicalcpu");
  if (physical !== undefined) r.physicalCores = physical;
  const wired = num("iogpu.wired_limit_mb");
  if (wired !== undefined && wired > 0) r.wiredLimitBytes = wired * MiB;
  return r;
}

/**
 * How much unified memory Metal lets the GPU use by default (`recommendedMaxWorkingSetSize`): about two thirds of
 * RAM up to 36 GiB, three quarters above. `iogpu.wired_limit_mb`, when set, overrides it.
 */
export function appleGpuShareBytes(totalRamBytes: number, wiredLimitBytes?: number): number {
  if (wiredLimitBytes !== undefined && wiredLimitBytes > 0) return Math.min(wiredLimitBytes, totalRamBytes);
  const fraction = totalRamBytes > 36 * 1024 * MiB ? 0.75 : 2 / 3;
  return Math.floor(totalRamBytes * fraction);
}

/** `vm_stat`: pages free + inactive + speculative, times the page size from its banner. */
export function parseVmStat(text: string): number | undefined {
  const pageSize = Number(/page size of (\d+) bytes/.exec(text)?.[1] ?? NaN);
  if (!Number.isFinite(pageSize)) return undefined;
  const pages = (label: string) => Number(new RegExp(`^Pages ${label}:\\s+(\\d+)\\.?`, "m").exec(text)?.[1] ?? 0);
  return (pages("free") + pages("inactive") + pages("speculative")) * pageSize;
}
