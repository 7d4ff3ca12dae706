/**
 * Presets (issue 24): what a preset costs, and that other requests pay nothing for them.
 *
 *   1. the rewrite, in process: µs per request to find the preset and rewrite a realistic chat body (system prompt,
 *      12 turns, 3 tools, ~9 KiB), next to what every JSON request already costs (reading it: JSON.parse);
 *   2. through `gglib proxy` (this checkout, instant fake): a request naming the preset vs the same request naming
 *      its model, alternating rounds, latency p50 at 1 connection and req/s at 16;
 *   3. the hot path of requests that name a model: this checkout vs another commit (bench/hot-path-vs.ts; set
 *      GGLIB_BENCH_BASELINE_REV to the commit the presets branched from, else 9d47877), alternating rounds, the
 *      ratio of each back-to-back pair.
 *
 *   GGLIB_BENCH_BASELINE_REV=31e6b35 npx tsx bench/presets.ts [--quick] [--json]   (builds dist/ when stale)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Preset } from "../src/models/presets.js";
import { findPreset, presetRequest } from "../src/proxy/presets.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import {
  ensureBuilt,
  killLeftovers,
  log,
  median,
  QUICK,
  ROOT,
  row,
  runStandalone,
  spread,
  chatLoad as load,
  type ChatLoad,
  type Row,
} from "./lib.js";
import { baseLabel, baselineCheckout, startProxy } from "./checkout.js";
import { hotPathVs } from "./hot-path-vs.js";

/** A coding agent's chat: a system prompt, 12 turns, 3 tools. */
function realisticBody(model: string): Record<string, unknown> {
  const tool = (name: string) => ({
    type: "function",
    function: {
      name,
      description: `The ${name} tool: ${"does a thing with care. ".repeat(6)}`,
      parameters: {
        type: "object",
        properties: { path: { type: "string" }, text: { type: "string" } },
        required: ["path"],
      },
    },
  });
  const messages: unknown[] = [{ role: "system", content: "You are a careful coding assistant. ".repeat(20) }];
  for (let i = 0; i < 12; i++)
    messages.push({
      role: i % 2 ? "assistant" : "user",
      content: `Turn ${i}: ${"some code and some words ".repeat(20)}`,
    });
  return { model, messages, tools: [tool("read"), tool("write"), tool("run")], stream: true, temperature: 0.7 };
}

const PRESET: Preset = {
  name: "coder-cold",
  model: "coder",
  source: "config",
  set: { temperature: 0.1, max_tokens: 512, chat_template_kwargs: { enable_thinking: false } },
  strip: ["logit_bias"],
  system: "Answer with code only.",
};

/** µs per call of `fn`, the median of `reps` runs of `n` calls. */
function perCallUs(fn: () => unknown, n: number, reps: number): number[] {
  for (let i = 0; i < n; i++) fn(); // warm-up
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) fn();
    out.push(((performance.now() - t) * 1000) / n);
  }
  return out;
}

function rewriteRows(): Row[] {
  const body = Buffer.from(JSON.stringify(realisticBody("coder-cold")));
  const models = [
    { presets: [PRESET] },
    ...Array.from({ length: 20 }, (_, i) => ({ presets: [{ ...PRESET, name: `other-${i}` }] })),
  ];
  const n = QUICK ? 5_000 : 20_000;
  const reps = QUICK ? 3 : 7;
  const parse = perCallUs(() => JSON.parse(body.toString("utf8")) as unknown, n, reps);
  const json = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
  const rewrite = perCallUs(
    () => presetRequest(json, findPreset(models, "coder-cold")!, "/v1/chat/completions"),
    n,
    reps,
  );
  return [
    row({
      section: "1 rewrite (in process)",
      metric: `preset lookup (21 presets) + rewrite + serialize, ${(body.length / 1024).toFixed(1)} KiB chat body`,
      value: median(rewrite),
      baseline: median(parse),
      baselineName: "JSON.parse of the same body (every JSON request pays it)",
      unit: "µs",
      spread: spread(rewrite),
      baselineSpread: spread(parse),
      reps,
      note: `${n} calls per rep; only requests that name a preset pay it`,
    }),
  ];
}

async function throughProxyRows(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-presets-"));
  try {
    const coder = writeFakeModel(dir, "coder");
    const cfg = join(dir, "presets.yaml");
    writeFileSync(
      cfg,
      [
        "memoryBudget: 64GiB",
        "maxQueue: 5000",
        "models:",
        `  coder: {path: ${JSON.stringify(coder)}, extraArgs: ["--parallel", "16"], env: {FAKE_LLAMA_INSTANT: "1"}}`,
        "presets:",
        `  coder-cold: ${JSON.stringify({ model: "coder", set: PRESET.set, strip: PRESET.strip, system: PRESET.system })}`,
      ].join("\n") + "\n",
    );
    const p = await startProxy(ROOT, ["--config", cfg], {
      ...fakeLlamaEnv({ loadMs: 20 }),
      GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    });
    try {
      const r = await fetch(`${p.url}/models/load`, { method: "POST", body: JSON.stringify({ model: "coder" }) });
      if (r.status !== 200) throw new Error(`load coder: ${await r.text()}`);
      const viaModel = JSON.stringify(realisticBody("coder"));
      const viaPreset = JSON.stringify(realisticBody("coder-cold"));
      await load(p.url, 4, 1, viaPreset);
      const seconds = QUICK ? 2 : 3;
      const rounds = QUICK ? 3 : 6;
      const res = {
        lat: { m: [] as ChatLoad[], p: [] as ChatLoad[] },
        thr: { m: [] as ChatLoad[], p: [] as ChatLoad[] },
      };
      log(`[presets] through the proxy: ${rounds} rounds × ${seconds} s, model vs preset, alternating…`);
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 ? (["p", "m"] as const) : (["m", "p"] as const);
        for (const [key, c] of [
          ["lat", 1],
          ["thr", 16],
        ] as const)
          for (const k of order) res[key][k].push(await load(p.url, c, seconds, k === "p" ? viaPreset : viaModel));
      }
      const errors = [...res.lat.m, ...res.lat.p, ...res.thr.m, ...res.thr.p].reduce((s, l) => s + l.errors, 0);
      const mk = (metric: string, key: "lat" | "thr", f: (l: ChatLoad) => number, unit: string, note?: string): Row => {
        const a = res[key].p.map(f);
        const b = res[key].m.map(f);
        const paired = a.map((x, i) => x / b[i]!);
        return row({
          section: "2 preset vs model (through the proxy)",
          metric,
          value: median(a),
          baseline: median(b),
          baselineName: "the same body naming the model",
          unit,
          spread: spread(a),
          baselineSpread: spread(b),
          reps: rounds,
          note: `ratio per round ${paired.map((x) => x.toFixed(2)).join(", ")}${note ? `; ${note}` : ""}`,
        });
      };
      return [
        mk("latency p50, 1 connection", "lat", (l) => l.p50, "ms", `instant fake, 16 slots; errors ${errors}`),
        mk("requests/s, 16 connections", "thr", (l) => l.rps, "req/s"),
      ];
    } finally {
      await p.stop();
    }
  } finally {
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function presetsBench(): Promise<Row[]> {
  const built = ensureBuilt();
  log(`[presets] ${built.note}`);
  const rows = rewriteRows();
  rows.push(...(await throughProxyRows()));
  const base = baselineCheckout();
  try {
    rows.push(...(await hotPathVs(`3 hot path vs ${baseLabel()}`, QUICK, base.dir, base.note)));
  } finally {
    base.done();
  }
  return rows;
}

runStandalone(import.meta.url, "presets", presetsBench);
