/**
 * `npm run bench`: the proxy's cost, each number measured side by side with its baseline in one run.
 *
 *   1. added latency p50/p99: POST /v1/chat/completions through the proxy vs straight to the same llama-server
 *      (the fake in FAKE_LLAMA_INSTANT mode: it answers at once, so all that is measured is the path);
 *   2. requests/s through the proxy vs direct (same upstream, 16 connections);
 *   3. cold load: through the proxy (POST /models/load, spawn → ready) vs a raw start → /health 200 of the same
 *      model with the same binary (the real llama-server when one is available, else the fake);
 *   4. 1,000 concurrent streams through the proxy (and direct, for the time): errors, proxy RSS.
 *
 * The proxy runs as its own process (`gglib proxy`), so its RSS is its own. Results go to bench/results/
 * (JSON + a markdown table; latest.md is the last run).
 *
 *   npm run bench                 everything
 *   npm run bench -- --quick      shorter runs
 *   GGLIB_BENCH_LLAMA_SERVER=/path/llama-server npm run bench    real binary for the cold-load row
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import { findFreePort } from "../src/process/ports.js";
import { chatLoad, ensureBuilt, waitHttp, type ChatLoad } from "./lib.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const quick = process.argv.includes("--quick");
const SECONDS = quick ? 2 : 5;
const STREAMS = Number(process.env.GGLIB_BENCH_STREAMS ?? 1000);

interface Row {
  metric: string;
  proxy: number;
  direct: number;
  unit: string;
  ratio: number;
  note?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** CPU time (user + system) of a process so far, ms. */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

function rss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function startProxy(configPath: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  // bin/gglib.js: the compiled CLI (main() builds it first), as a user runs it; not tsx, whose compiler would
  // inflate the proxy's RSS and CPU
  const child = spawn(
    process.execPath,
    [join(ROOT, "bin/gglib.js"), "proxy", "--config", configPath, "--port", "0", "--json"],
    {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  return new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error(`proxy did not start: ${out}`)), 30_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.includes('"event":"ready"'));
      if (line) {
        clearTimeout(t);
        resolve({ child, url: (JSON.parse(line) as { url: string }).url });
      }
    });
    child.on("exit", (c) => reject(new Error(`proxy exited with ${c}: ${out}`)));
  });
}

async function stopProxy(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
  if (child.exitCode === null) child.kill("SIGKILL");
}

const INSTANT_BODY = JSON.stringify({ model: "instant", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
/** `connections` loops sending the instant chat request back to back for `seconds`; latency per request in ms. */
const load = (url: string, connections: number, seconds: number): Promise<ChatLoad> =>
  chatLoad(url, connections, seconds, INSTANT_BODY);

async function streams(
  url: string,
  n: number,
  pid?: number,
): Promise<{ ok: number; errors: number; seconds: number; peakRss: number }> {
  const agent = new Agent({ connections: n + 16, headersTimeout: 120_000, bodyTimeout: 120_000 });
  let peak = pid ? rss(pid) : 0;
  const sampler = pid ? setInterval(() => (peak = Math.max(peak, rss(pid))), 50) : undefined;
  const t0 = performance.now();
  const body = JSON.stringify({
    model: "stream",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 20,
    stream: true,
  });
  const results = await Promise.all(
    Array.from({ length: n }, async () => {
      try {
        const r = await request(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          dispatcher: agent,
        });
        const text = await r.body.text();
        return r.statusCode === 200 && text.trimEnd().endsWith("data: [DONE]") && !text.includes('"error"');
      } catch {
        return false;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (sampler) clearInterval(sampler);
  if (pid) peak = Math.max(peak, rss(pid));
  await agent.close();
  const ok = results.filter(Boolean).length;
  return { ok, errors: n - ok, seconds, peakRss: peak };
}

async function rawStartToReady(bin: string, model: string, env: NodeJS.ProcessEnv): Promise<number> {
  const port = await findFreePort(30_000 + Math.floor(Math.random() * 20_000));
  const t0 = performance.now();
  const child = spawn(
    bin,
    ["-m", model, "--host", "127.0.0.1", "--port", String(port), "--alias", "cold", "--metrics"],
    { env, stdio: "ignore" },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    await Promise.race([
      waitHttp(`http://127.0.0.1:${port}/health`, 60_000),
      exited.then(() => {
        throw new Error(`${bin} exited with ${child.exitCode ?? child.signalCode} before it was ready`);
      }),
    ]);
    return performance.now() - t0;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  }
}

function findRealLlamaServer(): string | undefined {
  for (const p of [
    process.env.GGLIB_BENCH_LLAMA_SERVER,
    process.env.GGLIB_TEST_LLAMA_SERVER,
    process.env.GGLIB_LLAMA_SERVER,
  ]) {
    if (p && existsSync(p)) return p;
  }
  return undefined;
}

async function main(): Promise<void> {
  const build = ensureBuilt();
  if (!build.compiled) console.error(`note: ${build.note}`);
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-"));
  const rows: Row[] = [];
  const extra: Record<string, unknown> = {};
  const log = (s: string) => process.stderr.write(s + "\n");
  try {
    if (!process.argv.includes("--only-cold")) await hotPath(dir, rows, extra, log);
    await coldLoad(dir, rows, extra, log);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report(rows, extra);
}

async function hotPath(
  dir: string,
  rows: Row[],
  extra: Record<string, unknown>,
  log: (s: string) => void,
): Promise<void> {
  {
    const instant = writeFakeModel(dir, "instant");
    const stream = writeFakeModel(dir, "stream");
    const cfg = join(dir, "bench.yaml");
    writeFileSync(
      cfg,
      [
        "memoryBudget: 64GiB",
        "maxQueue: 5000",
        "models:",
        `  instant: {path: ${JSON.stringify(instant)}, env: {FAKE_LLAMA_INSTANT: "1"}}`,
        `  stream: {path: ${JSON.stringify(stream)}, extraArgs: ["--parallel", "1100"], env: {FAKE_LLAMA_TOKENS: "20", FAKE_LLAMA_TOKEN_INTERVAL_MS: "50"}}`,
      ].join("\n") + "\n",
    );
    const env = {
      ...fakeLlamaEnv({ loadMs: 20 }),
      GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    };
    log("starting the proxy (gglib proxy) over the fake llama-server…");
    const { child, url } = await startProxy(cfg, env);
    try {
      for (const m of ["instant", "stream"]) {
        const r = await fetch(`${url}/models/load`, { method: "POST", body: JSON.stringify({ model: m }) });
        if (r.status !== 200) throw new Error(`load ${m}: ${await r.text()}`);
      }
      const st = (await (await fetch(`${url}/api/status`)).json()) as { models: { name: string; port: number }[] };
      const direct = (m: string) => `http://127.0.0.1:${st.models.find((x) => x.name === m)!.port}`;

      // 1 + 2: latency (1 connection, sequential) and throughput (16 connections), alternating direct/proxy,
      // 2 rounds; the same undici client for both, microsecond timing.
      log(`latency and throughput: ${SECONDS}s per run, 2 rounds…`);
      await load(url, 4, 1);
      await load(direct("instant"), 4, 1); // warm-up
      const lat = { proxy: [] as ChatLoad[], direct: [] as ChatLoad[] };
      const thr = { proxy: [] as ChatLoad[], direct: [] as ChatLoad[] };
      const proxyCpu: number[] = [];
      for (let round = 0; round < 2; round++) {
        lat.direct.push(await load(direct("instant"), 1, SECONDS));
        lat.proxy.push(await load(url, 1, SECONDS));
        const c0 = cpuMs(child.pid!);
        const tp = await load(url, 16, SECONDS);
        proxyCpu.push(((cpuMs(child.pid!) - c0) * 1000) / Math.max(1, tp.requests));
        thr.proxy.push(tp);
        thr.direct.push(await load(direct("instant"), 16, SECONDS));
      }
      const avg = (rs: ChatLoad[], f: (r: ChatLoad) => number) => rs.reduce((s, r) => s + f(r), 0) / rs.length;
      const p50p = avg(lat.proxy, (r) => r.p50);
      const p50d = avg(lat.direct, (r) => r.p50);
      const p99p = avg(lat.proxy, (r) => r.p99);
      const p99d = avg(lat.direct, (r) => r.p99);
      rows.push({
        metric: "latency p50 (1 connection)",
        proxy: p50p,
        direct: p50d,
        unit: "ms",
        ratio: p50p / p50d,
        note: `added ${((p50p - p50d) * 1000).toFixed(0)} µs`,
      });
      rows.push({
        metric: "latency p99 (1 connection)",
        proxy: p99p,
        direct: p99d,
        unit: "ms",
        ratio: p99p / p99d,
        note: `added ${((p99p - p99d) * 1000).toFixed(0)} µs`,
      });
      const rp = avg(thr.proxy, (r) => r.rps);
      const rd = avg(thr.direct, (r) => r.rps);
      const errs = [...lat.proxy, ...thr.proxy].reduce((s, r) => s + r.errors, 0);
      rows.push({
        metric: "requests/s (16 connections)",
        proxy: rp,
        direct: rd,
        unit: "req/s",
        ratio: rp / rd,
        note: `${errs} errors through the proxy; proxy CPU ${median(proxyCpu).toFixed(0)} µs per request`,
      });
      extra.latencyRuns = {
        proxy: lat.proxy,
        direct: lat.direct,
        throughputProxy: thr.proxy,
        throughputDirect: thr.direct,
      };

      // 4: 1,000 concurrent streams, direct then through the proxy
      log(`${STREAMS} concurrent streams (20 tokens at 50 ms)…`);
      const rssBefore = rss(child.pid!);
      const sd = await streams(direct("stream"), STREAMS);
      log(`  direct: ${sd.ok} ok, ${sd.errors} errors in ${sd.seconds.toFixed(2)} s`);
      const sp = await streams(url, STREAMS, child.pid);
      log(`  proxy: ${sp.ok} ok, ${sp.errors} errors in ${sp.seconds.toFixed(2)} s`);
      rows.push({
        metric: `${STREAMS} concurrent streams: wall time`,
        proxy: sp.seconds,
        direct: sd.seconds,
        unit: "s",
        ratio: sp.seconds / sd.seconds,
        note: `errors: proxy ${sp.errors}, direct ${sd.errors}; proxy RSS ${(rssBefore / 2 ** 20).toFixed(0)} → peak ${(sp.peakRss / 2 ** 20).toFixed(0)} MiB`,
      });
      extra.streams = { proxy: sp, direct: sd, proxyRssBeforeBytes: rssBefore };
    } finally {
      await stopProxy(child);
    }
  }
}

async function coldLoad(
  dir: string,
  rows: Row[],
  extra: Record<string, unknown>,
  log: (s: string) => void,
): Promise<void> {
  {
    // 3: cold load: raw start→ready vs through the proxy, same binary and model, 5 each, alternating
    const real = findRealLlamaServer();
    const bin = real ?? FAKE_LLAMA_SERVER;
    const coldModel = real ? await writeTinyModel(dir, { name: "cold", kind: "chat" }) : writeFakeModel(dir, "cold");
    const coldCfg = join(dir, "cold.yaml");
    writeFileSync(coldCfg, `memoryBudget: 64GiB\nmodels:\n  cold: {path: ${JSON.stringify(coldModel)}}\n`);
    const coldEnv = {
      ...fakeLlamaEnv({ loadMs: 150 }),
      GGLIB_LLAMA_SERVER: bin,
      GGLIB_DATA_DIR: join(dir, "data2"),
      NO_COLOR: "1",
    };
    log(
      `cold load with ${real ? "the real llama-server " + real : "the fake llama-server (set GGLIB_BENCH_LLAMA_SERVER for the real one)"}…`,
    );
    const raw: number[] = [];
    const viaProxy: number[] = [];
    const firstReq: number[] = [];
    const p = await startProxy(coldCfg, coldEnv);
    try {
      for (let i = 0; i < (quick ? 3 : 9); i++) {
        log(`  round ${i + 1}: raw start…`);
        raw.push(await rawStartToReady(bin, coldModel, coldEnv));
        log(`  round ${i + 1}: through the proxy…`);
        let t0 = performance.now();
        const r = await fetch(`${p.url}/models/load`, { method: "POST", body: JSON.stringify({ model: "cold" }) });
        await r.arrayBuffer();
        viaProxy.push(performance.now() - t0);
        await fetch(`${p.url}/models/unload`, { method: "POST", body: JSON.stringify({ model: "cold" }) }).then((x) =>
          x.arrayBuffer(),
        );
        for (let k = 0; k < 200; k++) {
          const s = (await (await fetch(`${p.url}/api/status`)).json()) as { models: { state: string }[] };
          if (s.models[0]!.state === "unloaded") break;
          await new Promise((res) => setTimeout(res, 10));
        }
        // first request on a cold model (load + answer), for reference
        t0 = performance.now();
        const c = await fetch(`${p.url}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: "cold", messages: [{ role: "user", content: "hi" }], max_tokens: 1 }),
        });
        await c.arrayBuffer();
        firstReq.push(performance.now() - t0);
        await fetch(`${p.url}/models/unload`, { method: "POST", body: JSON.stringify({ model: "cold" }) }).then((x) =>
          x.arrayBuffer(),
        );
        for (let k = 0; k < 200; k++) {
          const s = (await (await fetch(`${p.url}/api/status`)).json()) as { models: { state: string }[] };
          if (s.models[0]!.state === "unloaded") break;
          await new Promise((res) => setTimeout(res, 10));
        }
      }
    } finally {
      await stopProxy(p.child);
    }
    const rawMed = median(raw);
    const proxMed = median(viaProxy);
    rows.push({
      metric: `cold load (${real ? "real llama-server, tiny model" : "fake llama-server"}), median of ${raw.length}`,
      proxy: proxMed,
      direct: rawMed,
      unit: "ms",
      ratio: proxMed / rawMed,
      note: `proxy: POST /models/load until ready; raw: spawn until /health 200; first request on a cold model ${median(firstReq).toFixed(0)} ms`,
    });
    extra.cold = { raw, viaProxy, firstRequest: firstReq, binary: bin };
  }
}

function report(rows: Row[], extra: Record<string, unknown>): void {
  const at = new Date().toISOString();
  const machine = `${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Node ${process.version}`;
  const md = [
    `# Proxy benchmark (${at})`,
    "",
    `Machine: ${machine}. Each row is measured side by side in one run (${quick ? "quick" : "full"} mode).`,
    "",
    "| metric | through the proxy | direct | ratio (proxy / direct) | notes |",
    "|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.metric} | ${fmt(r.proxy)} ${r.unit} | ${fmt(r.direct)} ${r.unit} | ${r.ratio.toFixed(2)}× | ${r.note ?? ""} |`,
    ),
    "",
  ].join("\n");
  const outDir = join(ROOT, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  const stamp = at.replace(/[:.]/g, "-");
  writeFileSync(
    join(outDir, `proxy-${stamp}.json`),
    JSON.stringify({ at, machine, quick, rows, extra }, null, 2) + "\n",
  );
  writeFileSync(join(outDir, `proxy-${stamp}.md`), md);
  writeFileSync(join(outDir, "latest.md"), md);
  process.stdout.write(md + "\n");
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exitCode = 1;
});
