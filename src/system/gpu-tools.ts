/**
 * One reading per GPU tool, shared by the machine probe (probe.ts: `gglib system`, memory budgets) and the
 * llama.cpp build's backend detection (src/llama/install/detect.ts), so both see the same GPUs, toolkit and
 * Vulkan devices. Each takes the command runner to use; the parsing is parsers.ts's (tested on recorded output).
 */
import {
  NVIDIA_SMI_QUERY_ARGS,
  parseNvccVersion,
  parseNvidiaSmiQuery,
  parseVulkaninfoSummary,
  type VulkanSummary,
} from "./parsers.js";
import type { GpuDevice, RunCommand, ToolStatus } from "./types.js";

/** NVIDIA GPUs from `nvidia-smi --query-gpu=…`; a present tool that lists none carries why in `tool.error`. */
export async function readNvidiaGpus(run: RunCommand): Promise<{ gpus: GpuDevice[]; tool: ToolStatus }> {
  const r = await run("nvidia-smi", NVIDIA_SMI_QUERY_ARGS);
  const tool: ToolStatus = { name: "nvidia-smi", present: !r.notFound };
  if (r.notFound) return { gpus: [], tool };
  const gpus = r.ok ? parseNvidiaSmiQuery(r.stdout) : [];
  // "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver" → present, but no GPU.
  if (!r.ok) tool.error = r.error ?? "failed";
  else if (gpus.length === 0) tool.error = "no GPU listed";
  return { gpus, tool };
}

/** `vulkaninfo --summary`: its GPUs (CPU devices such as llvmpipe left out) and instance version. */
export async function readVulkan(run: RunCommand): Promise<{ summary?: VulkanSummary; tool: ToolStatus }> {
  const r = await run("vulkaninfo", ["--summary"]);
  const tool: ToolStatus = { name: "vulkaninfo", present: !r.notFound };
  if (r.notFound) return { tool };
  // vulkaninfo exits non-zero when no driver is installed (ERROR_INCOMPATIBLE_DRIVER) yet prints a summary.
  const summary = parseVulkaninfoSummary(r.stdout);
  if (!r.ok && summary.gpus.length === 0) tool.error = r.error ?? "no Vulkan devices";
  return { summary, tool };
}

/** Where a CUDA toolkit's nvcc may be besides PATH: CUDA_PATH, CUDA_HOME, the usual Linux prefixes. */
export function nvccLocations(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string[] {
  const sep = platform === "win32" ? "\\" : "/";
  return [
    env.CUDA_PATH ? [env.CUDA_PATH, "bin", "nvcc"].join(sep) : undefined,
    env.CUDA_HOME ? [env.CUDA_HOME, "bin", "nvcc"].join(sep) : undefined,
    platform === "linux" ? "/usr/local/cuda/bin/nvcc" : undefined,
    platform === "linux" ? "/opt/cuda/bin/nvcc" : undefined,
  ].filter((c): c is string => c !== undefined);
}

/** The first of `candidates` that runs `--version`: its path and CUDA release ("13.0"). */
export async function readNvcc(
  run: RunCommand,
  candidates: readonly string[],
): Promise<{ path?: string; version?: string; tool?: ToolStatus }> {
  for (const c of candidates) {
    const r = await run(c, ["--version"]);
    if (r.notFound || r.timedOut) continue;
    const version = parseNvccVersion(r.stdout + r.stderr);
    return { path: c, ...(version ? { version } : {}), tool: { name: "nvcc", present: true } };
  }
  return {};
}
