/**
 * Context cache: time to first token of a conversation's follow-up turn after a swap A → B → A with
 * `--max-models 1`, with the KV cache saved at the swap and restored at the reload, against the same run with the
 * feature off (`contextCache: 0`: the whole conversation is prefilled again). Real llama-server, a generated
 * random-weight model wide and deep enough that prefilling a ~4,000-token prompt takes seconds on a CPU. Also
 * reports the save and restore times (the wall time of the slot POSTs, as the proxy's status shows them) and the
 * slot file size per 1,000 tokens.
 *
 *   npx tsx bench/context.ts [--quick] [--json]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningProxy } from "../src/proxy/index.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import { QUICK, killLeftovers, log, median, row, runStandalone, spread, startCachedProxy, type Row } from "./lib.js";
import { realLlamaServer } from "./swap.js";

const SECTION = "6 context cache (KV saved at a swap)";
/** ~4,300 prompt tokens with the tiny vocabulary (about 19.5 tokens per item). */
const PROMPT = Array.from({ length: 220 }, (_, i) => `note ${i} about the plan`).join(", ");

interface Turn {
  role: string;
  content: string;
}

/** ms to the first SSE event that carries generated text (or the end), and the final timings. */
async function timeToFirstToken(url: string, model: string, messages: Turn[]) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages, max_tokens: 4, temperature: 0, stream: true }),
  });
  if (r.status !== 200 || !r.body) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let ttft: number | undefined;
  let text = "";
  let all = "";
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    const s = dec.decode(chunk as Uint8Array, { stream: true });
    all += s;
    if (ttft === undefined && /"content":"[^"]/.test(all)) ttft = performance.now() - t0;
  }
  for (const m of all.matchAll(/"content":"((?:[^"\\]|\\.)*)"/g)) text += JSON.parse(`"${m[1]}"`) as string;
  const cacheN = Number(/"cache_n":(\d+)/.exec(all)?.[1] ?? NaN);
  const promptN = Number(/"prompt_n":(\d+)/.exec(all)?.[1] ?? NaN);
  return { ttft: ttft ?? performance.now() - t0, text, cacheN, promptN };
}

interface ContextJson {
  savedTokens: number;
  bytesOnDisk: number;
  lastSave?: { ms: number; tokens: number; bytes: number };
  lastRestore?: { ms: number; tokens: number; reusedTokens?: number };
}
async function contextOf(p: RunningProxy, model: string): Promise<ContextJson | undefined> {
  const st = (await (await fetch(`${p.url}/api/status`)).json()) as {
    models: { name: string; context?: ContextJson }[];
  };
  return st.models.find((m) => m.name === model)?.context;
}

export async function benchContext(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const reps = quick ? 1 : 2;
  const bin = realLlamaServer();
  if (!bin)
    return [
      row({
        section: SECTION,
        metric: "follow-up time to first token",
        value: NaN,
        baseline: NaN,
        baselineName: "without restore",
        unit: "ms",
        reps: 0,
        note: "NOT MEASURED: no real llama-server (npm run rig:llama-server builds one, or set GGLIB_BENCH_LLAMA_SERVER)",
      }),
    ];
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-context-"));
  const open = new Set<RunningProxy>();
  try {
    const models = join(dir, "models");
    mkdirSync(models);
    log(`[context] writing a random-weight model (8 layers × 384 wide, ctx 8192)…`);
    const big = await writeTinyModel(models, {
      name: "wide-a",
      kind: "chat",
      layers: 8,
      embd: 384,
      contextLength: 8192,
    });
    const small = await writeTinyModel(models, { name: "tiny-b", kind: "chat", seed: 2 });
    const cfg = join(dir, "gglib.yaml");
    writeFileSync(
      cfg,
      [
        "maxModels: 1",
        "models:",
        `  a: {path: ${JSON.stringify(big)}, ctx: 8192, parallel: 1}`,
        `  b: {path: ${JSON.stringify(small)}}`,
      ].join("\n") + "\n",
    );
    const start = async (contextCache: 0 | "auto"): Promise<RunningProxy> => {
      const p = await startCachedProxy({
        bin,
        dir,
        configPath: cfg,
        basePort: 19000,
        contextCache,
        contextCacheDir: join(dir, "kv-context"),
      });
      open.add(p);
      return p;
    };
    const withRestore: number[] = [];
    const without: number[] = [];
    const firstPrefill: number[] = [];
    const saveMs: number[] = [];
    const restoreMs: number[] = [];
    const bytesPerK: number[] = [];
    let promptTokens = 0;
    let reused = 0;
    for (let i = 0; i < reps; i++) {
      for (const mode of ["auto", 0] as const) {
        rmSync(join(dir, "kv-context"), { recursive: true, force: true });
        const p = await start(mode);
        // a fresh conversation each repetition (no reuse from an earlier one)
        const turn1: Turn[] = [{ role: "user", content: `run ${i} ${mode}: ${PROMPT}` }];
        log(`[context] ${mode === 0 ? "without" : "with"} restore, rep ${i + 1}/${reps}: first turn (full prefill)…`);
        const first = await timeToFirstToken(p.url, "a", turn1);
        firstPrefill.push(first.ttft);
        promptTokens = first.promptN;
        await timeToFirstToken(p.url, "b", [{ role: "user", content: "hello" }]); // A is evicted (and saved)
        const turn2: Turn[] = [
          ...turn1,
          { role: "assistant", content: first.text },
          { role: "user", content: "and then?" },
        ];
        log(`[context] follow-up turn to A (reloaded)…`);
        const follow = await timeToFirstToken(p.url, "a", turn2);
        if (mode === 0) without.push(follow.ttft);
        else {
          withRestore.push(follow.ttft);
          reused = follow.cacheN;
          const c = await contextOf(p, "a");
          if (c?.lastSave) {
            saveMs.push(c.lastSave.ms);
            if (c.lastSave.tokens > 0) bytesPerK.push((c.lastSave.bytes / c.lastSave.tokens) * 1000);
          }
          if (c?.lastRestore) restoreMs.push(c.lastRestore.ms);
        }
        open.delete(p);
        await p.close(10_000);
      }
    }
    const rows: Row[] = [
      row({
        section: SECTION,
        metric: `follow-up TTFT after A→B→A (prompt ${promptTokens} tokens, incl. reload)`,
        value: median(withRestore),
        baseline: median(without),
        baselineName: "without restore (contextCache: 0)",
        unit: "ms",
        spread: spread(withRestore),
        baselineSpread: spread(without),
        reps,
        target: "≥5× faster",
        met: median(without) / median(withRestore) >= 5,
        note: `${(median(without) / median(withRestore)).toFixed(1)}× faster; cache_n ${reused} of the follow-up's prompt came from the restored cache`,
      }),
      row({
        section: SECTION,
        metric: "slot save before the stop (wall time of the POSTs)",
        value: median(saveMs),
        baseline: median(firstPrefill),
        baselineName: "first-turn prefill (TTFT)",
        unit: "ms",
        spread: spread(saveMs),
        reps: saveMs.length,
      }),
      row({
        section: SECTION,
        metric: "slot restore after the load (wall time of the POSTs)",
        value: median(restoreMs),
        baseline: median(firstPrefill),
        baselineName: "first-turn prefill (TTFT)",
        unit: "ms",
        spread: spread(restoreMs),
        reps: restoreMs.length,
      }),
      row({
        section: SECTION,
        metric: "slot file size per 1,000 tokens (8 layers, 384 wide, f16 K/V)",
        value: median(bytesPerK) / 1048576,
        baseline: NaN,
        baselineName: "–",
        unit: "MiB",
        reps: bytesPerK.length,
      }),
    ];
    return rows;
  } finally {
    for (const p of open) await p.close(2_000).catch(() => {});
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, "context cache: follow-up TTFT with and without a restored KV cache", () =>
  benchContext(),
);
