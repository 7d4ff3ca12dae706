/**
 * Scale and footprint of `gglib proxy` (the compiled CLI: `npm run build` first when dist/ is stale).
 *
 *   - 1,000 concurrent streaming requests to the fake llama-server (20 tokens at 50 ms, --parallel 1100), through the
 *     proxy vs straight to the same fake: errors, p99 time to the first SSE `data:` event, and the proxy's peak RSS
 *     (VmHWM from /proc/<pid>/status, reset with clear_refs before each run), beside the peak RSS of a bare Node
 *     proxy (bench/min-node-proxy.mjs: node:http + undici, nothing else) for the same streams;
 *   - idle RSS of the proxy (after start, no model loaded) vs a bare `node` process that does nothing;
 *   - `gglib --version` start time (`node bin/gglib.js --version`, 20 runs, hyperfine when installed) vs `node -e 0`.
 *
 *   npx tsx bench/scale.ts [--quick] [--json]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import {
  QUICK,
  ROOT,
  ensureBuilt,
  killLeftovers,
  log,
  median,
  procMem,
  proxyLoad,
  quantile,
  resetHwm,
  row,
  runStandalone,
  sleep,
  spawnTracked,
  spread,
  startGglibProxy,
  stopTracked,
  upstreamPort,
  type Row,
} from "./lib.js";

const MiB = 2 ** 20;

interface StreamsResult {
  ok: number;
  errors: number;
  p50First: number;
  p99First: number;
  seconds: number;
}

async function streams(url: string, n: number): Promise<StreamsResult> {
  const agent = new Agent({ connections: n + 16, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const body = JSON.stringify({
    model: "stream",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 20,
    stream: true,
  });
  const first: number[] = [];
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = performance.now();
      try {
        const r = await request(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          dispatcher: agent,
        });
        let text = "";
        let got = false;
        for await (const c of r.body) {
          text += (c as Buffer).toString("utf8");
          if (!got && text.includes("data: ")) {
            got = true;
            first.push(performance.now() - s);
          }
        }
        return r.statusCode === 200 && text.trimEnd().endsWith("data: [DONE]") && !text.includes('"error"');
      } catch {
        return false;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await agent.close();
  const ok = results.filter(Boolean).length;
  return { ok, errors: n - ok, p50First: quantile(first, 0.5), p99First: quantile(first, 0.99), seconds };
}

/** Mean wall time of `cmd` over `runs` runs, ms (hyperfine when installed, else spawnSync). */
function startTime(cmd: string[], runs: number): { mean: number; min: number; max: number; tool: string } {
  const hf = spawnSync("sh", ["-c", "command -v hyperfine"], { encoding: "utf8" }).stdout.trim();
  if (hf) {
    const out = join(tmpdir(), `gglib-bench-hf-${process.pid}.json`);
    const r = spawnSync(
      hf,
      [
        "-N",
        "--warmup",
        "3",
        "--runs",
        String(runs),
        "--export-json",
        out,
        cmd.map((c) => (c.includes(" ") ? `'${c}'` : c)).join(" "),
      ],
      { cwd: ROOT, encoding: "utf8", timeout: 120_000 },
    );
    try {
      const j = JSON.parse(readFileSync(out, "utf8")) as { results: { mean: number; min: number; max: number }[] };
      const x = j.results[0]!;
      return { mean: x.mean * 1000, min: x.min * 1000, max: x.max * 1000, tool: "hyperfine -N" };
    } catch {
      log(`[scale] hyperfine failed (${r.stderr.slice(0, 200)}), timing it myself`);
    } finally {
      rmSync(out, { force: true });
    }
  }
  const t: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const s = performance.now();
    spawnSync(cmd[0]!, cmd.slice(1), { cwd: ROOT, stdio: "ignore" });
    if (i >= 3) t.push(performance.now() - s);
  }
  return {
    mean: t.reduce((a, b) => a + b, 0) / t.length,
    min: Math.min(...t),
    max: Math.max(...t),
    tool: "spawnSync wall time",
  };
}

export async function benchScale(opts: { quick?: boolean; streams?: number } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const n = opts.streams ?? Number(process.env.GGLIB_BENCH_STREAMS ?? 1000);
  const reps = quick ? 1 : 3;
  const section = "4 scale";
  const build = ensureBuilt();
  log(`[scale] ${build.note}`);
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-scale-"));
  const rows: Row[] = [];
  let proxy: Awaited<ReturnType<typeof startGglibProxy>> | undefined;
  let bare: ReturnType<typeof spawnTracked> | undefined;
  let floor: ReturnType<typeof spawnTracked> | undefined;
  try {
    // --version start time vs bare node
    const runs = 20;
    const v = startTime([process.execPath, join(ROOT, "bin", "gglib.js"), "--version"], runs);
    const nodeBase = startTime([process.execPath, "-e", "0"], runs);
    rows.push(
      row({
        section,
        metric: "`gglib --version` start time (node bin/gglib.js --version) vs `node -e 0`",
        value: v.mean,
        baseline: nodeBase.mean,
        baselineName: "node -e 0",
        unit: "ms",
        spread: [v.min, v.max],
        baselineSpread: [nodeBase.min, nodeBase.max],
        reps: runs,
        note: `mean of ${runs} runs after 3 warm-ups (${v.tool}); CLI ${build.compiled ? "compiled (dist/)" : "NOT compiled: src/ through tsx"}`,
      }),
    );

    const model = writeFakeModel(dir, "stream");
    const cfg = join(dir, "scale.yaml");
    writeFileSync(
      cfg,
      [
        "memoryBudget: 64GiB",
        "maxQueue: 5000",
        "models:",
        `  stream: {path: ${JSON.stringify(model)}, extraArgs: ["--parallel", "${n + 100}"], env: {FAKE_LLAMA_TOKENS: "20", FAKE_LLAMA_TOKEN_INTERVAL_MS: "50"}}`,
      ].join("\n") + "\n",
    );
    const env = {
      ...fakeLlamaEnv({ loadMs: 20 }),
      GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    };
    // idle RSS: the proxy after start (nothing loaded, 1 s settle) vs a bare node process
    proxy = await startGglibProxy(["--config", cfg], env);
    bare = spawnTracked(process.execPath, ["-e", "setInterval(() => {}, 1000)"]);
    await sleep(1000);
    const idle = procMem(proxy.pid).rss;
    const bareRss = procMem(bare.pid!).rss;
    await stopTracked(bare, 1000);
    rows.push(
      row({
        section,
        metric: "idle RSS of gglib proxy (started, no model loaded) vs a bare node process",
        value: idle / MiB,
        baseline: bareRss / MiB,
        baselineName: "node -e 'setInterval(…)'",
        unit: "MiB",
        reps: 1,
        note: `proxy runs ${proxy.runtime === "compiled" ? "the compiled CLI" : "src/ through tsx (dist/ stale)"}`,
      }),
    );

    await proxyLoad(proxy.url, "stream");
    const direct = `http://127.0.0.1:${await upstreamPort(proxy.url, "stream")}`;
    const afterLoad = procMem(proxy.pid).rss;
    await streams(proxy.url, 50); // warm-up
    await streams(direct, 50);
    // the floor of any Node.js proxy: node:http + undici, nothing else (bench/min-node-proxy.mjs), same streams
    floor = spawnTracked(process.execPath, [join(ROOT, "bench", "min-node-proxy.mjs"), direct], { stdout: "pipe" });
    const f = floor;
    const floorUrl = await new Promise<string>((resolve, reject) => {
      f.stdout!.once("data", (d: Buffer) =>
        resolve(`http://127.0.0.1:${(JSON.parse(d.toString()) as { port: number }).port}`),
      );
      f.once("exit", () => reject(new Error("min-node-proxy.mjs exited")));
    });
    await streams(floorUrl, 50);
    const viaProxy: StreamsResult[] = [];
    const viaDirect: StreamsResult[] = [];
    const peaks: number[] = [];
    const floorPeaks: number[] = [];
    let floorErrors = 0;
    let hwmReset = true;
    for (let r = 0; r < reps; r++) {
      log(`[scale] ${n} concurrent streams, rep ${r + 1}/${reps}: direct, the bare Node proxy, then the proxy…`);
      viaDirect.push(await streams(direct, n));
      await sleep(300);
      hwmReset = resetHwm(f.pid!) && hwmReset;
      floorErrors += (await streams(floorUrl, n)).errors;
      floorPeaks.push(procMem(f.pid!).hwm);
      await sleep(300);
      hwmReset = resetHwm(proxy.pid) && hwmReset;
      const sp = await streams(proxy.url, n);
      peaks.push(procMem(proxy.pid).hwm);
      viaProxy.push(sp);
      log(
        `[scale]   direct ${viaDirect[r]!.errors} errors p99 first ${viaDirect[r]!.p99First.toFixed(1)} ms; proxy ${sp.errors} errors p99 first ${sp.p99First.toFixed(1)} ms, peak RSS ${(peaks[r]! / MiB).toFixed(0)} MiB`,
      );
      await sleep(300);
    }
    const errs = viaProxy.reduce((s, x) => s + x.errors, 0);
    const peak = Math.max(...peaks);
    const p99p = viaProxy.map((x) => x.p99First);
    const p99d = viaDirect.map((x) => x.p99First);
    rows.push(
      row({
        section,
        metric: `${n} concurrent streams: p99 time to first data event, gglib proxy vs direct`,
        value: median(p99p),
        baseline: median(p99d),
        baselineName: "direct",
        unit: "ms",
        spread: spread(p99p),
        baselineSpread: spread(p99d),
        reps,
        note: `errors: proxy ${errs}, direct ${viaDirect.reduce((s, x) => s + x.errors, 0)} (of ${n * reps}); p50 first event proxy ${median(viaProxy.map((x) => x.p50First)).toFixed(1)} ms, direct ${median(viaDirect.map((x) => x.p50First)).toFixed(1)} ms; wall proxy ${median(viaProxy.map((x) => x.seconds)).toFixed(2)} s, direct ${median(viaDirect.map((x) => x.seconds)).toFixed(2)} s (20 tokens at 50 ms)`,
      }),
    );
    rows.push(
      row({
        section,
        metric: `${n} concurrent streams: peak RSS of the gglib proxy process (VmHWM) vs its idle RSS`,
        value: peak / MiB,
        baseline: idle / MiB,
        baselineName: "idle RSS (same process)",
        unit: "MiB",
        spread: spread(peaks.map((p) => p / MiB)),
        reps,
        target: "0 errors and < 150 MB (143 MiB)",
        met: errs === 0 && peak < 150e6,
        note: `errors ${errs}; RSS after the model loaded ${(afterLoad / MiB).toFixed(0)} MiB; VmHWM ${hwmReset ? "reset (clear_refs) before each run" : "NOT reset (no permission): peak since start"}`,
      }),
    );
    rows.push(
      row({
        section,
        metric: `${n} concurrent streams: peak RSS, gglib proxy vs a bare Node proxy (node:http + undici, nothing else)`,
        value: peak / MiB,
        baseline: Math.max(...floorPeaks) / MiB,
        baselineName: "bench/min-node-proxy.mjs",
        unit: "MiB",
        spread: spread(peaks.map((p) => p / MiB)),
        baselineSpread: spread(floorPeaks.map((p) => p / MiB)),
        reps,
        target: "≤ 120 MB (114 MiB)",
        met: errs === 0 && peak <= 120e6,
        note: `the floor of a one-process Node proxy for the same streams (errors ${floorErrors})`,
      }),
    );
  } finally {
    if (bare) await stopTracked(bare, 1000);
    if (floor) await stopTracked(floor, 1000);
    if (proxy) await proxy.stop();
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

runStandalone(import.meta.url, "scale and footprint of gglib proxy", () => benchScale());
