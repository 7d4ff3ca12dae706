/**
 * The proxy's memory estimate counts the weights llama.cpp copies into the CPU's extra buffers (issue 21): with a
 * probe that reports an AMX CPU and no GPU, /api/status shows the AMX share and a larger estimate than on a CPU
 * without those kernels; with a GPU, none (a GPU build uses no extra CPU buffer).
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProxy } from "../../src/proxy/index.js";
import type { GpuDevice, MemorySnapshot, SystemInfo, SystemProbe } from "../../src/system/types.js";
import { FakeRunner } from "../support/fake-runner.js";
import { writeTinyModel } from "../support/tiny-models.js";

const GIB = 1024 ** 3;
const AMX_CPU = ["AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8"] as const;
const EPYC = ["AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16"] as const;

function probeOf(simd: readonly string[], gpus: GpuDevice[] = []): SystemProbe {
  const snap: MemorySnapshot = {
    ram: { totalBytes: 16 * GIB, availableBytes: 12 * GIB, source: "os" },
    gpus: [],
    takenAt: 0,
  };
  const info = {
    platform: "linux",
    cpu: { model: "test", arch: "x64", logicalCores: 2, availableCores: 2, simd },
    ram: snap.ram,
    gpus,
    accelerator: "cpu",
    tools: [],
    notes: [],
    takenAt: 0,
  } as unknown as SystemInfo;
  return { probe: () => Promise.resolve(info), memory: () => Promise.resolve(snap) };
}

interface StatusModel {
  name: string;
  estimatedBytes: number;
  repack?: { bytes: number; buffers: Record<string, number> };
}

async function statusWith(t: TestContext, dir: string, probe: SystemProbe): Promise<StatusModel> {
  const proxy = await startProxy({
    port: 0,
    modelsDir: dir,
    memoryBudget: "8GiB",
    watchConfig: false,
    runner: new FakeRunner(),
    probe,
  });
  t.after(() => proxy.close(2_000));
  const body = (await (await fetch(`${proxy.url}/api/status`)).json()) as { models: StatusModel[] };
  const m = body.models.find((x) => x.name === "rp");
  assert.ok(m, "the model is listed");
  return m;
}

void describe("proxy: repacked weights in the estimate", () => {
  test("an AMX CPU adds its AMX copies; a CPU without the kernels or a GPU machine adds none", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-repack-proxy-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await writeTinyModel(dir, { name: "rp", kind: "chat", layers: 2 });
    const amx = await statusWith(t, dir, probeOf(AMX_CPU));
    const epyc = await statusWith(t, dir, probeOf(EPYC));
    const gpu = await statusWith(
      t,
      dir,
      probeOf(AMX_CPU, [{ index: 0, vendor: "nvidia", name: "H100", totalBytes: 80 * GIB } as GpuDevice]),
    );
    assert.ok(amx.repack && (amx.repack.buffers.AMX ?? 0) > 0, `AMX share shown: ${JSON.stringify(amx.repack)}`);
    assert.equal(epyc.repack, undefined);
    assert.equal(gpu.repack, undefined);
    assert.ok(amx.estimatedBytes > epyc.estimatedBytes, `${amx.estimatedBytes} > ${epyc.estimatedBytes}`);
    assert.equal(gpu.estimatedBytes, epyc.estimatedBytes);
  });
});
