/**
 * `gglib system` and `gglib models fit`: the report builders on recorded machine readings, and the real command
 * on this machine (RAM within 1 % of /proc/meminfo, cores = nproc, a plain "no GPU" line when there is none).
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pc from "picocolors";
import { collectSystemReport, formatSystemReport } from "../../../src/cli/commands/system.js";
import { fitReport, formatFitReport } from "../../../src/cli/commands/models/fit.js";
import { DefaultSystemProbe } from "../../../src/system/probe.js";
import type { CommandResult, MemorySnapshot, RunCommand, SystemProbe } from "../../../src/system/types.js";
import { FAKE_LLAMA_SERVER } from "../../support/fake-llama.js";
import { writeTinyModel } from "../../support/tiny-models.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..", "..");
const fx = (name: string) => readFileSync(join(ROOT, "test", "fixtures", "system", name), "utf8");
const ok = (stdout: string): CommandResult => ({
  ok: true,
  stdout,
  stderr: "",
  exitCode: 0,
  notFound: false,
  timedOut: false,
});
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const plain = pc.createColors(false);

/** A probe that reads the recorded H100 host (nvidia-smi present, nothing else). */
function h100Probe(): SystemProbe {
  const table: Record<string, CommandResult> = {
    "nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free,driver_version --format=csv,noheader,nounits":
      ok(fx("nvidia-smi-h100.query.csv")),
    "nvidia-smi": ok(fx("nvidia-smi-h100.plain.txt")),
  };
  const runCmd: RunCommand = async (cmd, args) =>
    table[[cmd, ...args].join(" ")] ?? {
      ok: false,
      stdout: "",
      stderr: "",
      exitCode: null,
      notFound: true,
      timedOut: false,
    };
  const files: Record<string, string> = {
    "/proc/meminfo": fx("meminfo-h100-host.txt"),
    "/proc/cpuinfo": fx("cpuinfo-x86-h100-host.txt"),
  };
  return new DefaultSystemProbe({
    run: runCmd,
    readFile: async (p) => files[p],
    platform: "linux",
    arch: "x64",
    os: {
      cpus: () => Array.from({ length: 16 }, () => ({ model: "x" })),
      totalmem: () => 0,
      freemem: () => 0,
      availableParallelism: () => 16,
    },
  });
}

/** A fixed memory reading (the proxy's and fit's view). */
function fixedMemory(snap: MemorySnapshot): SystemProbe {
  return {
    probe: () => Promise.reject(new Error("not used")),
    memory: async () => snap,
  };
}

let dataDir = "";
let savedDataDir: string | undefined;
before(() => {
  dataDir = mkdtempSync(join(tmpdir(), "gglib-syscli-"));
  savedDataDir = process.env.GGLIB_DATA_DIR;
  // probeCapabilities caches under the data dir: keep it out of the user's.
  process.env.GGLIB_DATA_DIR = dataDir;
});
after(() => {
  if (savedDataDir === undefined) delete process.env.GGLIB_DATA_DIR;
  else process.env.GGLIB_DATA_DIR = savedDataDir;
  rmSync(dataDir, { recursive: true, force: true });
});

void describe("gglib system", () => {
  void test("H100 host with a CPU-only llama-server: the GPU, the binary's version and backend, and a warning", async () => {
    const r = await collectSystemReport({ probe: h100Probe(), env: { GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER } });
    assert.equal(r.accelerator, "cuda");
    assert.equal(r.llamaServer.found, true);
    assert.equal(r.llamaServer.source, "env");
    assert.equal(r.llamaServer.version, "0.4.0-dev (build 1, commit 80fb11a)");
    assert.equal(r.llamaServer.backend, "cpu");
    assert.equal(r.advice.length, 1);
    assert.match(r.advice[0]!, /CUDA GPU but the llama-server in use reports a cpu build/);
    const text = formatSystemReport(r, plain);
    assert.match(
      text,
      /^GPU {10}0 NVIDIA H100 80GB HBM3 · 79\.2 GiB free of 79\.6 GiB · driver 580\.159\.04 · via nvidia-smi$/m,
    );
    assert.match(text, /^Accelerator {2}cuda · CUDA 13\.0 \(driver\)$/m);
    assert.match(text, /^llama-server .*fake-llama-server\.mjs \(env\)$/m);
    assert.match(text, /^RAM {10}126 GiB total · 125 GiB available$/m);
    assert.ok(!text.includes("\u001b["), "no colour codes when colours are off");
  });

  void test("no llama-server: said plainly, with what to do", async () => {
    const r = await collectSystemReport({
      probe: h100Probe(),
      env: { GGLIB_LLAMA_SERVER: join(dataDir, "nope", "llama-server"), PATH: "" },
    });
    assert.equal(r.llamaServer.found, false);
    assert.ok(r.llamaServer.error && r.llamaServer.error.length > 0);
    const text = formatSystemReport(r, plain);
    assert.match(text, /^llama-server not found · /m);
  });

  void test(
    "`gglib system --json` on this machine: RAM within 1 % of /proc/meminfo, cores = nproc, GPU status said",
    { skip: process.platform !== "linux" },
    async () => {
      const { stdout } = await run(
        process.execPath,
        ["--import", "tsx", join(ROOT, "src", "cli", "main.ts"), "system", "--json"],
        {
          cwd: ROOT,
          env: { ...process.env, NO_COLOR: "1" },
          timeout: 60_000,
        },
      );
      const r = JSON.parse(stdout) as {
        ram: { totalBytes: number; availableBytes: number };
        cpu: { availableCores: number };
        gpus: unknown[];
        notes: string[];
        llamaServer: { found: boolean };
      };
      const meminfo = readFileSync("/proc/meminfo", "utf8");
      const total = Number(/MemTotal:\s+(\d+)/.exec(meminfo)![1]) * 1024;
      const avail = Number(/MemAvailable:\s+(\d+)/.exec(meminfo)![1]) * 1024;
      assert.ok(Math.abs(r.ram.totalBytes - total) <= 0.01 * total, `total ${r.ram.totalBytes} vs ${total}`);
      assert.ok(
        Math.abs(r.ram.availableBytes - avail) <= 0.01 * total,
        `available ${r.ram.availableBytes} vs ${avail}`,
      );
      assert.equal(r.cpu.availableCores, Number(execFileSync("nproc", { encoding: "utf8" }).trim()));
      if (r.gpus.length === 0)
        assert.ok(
          r.notes.some((n) => /^No GPU found.*models run on the CPU\.$/.test(n)),
          r.notes.join("; "),
        );
      assert.equal(typeof r.llamaServer.found, "boolean");
    },
  );
});

void describe("gglib models fit", () => {
  const cpuBox: MemorySnapshot = {
    ram: { totalBytes: 16 * GIB, availableBytes: 8 * GIB, source: "proc-meminfo" },
    gpus: [],
    takenAt: 0,
  };

  void test("a tiny think model on a CPU box: fits, reasoning detected, deepseek format and trained context chosen", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-fit-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = await writeTinyModel(dir, { name: "fit-think", kind: "think", layers: 2 });
    const r = await fitReport(path, {}, fixedMemory(cpuBox));
    assert.equal(r.advice.fits, true);
    assert.equal(r.advice.offload, "none");
    assert.deepEqual(r.capabilities, ["reasoning"]);
    assert.equal(r.launch.config.reasoningFormat, "deepseek");
    assert.equal(r.launch.config.contextSize, 2048);
    assert.equal(r.budget.hostBytes, 7 * GIB);
    const text = formatFitReport(r, plain);
    assert.match(text, /^Memory at 2048 tokens \(2048 KV cells\):$/m);
    assert.match(text, /^ {2}✓ Fits at 2048 tokens in RAM/m);
    assert.match(text, /^ {2}reasoningFormat deepseek {4}detected: reasoning model: chat template contains <think>/m);
  });

  void test("--ctx past what fits: not fitting, the largest context given; a GPU box offloads", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-fit-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = await writeTinyModel(dir, {
      name: "fit-chat",
      kind: "chat",
      embd: 256,
      layers: 4,
      contextLength: 1 << 20,
    });
    const small: MemorySnapshot = { ...cpuBox, ram: { ...cpuBox.ram, availableBytes: 1.25 * GIB } };
    const r = await fitReport(path, { ctx: 1 << 20 }, fixedMemory(small));
    assert.equal(r.advice.fits, false);
    assert.ok(r.advice.maxCtx! > 0 && r.advice.maxCtx! < 1 << 20);
    assert.match(formatFitReport(r, plain), /^ {2}✗ Does not fit at 1048576 tokens/m);
    const gpuBox: MemorySnapshot = {
      ...cpuBox,
      gpus: [
        {
          index: 0,
          vendor: "nvidia",
          name: "NVIDIA H100 80GB HBM3",
          totalBytes: 81559 * MIB,
          freeBytes: 81079 * MIB,
          unifiedMemory: false,
        },
      ],
    };
    const g = await fitReport(path, { ctx: 8192 }, fixedMemory(gpuBox));
    assert.equal(g.advice.offload, "full");
    assert.ok(g.advice.estimate.gpuBytes > 0);
  });

  void test("an unknown name is a model_not_found error with a hint", async () => {
    const saved = process.env.GGLIB_DATA_DIR;
    await assert.rejects(
      fitReport("no-such-model-xyz", {}, fixedMemory(cpuBox)),
      (e: Error & { kind?: string }) =>
        e.kind === "model_not_found" && /neither a file nor a registered name/.test(e.message),
    );
    assert.equal(process.env.GGLIB_DATA_DIR, saved);
  });
});
