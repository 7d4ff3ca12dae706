/**
 * What the machine offers to llama.cpp: CPU, RAM and GPUs. The `SystemProbe` port is what the rest of gglib uses
 * (the proxy's memory budget, `gglib system`, `gglib models fit`); `DefaultSystemProbe` (probe.ts) is the real one.
 * Every reading a tool could not give is simply absent: a missing tool is "not present", never an error.
 */

/** CPU features that matter to llama.cpp, named the way llama.cpp's `system_info` line names them. */
export type SimdFlag =
  | "SSE3"
  | "SSSE3"
  | "AVX"
  | "AVX_VNNI"
  | "AVX2"
  | "F16C"
  | "FMA"
  | "BMI2"
  | "AVX512"
  | "AVX512_VBMI"
  | "AVX512_VNNI"
  | "AVX512_BF16"
  | "AMX_INT8"
  | "NEON"
  | "ARM_FMA"
  | "FP16_VA"
  | "DOTPROD"
  | "MATMUL_INT8"
  | "SVE"
  | "SME";

export interface CpuInfo {
  /** e.g. "AMD EPYC 7B13", "Apple M2 Pro". */
  model: string;
  /** Node's `process.arch`: x64, arm64, … */
  arch: string;
  /** Logical processors the OS knows (`os.cpus().length`). */
  logicalCores: number;
  /** Physical cores, when the platform tells (hyper-threads not counted). */
  physicalCores?: number;
  /** Processors this process may use (affinity; what `nproc` prints). */
  availableCores: number;
  simd: SimdFlag[];
}

export interface RamInfo {
  totalBytes: number;
  /** Memory a new process can get without swapping (Linux `MemAvailable`). */
  availableBytes: number;
  /** Where the numbers came from. */
  source: "proc-meminfo" | "sysctl" | "os";
  /** A cgroup (container) memory limit lower than the machine's RAM, when one applies. */
  cgroupLimitBytes?: number;
}

export type GpuVendor = "nvidia" | "amd" | "apple" | "intel" | "other";
export type GpuSource = "nvidia-smi" | "rocm-smi" | "sysctl" | "vulkaninfo";

export interface GpuDevice {
  /** The tool's own index (nvidia-smi index, rocm card number, vulkan GPU number). */
  index: number;
  vendor: GpuVendor;
  name: string;
  source: GpuSource;
  /** Memory the GPU may use. For Apple Silicon: the share of unified memory Metal allows. */
  totalBytes?: number;
  usedBytes?: number;
  freeBytes?: number;
  /** True when the GPU shares system RAM (Apple Silicon, integrated GPUs). */
  unifiedMemory: boolean;
  driverVersion?: string;
  /** NVIDIA compute capability ("9.0") or AMD gfx target ("gfx90a"), when known. */
  architecture?: string;
  /** Vulkan device type: discrete, integrated, virtual. */
  deviceType?: string;
}

export type ToolName =
  "nvidia-smi" | "nvcc" | "rocm-smi" | "vulkaninfo" | "sysctl" | "vm_stat" | "/proc/cpuinfo" | "/proc/meminfo";

export interface ToolStatus {
  name: ToolName;
  present: boolean;
  /** Why a present tool gave nothing usable (non-zero exit, timeout, unparsable output). */
  error?: string;
}

/** The best accelerator llama.cpp could use here, in the order gglib prefers them. */
export type Accelerator = "cuda" | "rocm" | "metal" | "vulkan" | "cpu";

export interface SystemInfo {
  /** Node's `process.platform`. */
  platform: string;
  cpu: CpuInfo;
  ram: RamInfo;
  gpus: GpuDevice[];
  /** The CUDA version the NVIDIA driver supports (nvidia-smi's header). */
  cudaDriverVersion?: string;
  /** The CUDA toolkit installed (`nvcc --version`). */
  cudaToolkitVersion?: string;
  /** Vulkan instance version (`vulkaninfo --summary`). */
  vulkanVersion?: string;
  accelerator: Accelerator;
  tools: ToolStatus[];
  /** Plain-language remarks, e.g. "No GPU found: …". */
  notes: string[];
  /** Epoch ms of the reading. */
  takenAt: number;
}

/** Free memory only: cheap enough for the proxy to ask before every load (cached ~2 s). */
export interface MemorySnapshot {
  ram: RamInfo;
  gpus: Array<Pick<GpuDevice, "index" | "vendor" | "name" | "totalBytes" | "freeBytes" | "unifiedMemory">>;
  takenAt: number;
}

export interface ProbeOptions {
  /** Ignore the cache and read again. */
  fresh?: boolean;
}

/** The port. */
export interface SystemProbe {
  /** Everything: CPU, RAM, GPUs, tool status. Cached briefly (free memory changes). */
  probe(options?: ProbeOptions): Promise<SystemInfo>;
  /** RAM and GPU memory readings only (the proxy's budget). */
  memory(options?: ProbeOptions): Promise<MemorySnapshot>;
}

/** What running an external tool gave. Never throws: a missing tool is `notFound`. */
export interface CommandResult {
  /** Exit code 0. */
  ok: boolean;
  stdout: string;
  stderr: string;
  exitCode: number | null;
  /** The executable does not exist (ENOENT) or cannot be run (EACCES). */
  notFound: boolean;
  timedOut: boolean;
  /** A short description of what went wrong, when it did. */
  error?: string;
}

export type RunCommand = (
  cmd: string,
  args: readonly string[],
  options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv },
) => Promise<CommandResult>;
/** Reads a text file; undefined when it does not exist or cannot be read. */
export type ReadTextFile = (path: string) => Promise<string | undefined>;
