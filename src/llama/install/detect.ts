/**
 * What can this machine build or run? Backend detection (Metal on Apple Silicon, CUDA when the toolkit and an
 * NVIDIA GPU are both there, Vulkan when its SDK/headers, glslc and a GPU device are there, else CPU) and the
 * build-tool check with install hints for the user's OS.
 *
 * Everything goes through a `Probe` so the logic can be tested with fake tool folders on PATH.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { arch as osArch, platform as osPlatform } from "node:os";
import { join } from "node:path";
import { which } from "../../process/which.js";
import { runCommand } from "../../system/exec.js";
import { nvccLocations, readNvcc, readNvidiaGpus, readVulkan } from "../../system/gpu-tools.js";
import type { RunCommand } from "../../system/types.js";
import type { Backend } from "./source-build.js";

export type BackendChoice = Backend | "auto";
export const BACKENDS: readonly Backend[] = ["cpu", "cuda", "vulkan", "metal"];

/** The machine as the build sees it. GPU tools are read with src/system's readers, through `run`. */
export interface Probe {
  platform: NodeJS.Platform;
  arch: string;
  env: NodeJS.ProcessEnv;
  /** Absolute path of an executable on PATH (or undefined). */
  which(cmd: string): Promise<string | undefined>;
  /** Runs a tool; never rejects (a missing one is `notFound`). */
  run: RunCommand;
  exists(path: string): boolean;
  listDir(path: string): string[];
  readText(path: string): string | undefined;
}

/** Build tools can be slow to answer the first time (a cold compiler cache). */
const BUILD_TOOL_TIMEOUT_MS = 15_000;

export function systemProbe(env: NodeJS.ProcessEnv = process.env): Probe {
  return {
    platform: osPlatform(),
    arch: osArch(),
    env,
    which: (cmd) => which(cmd, env),
    run: (cmd, args, o) => runCommand(cmd, args, { timeoutMs: BUILD_TOOL_TIMEOUT_MS, ...o, env }),
    exists: (p) => existsSync(p),
    listDir: (p) => {
      try {
        return readdirSync(p);
      } catch {
        return [];
      }
    },
    readText: (p) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return undefined;
      }
    },
  };
}

export interface CudaInfo {
  nvcc?: string;
  /** "13.0" */
  version?: string;
  /** `nvidia-smi -L` lines, or device ids from /proc. */
  gpus: string[];
}

export interface VulkanInfo {
  glslc?: string;
  /** Where the headers/SDK were found. */
  sdk?: string;
  /** GPU device names from `vulkaninfo --summary` (undefined when vulkaninfo is not installed). */
  devices?: string[];
}

export interface BackendDetection {
  backend: Backend;
  /** Why, in sentences a user can act on. */
  reasons: string[];
  cuda: CudaInfo;
  vulkan: VulkanInfo;
}

export async function detectCuda(p: Probe): Promise<CudaInfo> {
  const onPath = await p.which("nvcc");
  const nvcc = await readNvcc(p.run, [
    ...(onPath ? [onPath] : []),
    ...nvccLocations(p.env, p.platform).filter((c) => p.exists(c)),
  ]);
  const gpus = (await readNvidiaGpus(p.run)).gpus.map((g) => `GPU ${g.index}: ${g.name}`);
  if (gpus.length === 0 && p.platform === "linux") {
    for (const id of p.listDir("/proc/driver/nvidia/gpus")) gpus.push(`GPU at PCI ${id}`);
  }
  return { ...(nvcc.path ? { nvcc: nvcc.path } : {}), ...(nvcc.version ? { version: nvcc.version } : {}), gpus };
}

export async function detectVulkan(p: Probe): Promise<VulkanInfo> {
  const glslc =
    (await p.which("glslc")) ?? (p.env.VULKAN_SDK ? existing(p, join(p.env.VULKAN_SDK, "bin", "glslc")) : undefined);
  const sdkCandidates = [
    p.env.VULKAN_SDK ? join(p.env.VULKAN_SDK, "include", "vulkan", "vulkan.h") : undefined,
    "/usr/include/vulkan/vulkan.h",
    "/usr/local/include/vulkan/vulkan.h",
    "/opt/homebrew/include/vulkan/vulkan.h",
  ];
  const sdk = sdkCandidates.find((c): c is string => c !== undefined && p.exists(c));
  const vk = await readVulkan(p.run);
  const devices = vk.summary?.gpus.map((g) => g.name);
  return { ...(glslc ? { glslc } : {}), ...(sdk ? { sdk } : {}), ...(devices ? { devices } : {}) };
}

function existing(p: Probe, path: string): string | undefined {
  return p.exists(path) ? path : undefined;
}

/** Picks the best backend for this machine; `reasons` explains the choice and what would enable a better one. */
export async function detectBackend(p: Probe = systemProbe()): Promise<BackendDetection> {
  const reasons: string[] = [];
  const cuda = p.platform === "darwin" ? { gpus: [] } : await detectCuda(p);
  const vulkan = p.platform === "darwin" ? {} : await detectVulkan(p);
  if (p.platform === "darwin") {
    if (p.arch === "arm64") return { backend: "metal", reasons: ["Apple Silicon: Metal"], cuda, vulkan };
    reasons.push("Intel Mac: CPU (llama.cpp's own Intel macOS builds leave Metal off)");
    return { backend: "cpu", reasons, cuda, vulkan };
  }
  if (cuda.nvcc && cuda.gpus.length > 0) {
    reasons.push(`CUDA ${cuda.version ?? "toolkit"} (${cuda.nvcc}) and ${cuda.gpus.length} NVIDIA GPU(s): CUDA`);
    return { backend: "cuda", reasons, cuda, vulkan };
  }
  if (cuda.nvcc)
    reasons.push(
      `CUDA ${cuda.version ?? "toolkit"} is installed (${cuda.nvcc}) but no NVIDIA GPU is visible; not using CUDA (force it with --backend cuda)`,
    );
  else if (cuda.gpus.length > 0)
    reasons.push(
      "An NVIDIA GPU is present but the CUDA toolkit (nvcc) is not; install it for a CUDA build, or use --backend vulkan",
    );
  const vulkanGpu = vulkan.devices === undefined || vulkan.devices.length > 0;
  if (vulkan.glslc && vulkan.sdk && vulkanGpu) {
    reasons.push(
      `Vulkan SDK (${vulkan.sdk}) and glslc${vulkan.devices ? ` with GPU ${vulkan.devices.join(", ")}` : ""}: Vulkan`,
    );
    return { backend: "vulkan", reasons, cuda, vulkan };
  }
  if (vulkan.glslc && vulkan.sdk && !vulkanGpu)
    reasons.push("Vulkan SDK found but vulkaninfo lists no GPU; not using Vulkan");
  else if (vulkan.glslc || vulkan.sdk)
    reasons.push(`Vulkan is incomplete (${vulkan.glslc ? "headers" : "glslc"} missing); not using Vulkan`);
  reasons.push("CPU");
  return { backend: "cpu", reasons, cuda, vulkan };
}

// ---------------------------------------------------------------------------------------------------------------
// Build tools

export interface Dependency {
  name: string;
  found: boolean;
  path?: string;
  version?: string;
  /** Why it is needed. */
  purpose: string;
  /** How to install it on this OS. */
  hint?: string;
  /** Found but unusable (e.g. too old). */
  problem?: string;
}

export type OsFamily = "debian" | "fedora" | "arch" | "alpine" | "suse" | "macos" | "windows" | "other";

export function osFamily(p: Probe): OsFamily {
  if (p.platform === "darwin") return "macos";
  if (p.platform === "win32") return "windows";
  const text = p.readText("/etc/os-release") ?? "";
  const ids = `${/^ID=(.*)$/m.exec(text)?.[1] ?? ""} ${/^ID_LIKE=(.*)$/m.exec(text)?.[1] ?? ""}`
    .replace(/"/g, "")
    .toLowerCase();
  if (/debian|ubuntu/.test(ids)) return "debian";
  if (/fedora|rhel|centos/.test(ids)) return "fedora";
  if (/arch/.test(ids)) return "arch";
  if (/alpine/.test(ids)) return "alpine";
  if (/suse/.test(ids)) return "suse";
  return "other";
}

const HINTS: Record<OsFamily, Record<"cmake" | "compiler" | "git" | "nvcc" | "vulkan" | "xcode", string>> = {
  debian: {
    cmake: "sudo apt-get install cmake",
    compiler: "sudo apt-get install g++",
    git: "sudo apt-get install git",
    nvcc: "sudo apt-get install nvidia-cuda-toolkit (or NVIDIA's CUDA repository)",
    vulkan: "sudo apt-get install libvulkan-dev glslc",
    xcode: "",
  },
  fedora: {
    cmake: "sudo dnf install cmake",
    compiler: "sudo dnf install gcc-c++",
    git: "sudo dnf install git",
    nvcc: "install the CUDA toolkit from NVIDIA's repository (dnf install cuda-toolkit)",
    vulkan: "sudo dnf install vulkan-headers vulkan-loader-devel glslc",
    xcode: "",
  },
  arch: {
    cmake: "sudo pacman -S cmake",
    compiler: "sudo pacman -S gcc",
    git: "sudo pacman -S git",
    nvcc: "sudo pacman -S cuda",
    vulkan: "sudo pacman -S vulkan-headers vulkan-icd-loader shaderc",
    xcode: "",
  },
  alpine: {
    cmake: "apk add cmake make",
    compiler: "apk add g++",
    git: "apk add git",
    nvcc: "CUDA is not packaged for Alpine; use --backend cpu",
    vulkan: "apk add vulkan-headers vulkan-loader-dev shaderc",
    xcode: "",
  },
  suse: {
    cmake: "sudo zypper install cmake",
    compiler: "sudo zypper install gcc-c++",
    git: "sudo zypper install git",
    nvcc: "install the CUDA toolkit from NVIDIA's repository",
    vulkan: "sudo zypper install vulkan-devel shaderc",
    xcode: "",
  },
  macos: {
    cmake: "brew install cmake",
    compiler: "xcode-select --install",
    git: "xcode-select --install",
    nvcc: "CUDA is not available on macOS; use --backend metal",
    vulkan: "brew install vulkan-headers shaderc molten-vk",
    xcode: "xcode-select --install",
  },
  windows: {
    cmake: "winget install Kitware.CMake",
    compiler: "install Visual Studio Build Tools with the C++ workload",
    git: "winget install Git.Git",
    nvcc: "install the CUDA toolkit from developer.nvidia.com",
    vulkan: "install the Vulkan SDK from vulkan.lunarg.com",
    xcode: "",
  },
  other: {
    cmake: "install cmake (3.14 or newer) with your package manager",
    compiler: "install a C++17 compiler (g++ or clang++)",
    git: "install git",
    nvcc: "install the CUDA toolkit",
    vulkan: "install the Vulkan headers and glslc (shaderc)",
    xcode: "",
  },
};

function firstLine(s: string): string {
  return (
    s
      .split("\n")
      .find((l) => l.trim())
      ?.trim() ?? ""
  );
}

/** cmake, a C++ compiler, git (when the source is a bundle or URL) and the backend's toolchain. */
export async function checkDependencies(
  opts: { backend: Backend; needGit: boolean },
  p: Probe = systemProbe(),
): Promise<Dependency[]> {
  const fam = osFamily(p);
  const h = HINTS[fam];
  const deps: Dependency[] = [];

  const cmake = await p.which("cmake");
  const cmakeDep: Dependency = {
    name: "cmake",
    found: false,
    purpose: "configures and drives the build",
    hint: h.cmake,
  };
  if (cmake) {
    const r = await p.run(cmake, ["--version"]);
    const v = /cmake version\s+(\d+)\.(\d+)(?:\.(\d+))?/.exec(r.stdout);
    cmakeDep.found = r.ok;
    cmakeDep.path = cmake;
    if (v) {
      cmakeDep.version = `${v[1]}.${v[2]}${v[3] ? "." + v[3] : ""}`;
      if (Number(v[1]) < 3 || (Number(v[1]) === 3 && Number(v[2]) < 14))
        cmakeDep.problem = `cmake ${cmakeDep.version} is too old (llama.cpp needs 3.14+)`;
    }
  }
  deps.push(cmakeDep);

  const compilers = [
    p.env.CXX,
    ...(p.platform === "win32"
      ? ["cl", "g++", "clang++"]
      : p.platform === "darwin"
        ? ["clang++", "c++", "g++"]
        : ["c++", "g++", "clang++"]),
  ].filter((c): c is string => Boolean(c));
  const cxxDep: Dependency = { name: "C++ compiler", found: false, purpose: "compiles llama.cpp", hint: h.compiler };
  for (const c of compilers) {
    const path = await p.which(c.split(" ")[0]!);
    if (!path) continue;
    const r = await p.run(path, c === "cl" ? [] : ["--version"]);
    if (r.notFound || r.timedOut) continue;
    cxxDep.found = true;
    cxxDep.path = path;
    cxxDep.version = firstLine(r.stdout + "\n" + r.stderr);
    break;
  }
  deps.push(cxxDep);

  if (opts.needGit) {
    const git = await p.which("git");
    const r = git ? await p.run(git, ["--version"]) : undefined;
    deps.push({
      name: "git",
      found: r?.ok === true,
      ...(git ? { path: git } : {}),
      ...(r ? { version: firstLine(r.stdout).replace(/^git version\s*/, "") } : {}),
      purpose: "clones the llama.cpp source (bundle or URL)",
      hint: h.git,
    });
  }

  if (opts.backend === "cuda") {
    const cuda = await detectCuda(p);
    deps.push({
      name: "nvcc (CUDA toolkit)",
      found: Boolean(cuda.nvcc),
      ...(cuda.nvcc ? { path: cuda.nvcc } : {}),
      ...(cuda.version ? { version: cuda.version } : {}),
      purpose: "compiles the CUDA kernels",
      hint: h.nvcc,
    });
  } else if (opts.backend === "vulkan") {
    const vk = await detectVulkan(p);
    deps.push({
      name: "glslc",
      found: Boolean(vk.glslc),
      ...(vk.glslc ? { path: vk.glslc } : {}),
      purpose: "compiles the Vulkan shaders",
      hint: h.vulkan,
    });
    deps.push({
      name: "Vulkan headers",
      found: Boolean(vk.sdk),
      ...(vk.sdk ? { path: vk.sdk } : {}),
      purpose: "the Vulkan API",
      hint: h.vulkan,
    });
  } else if (opts.backend === "metal" && p.platform === "darwin") {
    const xcrun = await p.which("xcrun");
    deps.push({
      name: "xcrun (Xcode tools)",
      found: Boolean(xcrun),
      ...(xcrun ? { path: xcrun } : {}),
      purpose: "compiles the Metal shaders",
      hint: h.xcode,
    });
  }
  return deps;
}

/** Lines for a terminal: ✓/✗ per tool, then how to install what is missing. */
export function formatDependencies(deps: readonly Dependency[]): string {
  const lines = deps.map((d) => {
    const ok = d.found && !d.problem;
    const what = d.found ? `${d.version ?? ""}${d.path ? ` (${d.path})` : ""}`.trim() : "not found";
    return `  ${ok ? "✓" : "✗"} ${d.name}: ${d.problem ?? what}`;
  });
  const missing = deps.filter((d) => !d.found || d.problem);
  if (missing.length > 0) {
    lines.push("", "To install what is missing:");
    for (const d of missing) if (d.hint) lines.push(`  ${d.hint}`);
  }
  return lines.join("\n");
}
