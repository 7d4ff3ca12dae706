/**
 * The hot path against another build of the proxy (bench/burst.ts, section 7): the instant fake behind this
 * checkout's proxy and behind the baseline's, alternating rounds; the ratio of each round's back-to-back pair.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import {
  ROOT,
  chatLoad as load,
  compiledCliFresh,
  killLeftovers,
  log,
  median,
  row,
  spread,
  type ChatLoad,
  type Row,
} from "./lib.js";
import { baseLabel, startProxy, type Proxy } from "./checkout.js";

export async function hotPathVs(
  section: string,
  quick: boolean,
  baseDir: string | undefined,
  baseName: string,
): Promise<Row[]> {
  const missing = !baseDir
    ? baseName
    : !compiledCliFresh(baseDir)
      ? `${baseDir} has no fresh dist/ (npm run build there)`
      : !compiledCliFresh(ROOT)
        ? "this checkout's dist/ is stale (npm run build)"
        : undefined;
  if (missing)
    return [
      row({
        section,
        metric: "hot path vs the commit before issue 26",
        value: NaN,
        baseline: NaN,
        baselineName: "–",
        unit: "",
        reps: 0,
        note: `NOT MEASURED: ${missing} (see bench/burst.ts)`,
      }),
    ];
  const seconds = quick ? 2 : 3;
  const rounds = quick ? 3 : 8;
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-hot-"));
  const proxies: Proxy[] = [];
  try {
    const instant = writeFakeModel(dir, "instant");
    const wide = writeFakeModel(dir, "wide");
    const cfg = join(dir, "hot.yaml");
    writeFileSync(
      cfg,
      [
        "memoryBudget: 64GiB",
        "maxQueue: 5000",
        "models:",
        `  instant: {path: ${JSON.stringify(instant)}, env: {FAKE_LLAMA_INSTANT: "1"}}`,
        // 16 slots: a connection cap of 18, above the load's 16 connections, so nothing waits in the proxy
        `  wide: {path: ${JSON.stringify(wide)}, extraArgs: ["--parallel", "16"], env: {FAKE_LLAMA_INSTANT: "1"}}`,
      ].join("\n") + "\n",
    );
    const start = async (root: string, name: string): Promise<Proxy> => {
      const p = await startProxy(root, ["--config", cfg], {
        ...fakeLlamaEnv({ loadMs: 20 }),
        GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
        GGLIB_DATA_DIR: join(dir, `data-${name}`),
        NO_COLOR: "1",
      });
      proxies.push(p);
      for (const model of ["instant", "wide"]) {
        const r = await fetch(`${p.url}/models/load`, { method: "POST", body: JSON.stringify({ model }) });
        if (r.status !== 200) throw new Error(`load ${model} (${name}): ${await r.text()}`);
      }
      return p;
    };
    const now = await start(ROOT, "now");
    const before = await start(baseDir!, "before");
    const chat = (model: string) =>
      JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
    const small = chat("instant");
    const big = JSON.stringify({
      model: "wide",
      messages: Array.from({ length: 64 }, (_, i) => ({
        role: i % 2 ? "assistant" : "user",
        content: "x".repeat(1000),
      })),
      max_tokens: 4,
    });
    const kinds = [
      { key: "lat", c: 1, body: small, origin: false },
      { key: "thr", c: 16, body: small, origin: false },
      { key: "wide", c: 16, body: chat("wide"), origin: false },
      { key: "big", c: 16, body: big, origin: true },
    ] as const;
    const res: Record<string, { now: ChatLoad[]; before: ChatLoad[] }> = {};
    for (const k of kinds) res[k.key] = { now: [], before: [] };
    for (const p of [now, before]) await load(p.url, 4, 1, small); // warm-up
    log(`[burst] hot path: ${rounds} rounds × ${seconds} s per run, this checkout vs ${baseName}, alternating…`);
    for (let round = 0; round < rounds; round++) {
      const order: ["now" | "before", Proxy][] = [
        ["now", now],
        ["before", before],
      ];
      if (round % 2) order.reverse();
      for (const k of kinds)
        for (const [name, p] of order)
          res[k.key]![name].push(await load(p.url, k.c, seconds, k.body, k.origin ? { origin: p.url } : {}));
    }
    const errors = Object.values(res)
      .flatMap((x) => [...x.now, ...x.before])
      .reduce((s, l) => s + l.errors, 0);
    const mk = (metric: string, key: string, f: (l: ChatLoad) => number, unit: string, note?: string): Row => {
      const a = res[key]!.now.map(f);
      const b = res[key]!.before.map(f);
      // each round's two runs are back to back: their ratio is less moved by the machine's load than the medians
      const paired = a.map((x, i) => x / b[i]!);
      const pairs = `ratio per round ${paired.map((x) => x.toFixed(2)).join(", ")} (median ${median(paired).toFixed(2)})`;
      return row({
        section,
        metric,
        value: median(a),
        baseline: median(b),
        baselineName: baseLabel(),
        unit,
        spread: spread(a),
        baselineSpread: spread(b),
        reps: rounds,
        note: note ? `${pairs}; ${note}` : pairs,
      });
    };
    const baseNote = `instant fake; this checkout vs ${baseName}, alternating, ${seconds} s per run; errors ${errors}`;
    return [
      mk("latency p50 through the proxy (1 connection)", "lat", (l) => l.p50, "ms", baseNote),
      mk("latency p99 through the proxy (1 connection)", "lat", (l) => l.p99, "ms"),
      mk(
        "requests/s through the proxy (16 connections; model of 4 slots: at most 6 connections to it now)",
        "thr",
        (l) => l.rps,
        "req/s",
      ),
      mk(
        "requests/s through the proxy (16 connections; model of 16 slots: 18 connections allowed, none wait)",
        "wide",
        (l) => l.rps,
        "req/s",
      ),
      mk(
        "requests/s, 64 KiB body + same-origin Origin header (16 connections, model of 16 slots)",
        "big",
        (l) => l.rps,
        "req/s",
        "the nesting scan reads every body byte; the Origin check runs on every request",
      ),
    ];
  } finally {
    for (const p of proxies) await p.stop();
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}
