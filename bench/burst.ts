/**
 * Bursts and the cost of issue 26's guards.
 *
 *   burst:    `gglib proxy` (its own process, so its RSS and open fds are its own) on the REAL llama-server with
 *             tiny models: 300 concurrent chat requests (half streamed, max_tokens 24) (a) on one loaded model, sent
 *             as its first health check goes out, (b) over three models with --max-models 1. Counted: answered (the
 *             complete answer), refused (503 + Retry-After), cut (anything else: a 502, a 200 stream that ends in an
 *             error or early, a reset, no answer); time to drain (first request sent → last answer read); peak
 *             llama-server children (sampled every 25 ms); models killed (crash events on --json); the proxy's RSS
 *             and open fds (/proc/<pid>/fd) before the burst, right after it drained and 5 s later. Each burst is
 *             then sent the same way through the proxy before issue 26 (the baseline below), for comparison.
 *   hot path: bench/hot-path-vs.ts, the instant fake (FAKE_LLAMA_INSTANT) behind this checkout's proxy and behind
 *             the same proxy built from the commit before issue 26's fixes (9d47877: no connection cap, no nesting
 *             scan, no Origin/Host check), alternating: latency p50/p99 at 1 connection, req/s at 16 on a model of 4
 *             slots and on one of 16, and req/s at 16 with a 64 KiB body and a same-origin `Origin` header. Only the
 *             ratios mean something. The baseline (bench/checkout.ts) is a detached git worktree made in the temp
 *             folder and built there (about a minute), removed at the end; or GGLIB_BENCH_BASELINE_DIR, a built
 *             checkout of your own (GGLIB_BENCH_BASELINE_REV picks another commit).
 *
 *   npx tsx bench/burst.ts [--quick] [--json]
 *   GGLIB_BENCH_BURST=100 npx tsx bench/burst.ts      a smaller burst (default 300)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { Agent, request } from "undici";
import { writeTinyModel } from "../test/support/tiny-models.js";
import {
  QUICK,
  ROOT,
  compiledCliFresh,
  ensureBuilt,
  killLeftovers,
  log,
  machine,
  markdownTable,
  pidsWithArg,
  procMem,
  row,
  sleep,
  type Row,
} from "./lib.js";
import { realLlamaServer } from "./swap.js";
import { baseLabel, baselineCheckout, fdCount, startProxy, type Proxy } from "./checkout.js";
import { hotPathVs } from "./hot-path-vs.js";

const REQUESTS = Number(process.env.GGLIB_BENCH_BURST ?? 300);
const MAX_TOKENS = 24;

/** `data:` payloads of an SSE text. */
function sseData(text: string): string[] {
  return text
    .split(/\r?\n\r?\n/)
    .flatMap((ev) => ev.split(/\r?\n/).filter((l) => l.startsWith("data:")))
    .map((l) => l.slice(5).trim());
}

/** One request: "answered", "refused" (503 + Retry-After) or why it counts as cut. */
async function one(agent: Agent, url: string, model: string, stream: boolean, i: number): Promise<string> {
  try {
    const r = await request(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: `Hello number ${i}` }],
        max_tokens: MAX_TOKENS,
        stream,
      }),
      dispatcher: agent,
      signal: AbortSignal.timeout(120_000),
    });
    const text = await r.body.text();
    if (r.statusCode === 503) return Number(r.headers["retry-after"]) >= 1 ? "refused" : "503 without Retry-After";
    if (r.statusCode !== 200) return `${r.statusCode}: ${text.slice(0, 160)}`;
    if (stream) {
      const events = sseData(text);
      if (events.at(-1) !== "[DONE]") return "stream cut short";
      const e = events.find((x) => x.includes('"error"'));
      if (e) return `stream error after 200: ${e.slice(0, 160)}`;
      return events.some((x) => x.includes('"finish_reason":"length"')) ? "answered" : "stream without its end";
    }
    const j = JSON.parse(text) as { model?: string; choices?: { finish_reason?: string }[] };
    if (j.model !== model) return `answered by ${j.model}, asked ${model}`;
    return j.choices?.[0]?.finish_reason === "length" ? "answered" : `incomplete: ${text.slice(0, 160)}`;
  } catch (e) {
    return `reset or no answer: ${(e as Error).message.slice(0, 160)}`;
  }
}

/** "<count> × <reason>" per kind of cut, most frequent first; model names in quotes do not split a kind. */
function groupCuts(cuts: string[]): string[] {
  const kinds = new Map<string, number>();
  for (const c of cuts) {
    const k = c.replace(/'[^']*'/g, "'…'").slice(0, 140);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  return [...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} × ${k}`);
}

interface BurstResult {
  answered: number;
  refused: number;
  cut: number;
  /** Why requests were cut, grouped (model names left out): "<count> × <reason>". */
  cuts: string[];
  drainMs: number;
  peakChildren: number;
  peakRss: number;
  before: { rss: number; fds: number };
  after: { rss: number; fds: number };
  idle: { rss: number; fds: number };
  crashes: number;
}

async function burst(p: Proxy, dir: string, bin: string, models: string[]): Promise<BurstResult> {
  const children = (): number =>
    pidsWithArg(dir).filter((x) => {
      try {
        return readFileSync(`/proc/${x}/cmdline`, "utf8").includes(bin);
      } catch {
        return false;
      }
    }).length;
  const snap = () => ({ rss: procMem(p.pid).rss, fds: fdCount(p.pid) });
  const before = snap();
  let peakChildren = children();
  let peakRss = before.rss;
  const sampler = setInterval(() => {
    peakChildren = Math.max(peakChildren, children());
    peakRss = Math.max(peakRss, procMem(p.pid).rss);
  }, 25);
  const agent = new Agent({ connections: REQUESTS + 8, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const t0 = performance.now();
  let outcomes: string[];
  try {
    outcomes = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => one(agent, p.url, models[i % models.length]!, i % 2 === 0, i)),
    );
  } finally {
    clearInterval(sampler);
  }
  const drainMs = performance.now() - t0;
  await agent.close();
  const after = snap();
  await sleep(5_000);
  const idle = snap();
  const cuts = outcomes.filter((o) => o !== "answered" && o !== "refused");
  return {
    answered: outcomes.filter((o) => o === "answered").length,
    refused: outcomes.filter((o) => o === "refused").length,
    cut: cuts.length,
    cuts: groupCuts(cuts),
    drainMs,
    peakChildren: Math.max(peakChildren, children()),
    peakRss,
    before,
    after,
    idle,
    crashes: p.crashes(),
  };
}

const MiB = (b: number): string => (b / 2 ** 20).toFixed(0);

function burstRows(section: string, what: string, limit: number, r: BurstResult): Row[] {
  const base = { section, reps: 1 };
  return [
    row({
      ...base,
      metric: `${what}: answered of ${REQUESTS} concurrent requests (half streamed, max_tokens ${MAX_TOKENS})`,
      value: r.answered,
      baseline: REQUESTS,
      baselineName: "sent",
      unit: "req",
      note: `refused ${r.refused} (503 + Retry-After), cut ${r.cut}${r.cuts.length ? ` (${r.cuts.join("; ")})` : ""}; models killed ${r.crashes}`,
    }),
    row({
      ...base,
      metric: `${what}: time to drain (first sent → last answer read)`,
      value: r.drainMs,
      baseline: NaN,
      baselineName: "none",
      unit: "ms",
    }),
    row({
      ...base,
      metric: `${what}: peak llama-server children (sampled every 25 ms)`,
      value: r.peakChildren,
      baseline: limit,
      baselineName: "limit",
      unit: "proc",
    }),
    row({
      ...base,
      metric: `${what}: proxy RSS after the burst drained vs before`,
      value: r.after.rss / 2 ** 20,
      baseline: r.before.rss / 2 ** 20,
      baselineName: "before",
      unit: "MiB",
      note: `peak ${MiB(r.peakRss)} MiB; 5 s later ${MiB(r.idle.rss)} MiB`,
    }),
    row({
      ...base,
      metric: `${what}: proxy open fds after the burst drained vs before`,
      value: r.after.fds,
      baseline: r.before.fds,
      baselineName: "before",
      unit: "fd",
      note: `5 s later ${r.idle.fds}`,
    }),
  ];
}

/** One burst case through the proxy of checkout `root`, from a fresh proxy and a fresh models folder. */
async function burstCase(
  root: string,
  bin: string,
  what: string,
  models: string[],
  args: string[],
): Promise<BurstResult> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-burst-"));
  let p: Proxy | undefined;
  try {
    mkdirSync(join(dir, "models"));
    for (const [i, name] of models.entries())
      await writeTinyModel(join(dir, "models"), { name, kind: "chat", seed: i + 1 });
    p = await startProxy(root, ["--models-dir", join(dir, "models"), ...args], {
      ...process.env,
      GGLIB_LLAMA_SERVER: bin,
      GGLIB_DATA_DIR: join(dir, "data"),
      GGLIB_CONTEXT_CACHE_DIR: join(dir, "kv-context"),
      NO_COLOR: "1",
    });
    const warm = new Agent({ connections: 1 });
    const first = await one(warm, p.url, "tiny-a", false, -1);
    await warm.close();
    if (first !== "answered") throw new Error(`the warm-up request was not answered: ${first}`);
    // one model: the burst arrives as the first health check (5 s after ready) goes out, the moment that used
    // to get a healthy model killed
    if (models.length === 1) await sleep(4_500);
    log(`[burst] ${what} (${root}): ${REQUESTS} concurrent requests…`);
    const r = await burst(p, dir, bin, models);
    log(
      `[burst] ${what}: answered ${r.answered}, refused ${r.refused}, cut ${r.cut}, ${r.drainMs.toFixed(0)} ms, ` +
        `peak children ${r.peakChildren}, killed ${r.crashes}`,
    );
    return r;
  } finally {
    if (p) await p.stop();
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Each burst through this checkout, then (when there is one) through the baseline checkout for comparison. */
async function bursts(section: string, base: { dir?: string; note: string }): Promise<Row[]> {
  const bin = realLlamaServer();
  if (!bin)
    return [
      row({
        section,
        metric: "bursts on the real llama-server",
        value: NaN,
        baseline: NaN,
        baselineName: "–",
        unit: "",
        reps: 0,
        note: "NOT MEASURED: no real llama-server (npm run rig:llama-server builds one, or set GGLIB_BENCH_LLAMA_SERVER)",
      }),
    ];
  const rows: Row[] = [];
  const cases: [string, string[], string[]][] = [
    ["one model", ["tiny-a"], []],
    ["three models, --max-models 1", ["tiny-a", "tiny-b", "tiny-c"], ["--max-models", "1"]],
  ];
  for (const [what, models, args] of cases) {
    rows.push(...burstRows(section, what, 1, await burstCase(ROOT, bin, what, models, args)));
    if (!base.dir || !compiledCliFresh(base.dir)) continue;
    try {
      const r = await burstCase(base.dir, bin, what, models, args);
      rows.push(
        row({
          section,
          metric: `${what}: the same burst through the proxy of ${baseLabel()}: answered`,
          value: r.answered,
          baseline: REQUESTS,
          baselineName: "sent",
          unit: "req",
          reps: 1,
          note:
            `${base.note}: refused ${r.refused}, cut ${r.cut}${r.cuts.length ? ` (${r.cuts.join("; ")})` : ""}, ` +
            `models killed ${r.crashes}, peak children ${r.peakChildren}, drained in ${r.drainMs.toFixed(0)} ms, ` +
            `RSS ${MiB(r.before.rss)} → ${MiB(r.after.rss)} MiB, fds ${r.before.fds} → ${r.after.fds}`,
        }),
      );
    } catch (e) {
      log(`[burst] ${what} through ${baseLabel()} failed: ${(e as Error).message}`);
    }
  }
  return rows;
}

export async function benchBurst(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const base = baselineCheckout();
  try {
    return [
      ...(await bursts("7 bursts (real llama-server)", base)),
      ...(await hotPathVs(`7 hot path vs ${baseLabel()}`, quick, base.dir, base.note)),
    ];
  } finally {
    base.done();
  }
}

/** Run alone: the table on stdout and in bench/results/burst-latest.{md,json}, with the machine and its load. */
async function main(): Promise<void> {
  const at = new Date().toISOString();
  const la0 = loadavg();
  const build = ensureBuilt();
  log(`[burst] ${build.note}`);
  const rows = await benchBurst();
  const la1 = loadavg();
  const m = machine();
  const env = ["GGLIB_BENCH_BURST", "GGLIB_BENCH_BASELINE_REV", "GGLIB_BENCH_BASELINE_DIR"]
    .filter((k) => process.env[k])
    .map((k) => `${k}=${process.env[k]} `)
    .join("");
  const command = `${env}npx tsx bench/burst.ts${QUICK ? " --quick" : ""}`;
  const md = [
    `# bursts and the hot path (${at})`,
    "",
    `Command: \`${command}\`. Machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}; ` +
      `shared with other jobs: load average ${la0.map((x) => x.toFixed(2)).join(" / ")} at the start, ` +
      `${la1.map((x) => x.toFixed(2)).join(" / ")} at the end (1/5/15 min; each row shows the 1-min value when it was measured).`,
    "",
    markdownTable(rows),
    "",
  ].join("\n");
  const out = join(ROOT, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "burst-latest.md"), md);
  writeFileSync(
    join(out, "burst-latest.json"),
    JSON.stringify({ at, command, machine: m, build, loadavgStart: la0, loadavgEnd: la1, rows }, null, 2) + "\n",
  );
  process.stdout.write(md + "\n");
  if (process.argv.includes("--json")) process.stdout.write(JSON.stringify(rows, null, 2) + "\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  main().catch((e: unknown) => {
    process.stderr.write(`bench/burst.ts failed: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
