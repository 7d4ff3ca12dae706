import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DefaultSystemProbe, type SystemProbeDeps } from "../../../src/system/probe.js";
import { runCommand } from "../../../src/system/exec.js";
import type { CommandResult, RunCommand } from "../../../src/system/types.js";

const fx = (name: string) => readFileSync(join(import.meta.dirname, "..", "..", "fixtures", "system", name), "utf8");
const MIB = 1024 * 1024;

const ok = (stdout: string): CommandResult => ({
  ok: true,
  stdout,
  stderr: "",
  exitCode: 0,
  notFound: false,
  timedOut: false,
});
const missing: CommandResult = {
  ok: false,
  stdout: "",
  stderr: "",
  exitCode: null,
  notFound: true,
  timedOut: false,
  error: "not installed",
};

/** Answers tool invocations from recorded outputs; anything not listed is "not installed". Counts calls. */
function recorded(table: Record<string, CommandResult>): RunCommand & { calls: string[] } {
  const calls: string[] = [];
  const fn = (async (cmd: string, args: readonly string[]) => {
    const key = [cmd, ...args].join(" ");
    calls.push(key);
    return table[key] ?? table[cmd] ?? missing;
  }) as RunCommand & { calls: string[] };
  fn.calls = calls;
  return fn;
}

function deps(over: Partial<SystemProbeDeps> & { files?: Record<string, string> }): Partial<SystemProbeDeps> {
  const files = over.files ?? {};
  return {
    platform: "linux",
    arch: "x64",
    os: {
      cpus: () => Array.from({ length: 16 }, () => ({ model: "os-model" })),
      totalmem: () => 1,
      freemem: () => 1,
      availableParallelism: () => 16,
    },
    readFile: async (p) => files[p],
    now: () => 1000,
    ...over,
  };
}

const NVIDIA_QUERY =
  "nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free,driver_version --format=csv,noheader,nounits";

void describe("DefaultSystemProbe on recorded outputs", () => {
  void test("Linux + H100: CUDA, RAM from /proc/meminfo, CPU from /proc/cpuinfo", async () => {
    const run = recorded({
      [NVIDIA_QUERY]: ok(fx("nvidia-smi-h100.query.csv")),
      "nvidia-smi": ok(fx("nvidia-smi-h100.plain.txt")),
      "nvcc --version": ok(fx("nvcc-13.version.txt")),
    });
    const probe = new DefaultSystemProbe(
      deps({
        run,
        files: {
          "/proc/meminfo": fx("meminfo-h100-host.txt"),
          "/proc/cpuinfo": fx("cpuinfo-x86-h100-host.txt"),
          "/sys/fs/cgroup/memory.max": "max\n",
        },
      }),
    );
    const info = await probe.probe();
    assert.equal(info.accelerator, "cuda");
    assert.equal(info.cudaDriverVersion, "13.0");
    assert.equal(info.cudaToolkitVersion, "13.0");
    assert.equal(info.gpus.length, 1);
    assert.equal(info.gpus[0]?.freeBytes, 81079 * MIB);
    assert.deepEqual(info.ram, {
      totalBytes: 131981020 * 1024,
      availableBytes: 131480804 * 1024,
      source: "proc-meminfo",
    });
    assert.equal(info.cpu.model, "Intel(R) Xeon(R) Processor");
    assert.equal(info.cpu.availableCores, 16);
    assert.ok(info.cpu.simd.includes("AVX512"));
    assert.deepEqual(info.notes, []);
    const present = Object.fromEntries(info.tools.map((t) => [t.name, t.present]));
    assert.deepEqual(present, {
      "/proc/meminfo": true,
      "/proc/cpuinfo": true,
      "nvidia-smi": true,
      nvcc: true,
      "rocm-smi": false,
      vulkaninfo: false,
    });
  });

  void test("no GPU tools at all: says so plainly and falls back to the CPU", async () => {
    const run = recorded({});
    const probe = new DefaultSystemProbe(
      deps({
        run,
        files: { "/proc/meminfo": fx("meminfo-epyc-2vcpu.txt"), "/proc/cpuinfo": fx("cpuinfo-x86-epyc-2vcpu.txt") },
      }),
    );
    const info = await probe.probe();
    assert.equal(info.accelerator, "cpu");
    assert.deepEqual(info.gpus, []);
    assert.equal(info.notes.length, 1);
    assert.match(
      info.notes[0]!,
      /^No GPU found \(nvidia-smi, rocm-smi, vulkaninfo not installed\); models run on the CPU\.$/,
    );
  });

  void test("nvidia-smi present but the driver is broken: present, with the error, no GPU", async () => {
    const fail: CommandResult = {
      ok: false,
      stdout: fx("nvidia-smi-no-driver.txt"),
      stderr: "",
      exitCode: 9,
      notFound: false,
      timedOut: false,
      error: "nvidia-smi exited with 9",
    };
    const run = recorded({ [NVIDIA_QUERY]: fail, "nvidia-smi": fail });
    const info = await new DefaultSystemProbe(deps({ run })).probe();
    assert.equal(info.accelerator, "cpu");
    const t = info.tools.find((x) => x.name === "nvidia-smi");
    assert.equal(t?.present, true);
    assert.match(t?.error ?? "", /exited with 9/);
    assert.ok(info.notes.some((n) => n.startsWith("nvidia-smi: ")));
  });

  void test("AMD via rocm-smi, plus Vulkan listing the same board is not counted twice", async () => {
    const run = recorded({
      "rocm-smi --showmeminfo vram --json": ok(fx("rocm-smi-5-rx7900.meminfo.json")),
      "rocm-smi --showproductname --showdriverversion --json": ok(fx("rocm-smi-5-rx7900.product.json")),
      "vulkaninfo --summary": ok(
        fx("vulkaninfo-nvidia-llvmpipe.summary.txt")
          .replace("NVIDIA GeForce RTX 4090", "AMD Radeon RX 7900 XTX (RADV NAVI31)")
          .replace("0x10de", "0x1002"),
      ),
    });
    const info = await new DefaultSystemProbe(deps({ run })).probe();
    assert.equal(info.accelerator, "rocm");
    assert.deepEqual(
      info.gpus.map((g) => g.source),
      ["rocm-smi"],
    );
    assert.equal(info.vulkanVersion, "1.3.275");
  });

  void test("Vulkan-only machine (Intel iGPU): the vulkan accelerator, memory unknown", async () => {
    const run = recorded({ "vulkaninfo --summary": ok(fx("vulkaninfo-intel-igpu.summary.txt")) });
    const info = await new DefaultSystemProbe(deps({ run })).probe();
    assert.equal(info.accelerator, "vulkan");
    assert.equal(info.gpus[0]?.name, "Intel(R) Graphics (RPL-P)");
    assert.equal(info.gpus[0]?.totalBytes, undefined);
  });

  void test("macOS Apple Silicon: unified-memory GPU share from sysctl, available RAM from vm_stat", async () => {
    const sysctlOut: CommandResult = {
      ...ok(fx("sysctl-apple-m2pro.txt")),
      ok: false,
      exitCode: 1,
      stderr: "sysctl: unknown oid 'machdep.cpu.features'\n",
    };
    const run = recorded({ sysctl: sysctlOut, vm_stat: ok(fx("vm_stat-m2pro.txt")) });
    const info = await new DefaultSystemProbe(deps({ run, platform: "darwin", arch: "arm64" })).probe();
    assert.equal(info.accelerator, "metal");
    assert.equal(info.ram.source, "sysctl");
    assert.equal(info.ram.totalBytes, 32 * 1024 * MIB);
    assert.equal(info.ram.availableBytes, (81529 + 640355 + 12345) * 16384);
    const gpu = info.gpus[0]!;
    assert.equal(gpu.vendor, "apple");
    assert.equal(gpu.unifiedMemory, true);
    assert.equal(gpu.totalBytes, Math.floor((32 * 1024 * MIB * 2) / 3));
    assert.equal(gpu.freeBytes, info.ram.availableBytes, "free GPU share is bounded by available RAM");
    assert.equal(info.cpu.model, "Apple M2 Pro");
    assert.ok(
      !run.calls.some((c) => c.startsWith("nvidia-smi") || c.startsWith("rocm-smi")),
      "no Linux GPU tools on macOS",
    );
  });

  void test("readings are cached for the TTL and shared by concurrent callers; fresh re-reads", async () => {
    let t = 0;
    const run = recorded({
      [NVIDIA_QUERY]: ok(fx("nvidia-smi-h100.query.csv")),
      "nvidia-smi": ok(fx("nvidia-smi-h100.plain.txt")),
    });
    const probe = new DefaultSystemProbe({ ...deps({ run }), now: () => t, ttlMs: 2000 });
    const count = () => run.calls.filter((c) => c === NVIDIA_QUERY).length;
    const [a, b] = await Promise.all([probe.probe(), probe.memory()]);
    assert.equal(count(), 1);
    assert.equal(a.gpus[0]?.freeBytes, b.gpus[0]?.freeBytes);
    t = 1999;
    await probe.probe();
    assert.equal(count(), 1);
    t = 2001;
    await probe.memory();
    assert.equal(count(), 2, "memory re-read after the TTL");
    await probe.probe({ fresh: true });
    assert.equal(count(), 3);
    assert.equal(
      run.calls.filter((c) => c.startsWith("rocm-smi")).length,
      1,
      "a tool found missing is not looked for again",
    );
    assert.equal(run.calls.filter((c) => c === "vulkaninfo --summary").length, 1);
    assert.equal(run.calls.filter((c) => c === "nvidia-smi").length, 1, "the CUDA banner is read once");
  });
});

void describe("DefaultSystemProbe on this machine", () => {
  void test(
    "RAM within 1 % of /proc/meminfo and cores equal to nproc",
    { skip: process.platform !== "linux" },
    async () => {
      const info = await new DefaultSystemProbe().probe();
      const meminfo = readFileSync("/proc/meminfo", "utf8");
      const total = Number(/MemTotal:\s+(\d+)/.exec(meminfo)![1]) * 1024;
      const avail = Number(/MemAvailable:\s+(\d+)/.exec(meminfo)![1]) * 1024;
      assert.ok(Math.abs(info.ram.totalBytes - total) / total < 0.01, `${info.ram.totalBytes} vs ${total}`);
      assert.ok(Math.abs(info.ram.availableBytes - avail) / total < 0.01, `${info.ram.availableBytes} vs ${avail}`);
      const nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
      assert.equal(info.cpu.availableCores, nproc);
      if (info.gpus.length === 0) assert.ok(info.notes.some((n) => n.startsWith("No GPU found")));
    },
  );

  void test("runCommand: a missing tool is notFound, never a throw", async () => {
    const r = await runCommand("gglib-no-such-tool-xyz", ["--version"]);
    assert.equal(r.notFound, true);
    assert.equal(r.ok, false);
    const t = await runCommand(process.execPath, ["-e", "setTimeout(() => {}, 10000)"], { timeoutMs: 200 });
    assert.equal(t.timedOut, true);
    const f = await runCommand(process.execPath, ["-e", "process.stdout.write('partial'); process.exit(3)"]);
    assert.equal(f.exitCode, 3);
    assert.equal(f.stdout, "partial");
  });
});
