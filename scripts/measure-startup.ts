// Start→ready of a tiny model: the same llama-server started by hand (spawn + poll /health every 5 ms), through
// the library (LlamaServerRunner.start), and through the CLI (`gglib serve --json`, node start-up included).
// Runs are interleaved so machine noise hits all three alike. Prints medians, spreads and ratios as JSON + a table.
//   npx tsx scripts/measure-startup.ts [runs=9]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../src/runner/llama-server-runner.js";
import { probeHealth } from "../src/process/http-probe.js";
import { findFreePort } from "../src/process/ports.js";
import { ensureLlamaServer } from "../test/support/llama-server.js";
import { writeTinyModel } from "../test/support/tiny-models.js";

const runs = Number(process.argv[2] ?? 9);
const bin = await ensureLlamaServer();
const dir = mkdtempSync(join(tmpdir(), "gglib-startup-"));
const model = await writeTinyModel(dir, { name: "tiny-a", kind: "chat" });

async function raw(): Promise<number> {
  const port = await findFreePort(21000);
  const t0 = performance.now();
  const child = spawn(
    bin,
    ["-m", model, "--host", "127.0.0.1", "--port", String(port), "--alias", "tiny-a", "--metrics", "-c", "512"],
    { stdio: "ignore", detached: true },
  );
  for (;;) {
    const r = await probeHealth(`http://127.0.0.1:${port}`, 1000);
    if (r.kind === "ok") break;
    await new Promise((res) => setTimeout(res, 5));
  }
  const ms = performance.now() - t0;
  process.kill(-child.pid!, "SIGTERM");
  await new Promise((r) => child.once("exit", r));
  return ms;
}

async function library(): Promise<number> {
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 21000,
    healthIntervalMs: 0,
  });
  await runner.binaryInfo(); // probed once per binary and cached; not part of a start
  const t0 = performance.now();
  const h = await runner.start({ modelPath: model, contextSize: 512 });
  const ms = performance.now() - t0;
  await runner.stop(h);
  return ms;
}

async function cli(): Promise<number> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    ["bin/gglib.js", "serve", model, "--json", "--ctx", "512", "--base-port", "21000"],
    {
      env: { ...process.env, GGLIB_LLAMA_SERVER: bin, GGLIB_DATA_DIR: join(dir, "data") },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  const ms = await new Promise<number>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"event":"ready"')) resolve(performance.now() - t0);
    });
    child.once("exit", (c) => reject(new Error(`gglib serve exited ${c}: ${out}`)));
  });
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  return ms;
}

const res: Record<string, number[]> = { raw: [], library: [], cli: [] };
await raw(); // warm the page cache
for (let i = 0; i < runs; i++) {
  res.raw!.push(await raw());
  res.library!.push(await library());
  res.cli!.push(await cli());
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const summary = Object.fromEntries(
  Object.entries(res).map(([k, v]) => [
    k,
    { median: +median(v).toFixed(1), min: +Math.min(...v).toFixed(1), max: +Math.max(...v).toFixed(1) },
  ]),
);
console.log(JSON.stringify({ runs, binary: bin, summary }, null, 1));
const m = (k: string) => median(res[k]!);
console.log(`\n| path | median ms | min–max | vs raw |\n|---|---|---|---|`);
for (const k of ["raw", "library", "cli"]) {
  const s = summary[k]!;
  console.log(
    `| ${k} | ${s.median} | ${s.min}–${s.max} | ${k === "raw" ? "1.00×" : `${(m(k) / m("raw")).toFixed(2)}× (+${(m(k) - m("raw")).toFixed(1)} ms)`} |`,
  );
}
rmSync(dir, { recursive: true, force: true });
