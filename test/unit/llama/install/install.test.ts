import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chooseAsset, cudartAsset, type Release } from "../../../../src/llama/install/prebuilt.js";
import {
  checkDependencies,
  detectBackend,
  formatDependencies,
  osFamily,
  type Probe,
} from "../../../../src/llama/install/detect.js";
import { commitFromVersion, readInstallRecord } from "../../../../src/llama/install/record.js";

const release = JSON.parse(
  readFileSync(new URL("../../../fixtures/releases/latest.json", import.meta.url), "utf8"),
) as Release;

describe("prebuilt asset choice (llama.cpp's release asset names)", () => {
  const pick = (os: NodeJS.Platform, arch: string, backend: "cpu" | "cuda" | "vulkan" | "metal", cuda?: string) =>
    chooseAsset(release, { os, arch }, backend, cuda)?.name;

  test("Linux", () => {
    assert.equal(pick("linux", "x64", "cpu"), "llama-b9999-bin-ubuntu-x64.tar.gz");
    assert.equal(pick("linux", "arm64", "cpu"), "llama-b9999-bin-ubuntu-arm64.tar.gz");
    assert.equal(pick("linux", "x64", "vulkan"), "llama-b9999-bin-ubuntu-vulkan-x64.tar.gz");
    assert.equal(pick("linux", "x64", "cuda"), undefined, "llama.cpp publishes no Linux CUDA build");
    assert.equal(pick("linux", "arm64", "vulkan"), undefined);
    assert.equal(pick("linux", "s390x", "cpu"), undefined, "not an arch we map");
  });

  test("macOS", () => {
    assert.equal(pick("darwin", "arm64", "metal"), "llama-b9999-bin-macos-arm64.tar.gz");
    assert.equal(pick("darwin", "x64", "cpu"), "llama-b9999-bin-macos-x64.tar.gz");
    assert.equal(pick("darwin", "arm64", "vulkan"), undefined);
  });

  test("Windows, with the CUDA build matching the toolkit's major version", () => {
    assert.equal(pick("win32", "x64", "cpu"), "llama-b9999-bin-win-cpu-x64.zip");
    assert.equal(pick("win32", "arm64", "cpu"), "llama-b9999-bin-win-cpu-arm64.zip");
    assert.equal(pick("win32", "x64", "vulkan"), "llama-b9999-bin-win-vulkan-x64.zip");
    assert.equal(pick("win32", "x64", "cuda", "12.6"), "llama-b9999-bin-win-cuda-12.4-x64.zip");
    assert.equal(pick("win32", "x64", "cuda", "13.0"), "llama-b9999-bin-win-cuda-13.1-x64.zip");
    assert.equal(pick("win32", "x64", "cuda"), "llama-b9999-bin-win-cuda-13.1-x64.zip", "unknown toolkit: the newest");
    const main = chooseAsset(release, { os: "win32", arch: "x64" }, "cuda", "12.4")!;
    assert.equal(cudartAsset(release, main)?.name, "cudart-llama-bin-win-cuda-12.4-x64.zip");
  });
});

/** A machine described by data: which tools exist and what they print. */
function probe(p: {
  platform?: NodeJS.Platform;
  arch?: string;
  tools?: Record<string, { stdout?: string; stderr?: string; code?: number }>;
  files?: string[];
  dirs?: Record<string, string[]>;
  osRelease?: string;
  env?: NodeJS.ProcessEnv;
}): Probe {
  const tools = p.tools ?? {};
  const path = (name: string) => `/usr/bin/${name}`;
  return {
    platform: p.platform ?? "linux",
    arch: p.arch ?? "x64",
    env: p.env ?? {},
    which: async (cmd) => (tools[cmd] ? path(cmd) : undefined),
    run: async (cmd) => {
      const name = cmd.split("/").pop()!;
      const t = tools[name];
      if (!t) return { ok: false, stdout: "", stderr: "", exitCode: null, notFound: true, timedOut: false };
      const code = t.code ?? 0;
      return {
        ok: code === 0,
        stdout: t.stdout ?? "",
        stderr: t.stderr ?? "",
        exitCode: code,
        notFound: false,
        timedOut: false,
      };
    },
    exists: (f) => (p.files ?? []).includes(f) || Object.keys(tools).some((t) => path(t) === f),
    listDir: (d) => p.dirs?.[d] ?? [],
    readText: (f) => (f === "/etc/os-release" ? p.osRelease : undefined),
  };
}

const fixture = (name: string) => readFileSync(new URL(`../../../fixtures/system/${name}`, import.meta.url), "utf8");
/** Recorded `nvcc --version` and `nvidia-smi --query-gpu=…` output (test/fixtures/system/README.md). */
const NVCC = { stdout: fixture("nvcc-13.version.txt") };
const SMI_H100 = { stdout: fixture("nvidia-smi-h100.query.csv") };

describe("backend detection", () => {
  test("CUDA needs the toolkit and a GPU", async () => {
    const both = await detectBackend(probe({ tools: { nvcc: NVCC, "nvidia-smi": SMI_H100 } }));
    assert.equal(both.backend, "cuda");
    assert.equal(both.cuda.version, "13.0");
    assert.deepEqual(both.cuda.gpus, ["GPU 0: NVIDIA H100 80GB HBM3"]);

    const noGpu = await detectBackend(probe({ tools: { nvcc: NVCC } }));
    assert.equal(noGpu.backend, "cpu");
    assert.match(noGpu.reasons.join(" "), /CUDA 13\.0 is installed .* no NVIDIA GPU is visible/);

    const noToolkit = await detectBackend(probe({ tools: { "nvidia-smi": SMI_H100 } }));
    assert.equal(noToolkit.backend, "cpu");
    assert.match(noToolkit.reasons.join(" "), /CUDA toolkit \(nvcc\) is not/);

    const procGpu = await detectBackend(
      probe({ tools: { nvcc: NVCC }, dirs: { "/proc/driver/nvidia/gpus": ["0000:01:00.0"] } }),
    );
    assert.equal(procGpu.backend, "cuda", "a GPU seen by the driver without nvidia-smi");
  });

  test("Vulkan needs glslc, headers and (when vulkaninfo exists) a GPU device", async () => {
    const summary = (type: string) => ({
      stdout: `Devices:\n========\nGPU0:\n\tapiVersion = 1.3\n\tdeviceType = ${type}\n\tdeviceName = Some GPU\n`,
    });
    const ok = await detectBackend(
      probe({
        tools: { glslc: {}, vulkaninfo: summary("PHYSICAL_DEVICE_TYPE_DISCRETE_GPU") },
        files: ["/usr/include/vulkan/vulkan.h"],
      }),
    );
    assert.equal(ok.backend, "vulkan");
    assert.deepEqual(ok.vulkan.devices, ["Some GPU"]);
    const cpuOnly = await detectBackend(
      probe({
        tools: { glslc: {}, vulkaninfo: summary("PHYSICAL_DEVICE_TYPE_CPU") },
        files: ["/usr/include/vulkan/vulkan.h"],
      }),
    );
    assert.equal(cpuOnly.backend, "cpu", "llvmpipe is not a reason to build for Vulkan");
    const recorded = await detectBackend(
      probe({
        tools: { glslc: {}, vulkaninfo: { stdout: fixture("vulkaninfo-nvidia-llvmpipe.summary.txt") } },
        files: ["/usr/include/vulkan/vulkan.h"],
      }),
    );
    assert.equal(recorded.backend, "vulkan");
    assert.deepEqual(recorded.vulkan.devices, ["NVIDIA GeForce RTX 4090"], "the same reading as `gglib system`");
    const noHeaders = await detectBackend(probe({ tools: { glslc: {} } }));
    assert.equal(noHeaders.backend, "cpu");
    assert.match(noHeaders.reasons.join(" "), /Vulkan is incomplete \(headers missing\)/);
    const sdkEnv = await detectBackend(
      probe({ tools: { glslc: {} }, env: { VULKAN_SDK: "/opt/vk" }, files: ["/opt/vk/include/vulkan/vulkan.h"] }),
    );
    assert.equal(sdkEnv.backend, "vulkan");
  });

  test("CUDA is preferred over Vulkan; Metal on Apple Silicon; CPU on Intel Macs", async () => {
    const all = await detectBackend(
      probe({
        tools: { nvcc: NVCC, "nvidia-smi": SMI_H100, glslc: {} },
        files: ["/usr/include/vulkan/vulkan.h"],
      }),
    );
    assert.equal(all.backend, "cuda");
    assert.equal((await detectBackend(probe({ platform: "darwin", arch: "arm64" }))).backend, "metal");
    assert.equal((await detectBackend(probe({ platform: "darwin", arch: "x64" }))).backend, "cpu");
    assert.equal((await detectBackend(probe({}))).backend, "cpu");
  });
});

describe("build tool check", () => {
  test("finds cmake, a compiler and git with versions; flags an old cmake", async () => {
    const deps = await checkDependencies(
      { backend: "cpu", needGit: true },
      probe({
        tools: {
          cmake: { stdout: "cmake version 3.25.1\n" },
          "c++": { stdout: "c++ (Debian 12.2.0-14) 12.2.0\n" },
          git: { stdout: "git version 2.39.5\n" },
        },
        osRelease: 'ID=debian\nVERSION_ID="12"\n',
      }),
    );
    assert.deepEqual(
      deps.map((d) => [d.name, d.found, d.version]),
      [
        ["cmake", true, "3.25.1"],
        ["C++ compiler", true, "c++ (Debian 12.2.0-14) 12.2.0"],
        ["git", true, "2.39.5"],
      ],
    );
    const old = await checkDependencies(
      { backend: "cpu", needGit: false },
      probe({ tools: { cmake: { stdout: "cmake version 3.10.2\n" }, "g++": { stdout: "g++ 9" } } }),
    );
    assert.match(old[0]!.problem ?? "", /too old/);
  });

  test("missing tools come with the install command of the user's OS", async () => {
    const deb = await checkDependencies(
      { backend: "vulkan", needGit: true },
      probe({ osRelease: "ID=ubuntu\nID_LIKE=debian\n" }),
    );
    const text = formatDependencies(deb);
    assert.match(text, /✗ cmake: not found/);
    assert.match(text, /sudo apt-get install cmake/);
    assert.match(text, /sudo apt-get install g\+\+/);
    assert.match(text, /sudo apt-get install git/);
    assert.match(text, /libvulkan-dev glslc/);
    const fedora = formatDependencies(
      await checkDependencies({ backend: "cuda", needGit: false }, probe({ osRelease: 'ID="fedora"\n' })),
    );
    assert.match(fedora, /sudo dnf install cmake/);
    assert.match(fedora, /nvcc \(CUDA toolkit\): not found/);
    const mac = formatDependencies(
      await checkDependencies({ backend: "metal", needGit: false }, probe({ platform: "darwin", arch: "arm64" })),
    );
    assert.match(mac, /brew install cmake/);
    assert.match(mac, /xcode-select --install/);
  });

  test("OS families", () => {
    assert.equal(osFamily(probe({ osRelease: "ID=arch\n" })), "arch");
    assert.equal(osFamily(probe({ osRelease: 'ID="rocky"\nID_LIKE="rhel centos fedora"\n' })), "fedora");
    assert.equal(osFamily(probe({ osRelease: "ID=alpine\n" })), "alpine");
    assert.equal(osFamily(probe({ osRelease: 'ID=opensuse-tumbleweed\nID_LIKE="opensuse suse"\n' })), "suse");
    assert.equal(osFamily(probe({})), "other");
    assert.equal(osFamily(probe({ platform: "win32" })), "windows");
  });
});

describe("install record", () => {
  test("commit from --version text", () => {
    assert.equal(commitFromVersion("version: 0.4.0-dev (build 1, commit 80fb11a)\nbuilt with GNU 12.2.0"), "80fb11a");
    assert.equal(commitFromVersion("version: 1 (2)"), undefined);
  });

  test("a damaged or foreign record reads as none", (t) => {
    const d = mkdtempSync(join(tmpdir(), "gglib-rec-"));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    const f = join(d, "install.json");
    assert.equal(readInstallRecord(f), undefined);
    writeFileSync(f, "{not json");
    assert.equal(readInstallRecord(f), undefined);
    writeFileSync(f, JSON.stringify({ hello: 1 }));
    assert.equal(readInstallRecord(f), undefined);
    writeFileSync(f, JSON.stringify({ backend: "cpu", binaryPath: "/x", cmakeFlags: "nope" }));
    const r = readInstallRecord(f)!;
    assert.deepEqual(r.cmakeFlags, []);
    assert.equal(r.commit, "unknown");
    assert.equal(r.installType, "source");
  });
});
