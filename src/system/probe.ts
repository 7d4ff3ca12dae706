import os from "node:os";
import { readTextFile, runCommand } from "./exec.js";
import { readNvcc, readNvidiaGpus, readVulkan } from "./gpu-tools.js";
import {
  appleGpuShareBytes,
  parseCgroupMemoryLimit,
  parseNvidiaSmiCudaVersion,
  parseProcCpuinfo,
  parseProcMeminfo,
  parseRocmSmi,
  parseSysctl,
  parseVmStat,
  SYSCTL_KEYS,
  type SysctlReading,
  type VulkanSummary,
} from "./parsers.js";
import type {
  Accelerator,
  CommandResult,
  CpuInfo,
  GpuDevice,
  MemorySnapshot,
  ProbeOptions,
  RamInfo,
  ReadTextFile,
  RunCommand,
  SystemInfo,
  SystemProbe,
  ToolStatus,
} from "./types.js";

/** What the probe touches, injectable so tests run without the tools (and on any OS). */
export interface SystemProbeDeps {
  run: RunCommand;
  readFile: ReadTextFile;
  platform: NodeJS.Platform;
  arch: string;
  /** Node's view, used where the OS files/tools give nothing. */
  os: {
    cpus(): Array<{ model: string }>;
    totalmem(): number;
    freemem(): number;
    availableParallelism(): number;
  };
  now(): number;
  toolTimeoutMs: number;
}

export interface SystemProbeOptions extends Partial<SystemProbeDeps> {
  /** How long a reading stays good. Free memory moves, so keep it short (default 2000 ms). */
  ttlMs?: number;
}

export const DEFAULT_PROBE_TTL_MS = 2000;

/** Read once per process: these do not change while it runs. */
interface StaticPart {
  cpu: CpuInfo;
  cpuTool?: ToolStatus;
  vulkan?: VulkanSummary;
  vulkanTool: ToolStatus;
  nvccTool?: ToolStatus;
  cudaToolkitVersion?: string;
  cudaDriverVersion?: string;
}

interface GpuReading {
  gpus: GpuDevice[];
  tools: ToolStatus[];
  cudaDriverVersion?: string;
  cudaToolkitVersion?: string;
  vulkanVersion?: string;
}

/**
 * Reads the machine with the platform's own tools. Readings are cached for `ttlMs`, and concurrent callers share
 * one reading in flight. Facts that do not change while the process runs (CPU, CUDA versions, the Vulkan device
 * list, which tools exist) are read once; memory is re-read when the cache expires.
 */
export class DefaultSystemProbe implements SystemProbe {
  private readonly d: SystemProbeDeps;
  private readonly ttlMs: number;
  private cached?: { at: number; info: SystemInfo };
  private inflight?: Promise<SystemInfo>;
  private staticPart?: Promise<StaticPart>;
  /** Tools found missing once are not looked for again (a fork of a missing tool still costs a few ms). */
  private readonly missing = new Set<string>();

  constructor(options: SystemProbeOptions = {}) {
    this.d = {
      run: options.run ?? runCommand,
      readFile: options.readFile ?? readTextFile,
      platform: options.platform ?? process.platform,
      arch: options.arch ?? process.arch,
      os: options.os ?? {
        cpus: () => os.cpus(),
        totalmem: () => os.totalmem(),
        freemem: () => os.freemem(),
        availableParallelism: () => os.availableParallelism(),
      },
      now: options.now ?? Date.now,
      toolTimeoutMs: options.toolTimeoutMs ?? 4000,
    };
    this.ttlMs = options.ttlMs ?? DEFAULT_PROBE_TTL_MS;
  }

  async probe(options: ProbeOptions = {}): Promise<SystemInfo> {
    const now = this.d.now();
    if (!options.fresh && this.cached && now - this.cached.at < this.ttlMs) return this.cached.info;
    if (this.inflight) return this.inflight;
    const p = this.read().then(
      (info) => {
        this.cached = { at: info.takenAt, info };
        this.inflight = undefined;
        return info;
      },
      (e: unknown) => {
        this.inflight = undefined;
        throw e;
      },
    );
    this.inflight = p;
    return p;
  }

  async memory(options: ProbeOptions = {}): Promise<MemorySnapshot> {
    const info = await this.probe(options);
    return {
      ram: info.ram,
      gpus: info.gpus.map((g) => {
        const s: MemorySnapshot["gpus"][number] = {
          index: g.index,
          vendor: g.vendor,
          name: g.name,
          unifiedMemory: g.unifiedMemory,
        };
        if (g.totalBytes !== undefined) s.totalBytes = g.totalBytes;
        if (g.freeBytes !== undefined) s.freeBytes = g.freeBytes;
        return s;
      }),
      takenAt: info.takenAt,
    };
  }

  private async exec(cmd: string, args: readonly string[]): Promise<CommandResult> {
    if (this.missing.has(cmd))
      return {
        ok: false,
        stdout: "",
        stderr: "",
        exitCode: null,
        notFound: true,
        timedOut: false,
        error: `${cmd} is not installed`,
      };
    const r = await this.d.run(cmd, args, { timeoutMs: this.d.toolTimeoutMs });
    if (r.notFound) this.missing.add(cmd);
    return r;
  }

  private async read(): Promise<SystemInfo> {
    const stat = await (this.staticPart ??= this.readStatic());
    const darwin = this.d.platform === "darwin";
    const [ramAndSysctl, nvidia, amd] = await Promise.all([
      this.readRam(),
      darwin ? undefined : this.readNvidia(),
      darwin || this.d.platform === "win32" ? undefined : this.readRocm(),
    ]);
    const { ram, sysctl, tools: ramTools } = ramAndSysctl;
    const tools: ToolStatus[] = [...ramTools];
    if (stat.cpuTool) tools.push(stat.cpuTool);
    let gpus: GpuDevice[] = [];
    let cudaDriverVersion = stat.cudaDriverVersion;
    if (nvidia) {
      tools.push(...nvidia.tools);
      gpus.push(...nvidia.gpus);
      cudaDriverVersion ??= nvidia.cudaDriverVersion;
    }
    if (stat.nvccTool) tools.push(stat.nvccTool);
    if (amd) {
      tools.push(...amd.tools);
      gpus.push(...amd.gpus);
    }
    if (darwin && sysctl?.appleSilicon && sysctl.memBytes !== undefined) {
      const share = appleGpuShareBytes(sysctl.memBytes, sysctl.wiredLimitBytes);
      gpus.push({
        index: 0,
        vendor: "apple",
        name: `${sysctl.cpuModel ?? "Apple Silicon"} GPU`,
        source: "sysctl",
        totalBytes: share,
        // Unified memory: what the GPU can still take is bounded by free RAM.
        freeBytes: Math.min(share, ram.availableBytes),
        unifiedMemory: true,
      });
    }
    tools.push(stat.vulkanTool);
    if (stat.vulkan) {
      // Vulkan lists the same boards nvidia-smi/rocm-smi already described; add only the others (e.g. an Intel iGPU).
      const known = gpus.map((g) => normName(g.name));
      const knownVendors = new Set(gpus.map((g) => g.vendor));
      for (const v of stat.vulkan.gpus) {
        const n = normName(v.name);
        if (known.some((k) => k.includes(n) || n.includes(k))) continue;
        if (knownVendors.has(v.vendor) && v.vendor !== "other") continue;
        gpus.push(v);
      }
    }
    gpus = gpus.filter((g, i) => gpus.findIndex((o) => o.source === g.source && o.index === g.index) === i);
    const accelerator = pickAccelerator(gpus);
    const notes: string[] = [];
    if (gpus.length === 0) {
      const absent = tools
        .filter((t) => !t.present && ["nvidia-smi", "rocm-smi", "vulkaninfo"].includes(t.name))
        .map((t) => t.name);
      notes.push(
        darwin
          ? "No GPU found: this Mac has no Apple Silicon GPU that llama.cpp can use; models run on the CPU."
          : `No GPU found${absent.length > 0 ? ` (${absent.join(", ")} not installed)` : ""}; models run on the CPU.`,
      );
    }
    for (const t of tools) if (t.present && t.error) notes.push(`${t.name}: ${t.error}`);
    if (ram.cgroupLimitBytes !== undefined)
      notes.push("A container memory limit applies; budgets use it instead of the machine's RAM.");
    const info: SystemInfo = {
      platform: this.d.platform,
      cpu: stat.cpu,
      ram,
      gpus,
      accelerator,
      tools,
      notes,
      takenAt: this.d.now(),
    };
    if (cudaDriverVersion) info.cudaDriverVersion = cudaDriverVersion;
    if (stat.cudaToolkitVersion) info.cudaToolkitVersion = stat.cudaToolkitVersion;
    if (stat.vulkan?.instanceVersion) info.vulkanVersion = stat.vulkan.instanceVersion;
    return info;
  }

  private async readStatic(): Promise<StaticPart> {
    const d = this.d;
    const cpu: CpuInfo = {
      model: d.os.cpus()[0]?.model?.trim() || "unknown",
      arch: d.arch,
      logicalCores: d.os.cpus().length,
      availableCores: d.os.availableParallelism(),
      simd: [],
    };
    let cpuTool: ToolStatus | undefined;
    if (d.platform === "linux") {
      const text = await d.readFile("/proc/cpuinfo");
      cpuTool = { name: "/proc/cpuinfo", present: text !== undefined };
      if (text !== undefined) {
        const r = parseProcCpuinfo(text);
        if (r.model) cpu.model = r.model;
        if (r.logicalCores > 0 && cpu.logicalCores === 0) cpu.logicalCores = r.logicalCores;
        if (r.physicalCores !== undefined) cpu.physicalCores = r.physicalCores;
        cpu.simd = r.simd;
      }
    } else if (d.platform === "darwin") {
      const r = await this.sysctl();
      if (r.reading) {
        if (r.reading.cpuModel) cpu.model = r.reading.cpuModel;
        if (r.reading.physicalCores !== undefined) cpu.physicalCores = r.reading.physicalCores;
        cpu.simd = r.reading.simd;
      }
    }
    const run: RunCommand = (c, a) => this.exec(c, a);
    const { summary: vulkan, tool: vulkanTool } = await readVulkan(run);
    let nvccTool: ToolStatus | undefined;
    let cudaToolkitVersion: string | undefined;
    let cudaDriverVersion: string | undefined;
    if (d.platform !== "darwin") {
      const [nvcc, smi] = await Promise.all([readNvcc(run, ["nvcc"]), this.exec("nvidia-smi", [])]);
      nvccTool = nvcc.tool;
      cudaToolkitVersion = nvcc.version;
      if (smi.ok) cudaDriverVersion = parseNvidiaSmiCudaVersion(smi.stdout);
    }
    const out: StaticPart = { cpu, vulkanTool };
    if (vulkan) out.vulkan = vulkan;
    if (nvccTool) out.nvccTool = nvccTool;
    if (cudaToolkitVersion) out.cudaToolkitVersion = cudaToolkitVersion;
    if (cudaDriverVersion) out.cudaDriverVersion = cudaDriverVersion;
    if (cpuTool) out.cpuTool = cpuTool;
    return out;
  }

  private async sysctl(): Promise<{ reading?: SysctlReading; tool: ToolStatus }> {
    const r = await this.exec("sysctl", SYSCTL_KEYS);
    // Unknown keys (e.g. iogpu.wired_limit_mb on older macOS) make sysctl exit non-zero after printing the rest.
    if (r.notFound) return { tool: { name: "sysctl", present: false } };
    const reading = parseSysctl(r.stdout);
    const tool: ToolStatus = { name: "sysctl", present: true };
    if (reading.memBytes === undefined) tool.error = r.error ?? "no hw.memsize in sysctl output";
    return { reading, tool };
  }

  private async readRam(): Promise<{ ram: RamInfo; sysctl?: SysctlReading; tools: ToolStatus[] }> {
    const d = this.d;
    const fallback: RamInfo = { totalBytes: d.os.totalmem(), availableBytes: d.os.freemem(), source: "os" };
    if (d.platform === "linux") {
      const [text, v2, v1] = await Promise.all([
        d.readFile("/proc/meminfo"),
        d.readFile("/sys/fs/cgroup/memory.max"),
        d.readFile("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
      ]);
      const tools: ToolStatus[] = [{ name: "/proc/meminfo", present: text !== undefined }];
      const m = text !== undefined ? parseProcMeminfo(text) : undefined;
      const ram: RamInfo = m ? { ...m, source: "proc-meminfo" } : fallback;
      const limit = parseCgroupMemoryLimit(v2, ram.totalBytes) ?? parseCgroupMemoryLimit(v1, ram.totalBytes);
      if (limit !== undefined) ram.cgroupLimitBytes = limit;
      return { ram, tools };
    }
    if (d.platform === "darwin") {
      const [s, vm] = await Promise.all([this.sysctl(), this.exec("vm_stat", [])]);
      const tools: ToolStatus[] = [s.tool, { name: "vm_stat", present: !vm.notFound }];
      const ram: RamInfo = { ...fallback };
      if (s.reading?.memBytes !== undefined) {
        ram.totalBytes = s.reading.memBytes;
        ram.source = "sysctl";
      }
      const avail = vm.ok ? parseVmStat(vm.stdout) : undefined;
      if (avail !== undefined) ram.availableBytes = Math.min(avail, ram.totalBytes);
      const out: { ram: RamInfo; sysctl?: SysctlReading; tools: ToolStatus[] } = { ram, tools };
      if (s.reading) out.sysctl = s.reading;
      return out;
    }
    return { ram: fallback, tools: [] };
  }

  private async readNvidia(): Promise<GpuReading> {
    const { gpus, tool } = await readNvidiaGpus((c, a) => this.exec(c, a));
    return { gpus, tools: [tool] };
  }

  private async readRocm(): Promise<GpuReading> {
    const mem = await this.exec("rocm-smi", ["--showmeminfo", "vram", "--json"]);
    const tool: ToolStatus = { name: "rocm-smi", present: !mem.notFound };
    if (mem.notFound) return { gpus: [], tools: [tool] };
    const prod = await this.exec("rocm-smi", ["--showproductname", "--showdriverversion", "--json"]);
    const gpus = parseRocmSmi(mem.stdout, prod.stdout);
    if (gpus.length === 0) tool.error = mem.error ?? "no GPU listed";
    return { gpus, tools: [tool] };
  }
}

function normName(s: string): string {
  return s
    .toLowerCase()
    .replace(/\(.*?\)/g, "")
    .replace(/\b(nvidia|amd|geforce|radeon|corporation|inc\.?)\b/g, "")
    .replace(/[^a-z0-9]+/g, "");
}

/** The accelerator llama.cpp would most likely use: a CUDA board, then ROCm, Metal, Vulkan, else the CPU. */
export function pickAccelerator(gpus: readonly GpuDevice[]): Accelerator {
  if (gpus.some((g) => g.source === "nvidia-smi")) return "cuda";
  if (gpus.some((g) => g.source === "rocm-smi")) return "rocm";
  if (gpus.some((g) => g.vendor === "apple")) return "metal";
  if (gpus.some((g) => g.source === "vulkaninfo")) return "vulkan";
  return "cpu";
}

let shared: DefaultSystemProbe | undefined;
/** One probe per process, so every caller shares the cache. */
/**
 * The CPU's features when models run on it (no GPU found), for the estimate's extra CPU buffers (AMX,
 * CPU_REPACK: src/models/repack.ts); undefined with a GPU (a GPU build uses none) or when the probe cannot tell.
 */
export async function cpuFeaturesForEstimates(probe: Pick<SystemProbe, "probe">): Promise<string[] | undefined> {
  const info = await probe.probe().catch(() => undefined);
  return info && info.gpus.length === 0 && info.cpu.simd.length > 0 ? [...info.cpu.simd] : undefined;
}

export function defaultSystemProbe(): DefaultSystemProbe {
  return (shared ??= new DefaultSystemProbe());
}
