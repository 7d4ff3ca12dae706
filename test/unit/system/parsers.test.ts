import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  appleGpuShareBytes,
  parseCgroupMemoryLimit,
  parseNvccVersion,
  parseNvidiaSmiCudaVersion,
  parseNvidiaSmiQuery,
  parseProcCpuinfo,
  parseProcMeminfo,
  parseRocmSmi,
  parseSysctl,
  parseVmStat,
  parseVulkaninfoSummary,
} from "../../../src/system/parsers.js";

const fx = (name: string) => readFileSync(join(import.meta.dirname, "..", "..", "fixtures", "system", name), "utf8");
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

void describe("nvidia-smi", () => {
  void test("H100 query line (recorded)", () => {
    const gpus = parseNvidiaSmiQuery(fx("nvidia-smi-h100.query.csv"));
    assert.equal(gpus.length, 1);
    assert.deepEqual(gpus[0], {
      index: 0,
      vendor: "nvidia",
      name: "NVIDIA H100 80GB HBM3",
      source: "nvidia-smi",
      unifiedMemory: false,
      totalBytes: 81559 * MIB,
      usedBytes: 0,
      freeBytes: 81079 * MIB,
      driverVersion: "580.159.04",
    });
  });

  void test("two boards, in index order", () => {
    const gpus = parseNvidiaSmiQuery(fx("nvidia-smi-2gpu-mixed.query.csv"));
    assert.deepEqual(
      gpus.map((g) => [g.index, g.name, g.totalBytes, g.freeBytes]),
      [
        [0, "NVIDIA GeForce RTX 4090", 24564 * MIB, 22331 * MIB],
        [1, "NVIDIA GeForce RTX 3060", 12288 * MIB, 11756 * MIB],
      ],
    );
  });

  void test("[N/A] memory is left out, not read as 0 or NaN", () => {
    const [g] = parseNvidiaSmiQuery(fx("nvidia-smi-gh200-na.query.csv"));
    assert.equal(g?.name, "NVIDIA GH200 480GB");
    assert.equal(g?.totalBytes, undefined);
    assert.equal(g?.freeBytes, undefined);
    assert.equal(g?.driverVersion, "560.35.03");
  });

  void test("a driver failure message yields no GPU", () => {
    assert.deepEqual(parseNvidiaSmiQuery(fx("nvidia-smi-no-driver.txt")), []);
  });

  void test("CUDA versions: driver banner and nvcc (recorded)", () => {
    assert.equal(parseNvidiaSmiCudaVersion(fx("nvidia-smi-h100.plain.txt")), "13.0");
    assert.equal(parseNvccVersion(fx("nvcc-13.version.txt")), "13.0");
    assert.equal(parseNvidiaSmiCudaVersion(fx("nvidia-smi-no-driver.txt")), undefined);
  });
});

void describe("rocm-smi", () => {
  void test("ROCm 6: two MI210, memory and product merged per card", () => {
    const gpus = parseRocmSmi(fx("rocm-smi-6-mi210x2.meminfo.json"), fx("rocm-smi-6-mi210x2.product.json"));
    assert.equal(gpus.length, 2);
    assert.deepEqual(gpus[1], {
      index: 1,
      vendor: "amd",
      name: "AMD Instinct MI210",
      source: "rocm-smi",
      unifiedMemory: false,
      totalBytes: 68702699520,
      usedBytes: 4307554304,
      freeBytes: 68702699520 - 4307554304,
      architecture: "gfx90a",
      driverVersion: "6.8.5",
    });
  });

  void test("ROCm 5: lower-case keys and a warning line before the JSON", () => {
    const [g] = parseRocmSmi(fx("rocm-smi-5-rx7900.meminfo.json"), fx("rocm-smi-5-rx7900.product.json"));
    assert.equal(g?.name, "Navi 31 [Radeon RX 7900 XT/7900 XTX]");
    assert.equal(g?.totalBytes, 25753026560);
    assert.equal(g?.freeBytes, 25753026560 - 1294200832);
    assert.equal(g?.architecture, "gfx1100");
  });

  void test("memory without the product call still names the card", () => {
    const gpus = parseRocmSmi(fx("rocm-smi-5-rx7900.meminfo.json"), undefined);
    assert.equal(gpus[0]?.name, "card0");
    assert.equal(gpus[0]?.totalBytes, 25753026560);
  });

  void test("garbage gives nothing", () => {
    assert.deepEqual(parseRocmSmi("ERROR: GPU[0] : Unable to get", "not json {"), []);
  });
});

void describe("vulkaninfo --summary", () => {
  void test("NVIDIA kept, llvmpipe (a CPU device) dropped", () => {
    const s = parseVulkaninfoSummary(fx("vulkaninfo-nvidia-llvmpipe.summary.txt"));
    assert.equal(s.instanceVersion, "1.3.275");
    assert.equal(s.gpus.length, 1);
    assert.deepEqual(s.gpus[0], {
      index: 0,
      vendor: "nvidia",
      name: "NVIDIA GeForce RTX 4090",
      source: "vulkaninfo",
      unifiedMemory: false,
      deviceType: "discrete",
      driverVersion: "550.54.14",
    });
  });

  void test("Intel integrated GPU shares memory", () => {
    const s = parseVulkaninfoSummary(fx("vulkaninfo-intel-igpu.summary.txt"));
    assert.equal(s.gpus[0]?.vendor, "intel");
    assert.equal(s.gpus[0]?.unifiedMemory, true);
    assert.equal(s.gpus[0]?.deviceType, "integrated");
  });

  void test("no driver: version read, no device", () => {
    const s = parseVulkaninfoSummary(fx("vulkaninfo-no-driver.summary.txt"));
    assert.equal(s.instanceVersion, "1.3.275");
    assert.deepEqual(s.gpus, []);
  });
});

void describe("macOS", () => {
  void test("Apple M2 Pro: 32 GiB, NEON features, Metal share two thirds", () => {
    const r = parseSysctl(fx("sysctl-apple-m2pro.txt"));
    assert.equal(r.appleSilicon, true);
    assert.equal(r.memBytes, 32 * GIB);
    assert.equal(r.cpuModel, "Apple M2 Pro");
    assert.equal(r.physicalCores, 12);
    assert.equal(r.wiredLimitBytes, undefined, "0 means the default limit");
    assert.deepEqual(r.simd, ["NEON", "ARM_FMA", "FP16_VA", "DOTPROD", "MATMUL_INT8"]);
    assert.equal(appleGpuShareBytes(r.memBytes ?? 0), Math.floor((32 * GIB * 2) / 3));
  });

  void test("M3 Max with iogpu.wired_limit_mb raised: the limit wins", () => {
    const r = parseSysctl(fx("sysctl-apple-m3max-wired.txt"));
    assert.equal(r.wiredLimitBytes, 120 * GIB);
    assert.equal(appleGpuShareBytes(r.memBytes!, r.wiredLimitBytes), 120 * GIB);
    assert.equal(appleGpuShareBytes(r.memBytes ?? 0), 96 * GIB, "above 36 GiB the default is three quarters");
  });

  void test("Intel Mac: x86 flags from machdep.cpu.*", () => {
    const r = parseSysctl(fx("sysctl-intel-mac.txt"));
    assert.equal(r.appleSilicon, false);
    assert.equal(r.physicalCores, 6);
    assert.equal(r.logicalCores, 12);
    assert.deepEqual(r.simd, ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"]);
  });

  void test("vm_stat: free + inactive + speculative pages", () => {
    assert.equal(parseVmStat(fx("vm_stat-m2pro.txt")), (81529 + 640355 + 12345) * 16384);
    assert.equal(parseVmStat("vm_stat: command failed"), undefined);
  });
});

void describe("/proc", () => {
  void test("meminfo (recorded): MemTotal and MemAvailable in bytes", () => {
    const m = parseProcMeminfo(fx("meminfo-h100-host.txt"));
    assert.deepEqual(m, { totalBytes: 131981020 * 1024, availableBytes: 131480804 * 1024 });
  });

  void test("meminfo without MemAvailable (old kernels) adds free, buffers and cache", () => {
    const m = parseProcMeminfo("MemTotal:  1000 kB\nMemFree:  100 kB\nBuffers:  10 kB\nCached:  200 kB\n");
    assert.deepEqual(m, { totalBytes: 1000 * 1024, availableBytes: 310 * 1024 });
    assert.equal(parseProcMeminfo("nothing here"), undefined);
  });

  void test("cpuinfo, 16-vCPU Xeon (recorded): model, count, AVX-512 and AMX", () => {
    const c = parseProcCpuinfo(fx("cpuinfo-x86-h100-host.txt"));
    assert.equal(c.model, "Intel(R) Xeon(R) Processor");
    assert.equal(c.logicalCores, 16);
    assert.equal(c.physicalCores, 16);
    for (const f of ["AVX2", "AVX512", "AVX512_VNNI", "AVX_VNNI", "AMX_INT8", "F16C", "FMA"] as const)
      assert.ok(c.simd.includes(f), f);
  });

  void test("cpuinfo, 2-vCPU EPYC (recorded): no AVX_VNNI, has AVX512_BF16", () => {
    const c = parseProcCpuinfo(fx("cpuinfo-x86-epyc-2vcpu.txt"));
    assert.equal(c.model, "AMD EPYC");
    assert.equal(c.logicalCores, 2);
    assert.ok(c.simd.includes("AVX512_BF16"));
    assert.ok(!c.simd.includes("AVX_VNNI"));
    assert.ok(!c.simd.includes("NEON"));
  });

  void test("cpuinfo, arm64 (Graviton 3): Features map to NEON/DOTPROD/SVE/I8MM, no model name", () => {
    const c = parseProcCpuinfo(fx("cpuinfo-arm64-graviton3.txt"));
    assert.equal(c.model, undefined);
    assert.equal(c.logicalCores, 2);
    assert.deepEqual(c.simd, ["NEON", "ARM_FMA", "FP16_VA", "DOTPROD", "MATMUL_INT8", "SVE"]);
  });

  void test("cgroup limits: only numbers below RAM count", () => {
    assert.equal(parseCgroupMemoryLimit("max\n", 8 * GIB), undefined);
    assert.equal(parseCgroupMemoryLimit("4294967296\n", 8 * GIB), 4 * GIB);
    assert.equal(parseCgroupMemoryLimit("9223372036854771712\n", 8 * GIB), undefined);
    assert.equal(parseCgroupMemoryLimit(undefined, 8 * GIB), undefined);
  });
});
