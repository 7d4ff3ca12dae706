/**
 * The whole benchmark: bench/run.ts (proxy vs direct, cold load, 1,000 streams; run as its own process) and then
 * bench/nginx.ts, streaming.ts, swap.ts, scale.ts, context.ts, burst.ts, stores.ts, agent-session.ts and
 * families.ts in this process, one after the other.
 * Writes bench/results/all-latest.json and bench/results/all-latest.md (machine, command, load average, one table,
 * the targets met or not). Every process it starts is killed at the end, also on failure or Ctrl-C.
 *
 *   npx tsx bench/all.ts                  everything (about 6 minutes on 2 cores, and 5 more for burst.ts)
 *   npx tsx bench/all.ts --quick          shorter runs, fewer repetitions (about 3 minutes)
 *   npx tsx bench/all.ts --only nginx,swap    only these sections
 *                                         (run, nginx, streaming, swap, scale, context, burst, stores, agent,
 *                                         families)
 *
 * Needs root for apt-get (nginx-light, wrk, tcpdump, hyperfine when missing; each section says plainly when it
 * could not measure something) and the rig's real llama-server (npm run rig:llama-server) for sections 2b, 3, 6,
 * 7, 8 and 9; section 7 builds the commit before issue 26 in a temporary git worktree as its hot-path baseline.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { QUICK, ROOT, ensureBuilt, fmt, log, machine, markdownTable, spawnTracked, type Row } from "./lib.js";
import { benchNginx } from "./nginx.js";
import { benchStreaming } from "./streaming.js";
import { benchSwap, realLlamaServer } from "./swap.js";
import { benchScale } from "./scale.js";
import { benchContext } from "./context.js";
import { benchBurst } from "./burst.js";
import { benchStores } from "./stores.js";
import { benchAgentSession, writeAgentSessionResults } from "./agent-session.js";
import { benchFamilies } from "./families.js";

interface Section {
  name: string;
  seconds: number;
  loadavgBefore: number;
  loadavgAfter: number;
  error?: string;
}

interface RunTsRow {
  metric: string;
  proxy: number;
  direct: number;
  unit: string;
  ratio: number;
  note?: string;
}

/** bench/run.ts as a child process; its rows from the proxy-<stamp>.json it wrote. */
async function runTs(quick: boolean): Promise<{ rows: Row[]; markdown: string; file?: string }> {
  const started = Date.now();
  // its cold-load row uses the real llama-server only when told where it is
  const real = realLlamaServer();
  const env = {
    ...process.env,
    ...(real && !process.env.GGLIB_BENCH_LLAMA_SERVER ? { GGLIB_BENCH_LLAMA_SERVER: real } : {}),
  };
  const child = spawnTracked(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench", "run.ts"), ...(quick ? ["--quick"] : [])],
    { stdout: "pipe", stderr: "inherit", env },
  );
  let md = "";
  child.stdout!.on("data", (d: Buffer) => (md += d.toString()));
  const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  if (code !== 0) throw new Error(`bench/run.ts exited with ${code}`);
  const dir = join(ROOT, "bench", "results");
  const files = readdirSync(dir)
    .filter((f) => /^proxy-.*\.json$/.test(f))
    .map((f) => ({ f, m: statSync(join(dir, f)).mtimeMs }))
    .filter((x) => x.m >= started - 1000)
    .sort((a, b) => b.m - a.m);
  if (!files[0]) throw new Error("bench/run.ts wrote no bench/results/proxy-*.json");
  const j = JSON.parse(readFileSync(join(dir, files[0].f), "utf8")) as { rows: RunTsRow[] };
  const la = loadavg()[0]!;
  const rows = j.rows.map((r): Row => ({
    section: "0 bench/run.ts",
    metric: r.metric,
    value: r.proxy,
    baseline: r.direct,
    baselineName: "direct",
    unit: r.unit,
    ratio: r.ratio,
    diff: r.proxy - r.direct,
    reps: 0,
    ...(r.note !== undefined ? { note: r.note } : {}),
    loadavg: la,
  }));
  return { rows, markdown: md, file: files[0].f };
}

function targetsSummary(rows: Row[]): string {
  const t = rows.filter((r) => r.target);
  if (t.length === 0) return "";
  return [
    "## Targets",
    "",
    "| target | measured | baseline | ratio | difference | met |",
    "|---|---|---|---|---|---|",
    ...t.map(
      (r) =>
        `| ${r.target} (${r.metric}) | ${fmt(r.value)} ${r.unit} | ${fmt(r.baseline)} ${r.unit} (${r.baselineName}) | ${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) + "×" : "–"} | ${r.diff >= 0 ? "+" : ""}${fmt(r.diff)} ${r.unit} | ${r.met ? "yes" : "**no**"} |`,
    ),
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const quick = QUICK;
  const onlyArg = process.argv.find((a) => a.startsWith("--only"));
  const only = onlyArg
    ? (onlyArg.includes("=") ? onlyArg.split("=")[1]! : (process.argv[process.argv.indexOf(onlyArg) + 1] ?? "")).split(
        ",",
      )
    : undefined;
  const want = (s: string): boolean => !only || only.includes(s);
  const at = new Date().toISOString();
  const t0 = performance.now();
  const la0 = loadavg();
  const build = ensureBuilt();
  log(`[all] ${build.note}`);
  const rows: Row[] = [];
  const sections: Section[] = [];
  let runMd = "";
  let runFile: string | undefined;
  const steps: [string, () => Promise<Row[]>][] = [
    [
      "run",
      async () => {
        const r = await runTs(quick);
        runMd = r.markdown;
        runFile = r.file;
        return r.rows;
      },
    ],
    ["nginx", () => benchNginx({ quick })],
    ["streaming", () => benchStreaming({ quick })],
    ["swap", () => benchSwap({ quick })],
    ["scale", () => benchScale({ quick })],
    ["context", () => benchContext({ quick })],
    ["burst", () => benchBurst({ quick })],
    ["stores", () => benchStores({ quick })],
    [
      "agent",
      async () => {
        const r = await benchAgentSession({ quick });
        writeAgentSessionResults(r.rows, r.shapes, `npx tsx bench/all.ts${quick ? " --quick" : ""} --only agent`);
        return r.rows;
      },
    ],
    ["families", () => benchFamilies({ quick })],
  ];
  for (const [name, fn] of steps) {
    if (!want(name)) continue;
    const s0 = performance.now();
    const before = loadavg()[0]!;
    log(`[all] ── ${name} (load average ${before.toFixed(2)})`);
    const sec: Section = { name, seconds: 0, loadavgBefore: before, loadavgAfter: 0 };
    try {
      rows.push(...(await fn()));
    } catch (e) {
      sec.error = (e as Error)?.stack ?? String(e);
      log(`[all] ${name} FAILED: ${sec.error}`);
    }
    sec.seconds = (performance.now() - s0) / 1000;
    sec.loadavgAfter = loadavg()[0]!;
    sections.push(sec);
  }
  const seconds = (performance.now() - t0) / 1000;
  const m = machine();
  const command = `npx tsx bench/all.ts${quick ? " --quick" : ""}${only ? ` --only ${only.join(",")}` : ""}`;
  const la1 = loadavg();
  const out = join(ROOT, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, "all-latest.json"),
    JSON.stringify(
      {
        at,
        command,
        quick,
        machine: m,
        build,
        seconds,
        loadavgStart: la0,
        loadavgEnd: la1,
        sections,
        rows,
        runTsResultFile: runFile,
      },
      null,
      2,
    ) + "\n",
  );
  const md = [
    `# gglib benchmark (${at})`,
    "",
    `Command: \`${command}\` (${quick ? "quick" : "full"} mode, ${seconds.toFixed(0)} s). Machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}; ` +
      `shared with other jobs: load average ${la0.map((x) => x.toFixed(2)).join(" / ")} at the start, ${la1.map((x) => x.toFixed(2)).join(" / ")} at the end (1/5/15 min; each row shows the 1-min value when it was measured). ` +
      `CLI: ${build.compiled ? "compiled dist/" : "src/ through tsx"}.`,
    "",
    "Every figure is set against a baseline measured in the same run: ratio = measured / baseline, difference = measured − baseline. " +
      "Medians over the repetitions; spread = min–max of the repetitions (for distributions pooled over all repetitions: –).",
    "",
    markdownTable(rows),
    "",
    targetsSummary(rows),
    "## Sections",
    "",
    ...sections.map(
      (s) =>
        `- ${s.name}: ${s.seconds.toFixed(0)} s, load average ${s.loadavgBefore.toFixed(2)} → ${s.loadavgAfter.toFixed(2)}${s.error ? `, **FAILED**: ${s.error.split("\n")[0]}` : ""}`,
    ),
    "",
  ].join("\n");
  writeFileSync(join(out, "all-latest.md"), md);
  process.stdout.write(md + "\n");
  if (runMd) log(`[all] bench/run.ts wrote bench/results/latest.md too`);
  if (sections.some((s) => s.error)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exitCode = 1;
});
