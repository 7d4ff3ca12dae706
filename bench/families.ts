/**
 * The model families of issue 22 (test/support/archs), on the real llama-server:
 *
 * (a) The memory estimator per family: each tiny model is started at `-lv 4` (defaults: trained context 8192,
 *     4 slots; gemma3 and gemma4 also with `--swa-full`), its buffer lines read with parseLlamaMemoryLog, and every part of
 *     estimateMemory set against them: weights, KV (llama-server's KV buffers), RS (the recurrent state), compute,
 *     total. Printed as one table (stderr and the returned rows' notes).
 * (b) The context cache's follow-up time to first token after A → B → A through the proxy with `--max-models 1`,
 *     against the same run with `contextCache: 0` (the whole conversation prefilled again; without the context
 *     cache the proxy does not pass `--swa-full` either), on models generated 384 wide and 12 deep so that
 *     prefilling the ~3,000-token prompt takes seconds on this CPU (CTX_CASES): the sliding-window gemma3 (window
 *     128) and gpt-oss (every other layer, MoE, sinks, harmony), restored through the context checkpoints our
 *     llama.cpp patch keeps in the slot file (with an unpatched llama-server: run with `--swa-full`, as the proxy
 *     then chooses; the row's note says which); the hybrids granitehybrid
 *     (Mamba-2, attention every third layer) and qwen35 (Gated DeltaNet, attention every fourth). The follow-up is
 *     the conversation plus one turn with the first answer as generated, the case a hybrid model can reuse (a
 *     recurrent state cannot roll back to a shorter prefix, see README "Model families"). It goes through the
 *     chat template for gemma3, granitehybrid (whose template renders the answer back unchanged) and gpt-oss
 *     (harmony moves the earlier answer to the final channel; an attention cache rolls back to the common
 *     prefix), and through /completion with token ids for qwen35, whose template drops the `<think>` of earlier
 *     answers from history; and qwen35 through the chat template too, which rolls back to a context checkpoint
 *     kept in the slot file (our llama.cpp patch, src/llama/install/patches.ts).
 *
 *   npx tsx bench/families.ts [--quick] [--json] [--cases gpt-oss,qwen35]   (--cases: those (b) cases only)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningProxy } from "../src/proxy/index.js";
import { readModelMetadata } from "../src/gguf/reader.js";
import { estimateMemory, parseLlamaMemoryLog } from "../src/models/estimator.js";
import { parseProcCpuinfo } from "../src/system/parsers.js";
import { writeArchModel, type ArchFamily } from "../test/support/archs/index.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import {
  QUICK,
  ROOT,
  fmt,
  freePort,
  killLeftovers,
  log,
  machine,
  markdownTable,
  median,
  row,
  runStandalone,
  spawnTracked,
  spread,
  stopTracked,
  type Row,
  startCachedProxy,
} from "./lib.js";
import { realLlamaServer } from "./swap.js";

const SECTION_EST = "9a estimator per family";
const SECTION_CTX = "9b context cache per family";
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// (a) the estimator

interface EstCase {
  label: string;
  family: ArchFamily;
  args: string[];
  swaFull?: boolean;
  embeddings?: boolean;
}

const EST_CASES: EstCase[] = [
  { label: "gemma3", family: "gemma3", args: [] },
  { label: "gemma3 --swa-full", family: "gemma3", args: ["--swa-full"], swaFull: true },
  { label: "gemma4", family: "gemma4", args: [] },
  { label: "gemma4 --swa-full", family: "gemma4", args: ["--swa-full"], swaFull: true },
  { label: "granitehybrid", family: "granitehybrid", args: [] },
  { label: "qwen3", family: "qwen3", args: [] },
  { label: "qwen3moe", family: "qwen3moe", args: [] },
  { label: "qwen35", family: "qwen35", args: [] },
  { label: "gpt-oss", family: "gpt-oss", args: [] },
  { label: "lfm2", family: "lfm2", args: [] },
  { label: "embed (bert)", family: "embed", args: ["--embedding"], embeddings: true },
  { label: "rerank (bert)", family: "rerank", args: ["--reranking"], embeddings: true },
];

/** llama-server at -lv 4 until "model loaded" (or its exit); its log lines. */
async function loadLog(bin: string, model: string, args: string[]): Promise<string[]> {
  const port = await freePort();
  const child = spawnTracked(
    bin,
    ["-m", model, "--host", "127.0.0.1", "--port", String(port), "-lv", "4", "--no-warmup", ...args],
    { stdout: "pipe", stderr: "pipe" },
  );
  const lines: string[] = [];
  try {
    await new Promise<void>((resolve) => {
      let rest = "";
      const timer = setTimeout(resolve, 60_000);
      const onData = (chunk: Buffer): void => {
        rest += chunk.toString("utf8");
        let i;
        while ((i = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, i);
          rest = rest.slice(i + 1);
          lines.push(line);
          if (/model loaded|exiting due to/.test(line)) {
            clearTimeout(timer);
            resolve();
          }
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    await stopTracked(child, 5_000);
  }
  return lines;
}

const pct = (e: number, r: number): string =>
  Math.abs(e - r) <= 0.006 * MIB ? "±0" : r === 0 ? "∞" : `${e >= r ? "+" : ""}${(((e - r) / r) * 100).toFixed(1)} %`;
const mib = (n: number): string => (n / MIB).toFixed(2);

async function benchEstimator(bin: string, dir: string): Promise<{ rows: Row[]; table: string[] }> {
  const cpu = parseProcCpuinfo(readFileSync("/proc/cpuinfo", "utf8")).simd;
  const rows: Row[] = [];
  const table = [
    "| family | weights est / real MiB | KV | RS | compute | total | total error |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const c of EST_CASES) {
    const path = await writeArchModel(dir, { family: c.family, name: `est-${c.family}` });
    const meta = await readModelMetadata(path);
    const real = parseLlamaMemoryLog(await loadLog(bin, path, c.args));
    if (real.modelBytes === undefined) {
      table.push(`| ${c.label} | no buffer lines in llama-server's log | | | | | |`);
      continue;
    }
    const est = estimateMemory({
      metadata: meta,
      cpu,
      ...(c.swaFull ? { swaFull: true } : {}),
      ...(c.embeddings ? { embeddings: true } : {}),
    });
    const realRs = Object.entries(real.buffers).reduce((s, [k, v]) => s + (k.endsWith(" RS") ? v : 0), 0);
    const realKv = (real.kvBytes ?? 0) - realRs;
    const parts: [number, number][] = [
      [est.weightsBytes, real.modelBytes],
      [est.kvBytes - est.recurrentBytes, realKv],
      [est.recurrentBytes, realRs],
      [est.computeBytes, real.computeBytes ?? 0],
      [est.totalBytes, real.totalBytes ?? 0],
    ];
    const cell = ([e, r]: [number, number]): string => `${mib(e)} / ${mib(r)} (${pct(e, r)})`;
    table.push(`| ${c.label} | ${parts.map(cell).join(" | ")} | ${pct(est.totalBytes, real.totalBytes ?? 0)} |`);
    const [w, kv, rs, comp, tot] = parts;
    rows.push(
      row({
        section: SECTION_EST,
        metric: `${c.label}: estimated total`,
        value: tot![0] / MIB,
        baseline: tot![1] / MIB,
        baselineName: "llama-server's buffers",
        unit: "MiB",
        reps: 1,
        target: "within ±5 %",
        met: Math.abs(tot![0] - tot![1]) <= 0.05 * tot![1] + 0.006 * MIB,
        note: `weights ${pct(...w!)}, KV ${pct(...kv!)}, RS ${pct(...rs!)}, compute ${pct(...comp!)}`,
      }),
    );
    rmSync(path, { force: true });
  }
  log(`[families] estimator vs llama-server (-lv 4, defaults: trained ctx 8192, 4 slots)\n${table.join("\n")}`);
  return { rows, table };
}

// ---------------------------------------------------------------------------------------------------------------
// (b) the context cache

/** ~3,000 prompt tokens in the rig's byte-level vocabularies. */
const PROMPT = Array.from({ length: 180 }, (_, i) => `note ${i} on the plan`).join(", ");

type Turn = { role: string; content: string };

interface Streamed {
  ttft: number;
  text: string;
  /** The generated token ids (the raw path asks for them). */
  tokens: number[];
  cacheN: number;
  promptN: number;
}

/** ms to the first SSE event that carries generated text (or the end), the text and the final timings. */
async function streamTimed(url: string, path: string, body: object): Promise<Streamed> {
  const t0 = performance.now();
  const r = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
    signal: AbortSignal.timeout(180_000),
  });
  if (r.status !== 200 || !r.body) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let ttft: number | undefined;
  let all = "";
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    all += dec.decode(chunk as Uint8Array, { stream: true });
    if (ttft === undefined && /"content":"[^"]/.test(all)) ttft = performance.now() - t0;
  }
  let text = "";
  for (const m of all.matchAll(/"content":"((?:[^"\\]|\\.)*)"/g)) text += JSON.parse(`"${m[1]}"`) as string;
  const tokens = [...all.matchAll(/"tokens":\[([\d,]*)\]/g)].flatMap((m) => (m[1] ? m[1].split(",").map(Number) : []));
  const cacheN = Number(/"cache_n":(\d+)/.exec(all)?.[1] ?? NaN);
  const promptN = Number(/"prompt_n":(\d+)/.exec(all)?.[1] ?? NaN);
  return { ttft: ttft ?? performance.now() - t0, text, tokens, cacheN, promptN };
}

const timeChat = (url: string, model: string, messages: Turn[]): Promise<Streamed> =>
  streamTimed(url, "/v1/chat/completions", { model, messages, max_tokens: 4, temperature: 0 });

const timeRaw = (url: string, model: string, prompt: number[] | string): Promise<Streamed> =>
  streamTimed(url, "/completion", { model, prompt, n_predict: 4, temperature: 0, return_tokens: true });

async function postJson<T>(url: string, path: string, body: object): Promise<T> {
  const r = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(180_000),
  });
  if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}: ${await r.text()}`);
  return (await r.json()) as T;
}

/** The model's own tokens of `content` (special tokens parsed), through the proxy: A must be loaded already. */
async function tokenize(url: string, model: string, content: string, addSpecial: boolean): Promise<number[]> {
  const r = await postJson<{ tokens: number[] }>(url, "/tokenize", {
    model,
    content,
    add_special: addSpecial,
    parse_special: true,
  });
  return r.tokens;
}

interface StatusModel {
  name: string;
  swaFull?: { on: boolean; extraBytes: number; reason: string };
  context?: { enabled: boolean; reason?: string; caveat?: string; lastRestore?: { ms: number } };
}
async function statusOf(p: RunningProxy, model: string): Promise<StatusModel | undefined> {
  const st = (await (await fetch(`${p.url}/api/status`)).json()) as { models: StatusModel[] };
  return st.models.find((m) => m.name === model);
}

const WIDE = { embd: 384, layers: 12 } as const;

/**
 * One case of (b): a family and how its follow-up is sent.
 *   - `chat`: /v1/chat/completions, the conversation plus one turn with the first answer in history as generated;
 *     the family's template renders the history (gpt-oss's harmony template writes the earlier answer to the final
 *     channel, Qwen3.5's drops the `<think>` of earlier answers: what a chat client gets);
 *   - `extend`: /completion with token ids, the first turn's prompt (the template's rendering), the generated
 *     tokens as they were and the next turn's tokens: a follow-up that extends every saved token, as a client
 *     that keeps the history as generated would send it (the case a hybrid model can reuse without context
 *     checkpoints, for a template that re-renders history).
 */
interface CtxCase {
  label: string;
  family: "gemma3" | "granitehybrid" | "gpt-oss" | "qwen35" | "lfm2";
  followUp: "chat" | "extend";
  /** What the row says about the case. */
  what: string;
}

const CTX_CASES: readonly CtxCase[] = [
  { label: "gemma3", family: "gemma3", followUp: "chat", what: "sliding window" },
  { label: "granitehybrid", family: "granitehybrid", followUp: "chat", what: "Mamba-2 hybrid" },
  { label: "gpt-oss", family: "gpt-oss", followUp: "chat", what: "sliding window, MoE, sinks, harmony" },
  { label: "lfm2", family: "lfm2", followUp: "chat", what: "short-convolution hybrid" },
  {
    label: "qwen35 (extend)",
    family: "qwen35",
    followUp: "extend",
    what: "Gated DeltaNet hybrid; /completion, the follow-up extends every saved token",
  },
  // a chat follow-up whose history the template re-renders (Qwen3.5 drops the <think> of the earlier answer): the
  // restored state rolls back to a context checkpoint kept in the slot file (our llama.cpp patch, patches.ts); an
  // unpatched llama-server reuses nothing here
  {
    label: "qwen35 (chat)",
    family: "qwen35",
    followUp: "chat",
    what: "Gated DeltaNet hybrid; history re-rendered by the template (needs the slot-checkpoints patch)",
  },
];

/** `--cases gpt-oss,qwen35`: only the (b) cases of those families (no (a), no results file). */
const CASES_ARG = ((i) => (i >= 0 ? process.argv[i + 1] : undefined))(process.argv.indexOf("--cases"));
const caseFilter = (cases: readonly CtxCase[]): readonly CtxCase[] =>
  CASES_ARG ? cases.filter((c) => CASES_ARG.split(",").includes(c.family)) : cases;

/** The next turn after an answer, in Qwen's chat format (the tokens a chat client would append). */
const QWEN_NEXT_TURN = "<|im_end|>\n<|im_start|>user\nand then?<|im_end|>\n<|im_start|>assistant\n<think>\n";

async function benchContextFamily(bin: string, dir: string, c: CtxCase, reps: number): Promise<Row[]> {
  const { family } = c;
  const key = c.label.replace(/[^a-z0-9]+/gi, "-");
  const models = join(dir, `models-${key}`);
  mkdirSync(models, { recursive: true });
  log(`[families] writing a ${WIDE.layers}-layer × ${WIDE.embd}-wide ${family} model…`);
  const big = await writeArchModel(models, { family, name: `wide-${family}`, ...WIDE });
  const small = await writeTinyModel(models, { name: "tiny-b", kind: "chat", seed: 2 });
  const cfg = join(dir, `gglib-${key}.yaml`);
  writeFileSync(
    cfg,
    [
      "maxModels: 1",
      "models:",
      `  a: {path: ${JSON.stringify(big)}, ctx: 8192, parallel: 1}`,
      `  b: {path: ${JSON.stringify(small)}}`,
    ].join("\n") + "\n",
  );
  const kvDir = join(dir, `kv-${key}`);
  const open = new Set<RunningProxy>();
  const start = async (contextCache: 0 | "auto"): Promise<RunningProxy> => {
    const p = await startCachedProxy({
      bin,
      dir,
      configPath: cfg,
      basePort: 19300,
      contextCache,
      contextCacheDir: kvDir,
    });
    open.add(p);
    return p;
  };
  const withRestore: number[] = [];
  const without: number[] = [];
  const firstPrefill: number[] = [];
  let promptTokens = 0;
  let reused = 0;
  let followTokens = 0;
  let how = "";
  try {
    for (let i = 0; i < reps; i++) {
      // the same conversation both times: the first answer comes from the run with the context cache
      const turn1: Turn[] = [{ role: "user", content: `run ${i}: ${PROMPT}` }];
      let follow: (p: RunningProxy) => Promise<Streamed> = () => Promise.reject(new Error("no first turn"));
      for (const mode of ["auto", 0] as const) {
        rmSync(kvDir, { recursive: true, force: true });
        const p = await start(mode);
        const label = `${c.label}, ${mode === 0 ? "without" : "with"} the context cache, rep ${i + 1}/${reps}`;
        log(`[families] ${label}: first turn…`);
        let first: Streamed;
        if (mode === 0) {
          // without the cache nothing of the first turn survives the swap: a short request loads A just the same
          first =
            c.followUp === "chat"
              ? await timeChat(p.url, "a", [{ role: "user", content: "hi" }])
              : await timeRaw(p.url, "a", "hi");
        } else if (c.followUp === "chat") {
          first = await timeChat(p.url, "a", turn1);
          const history: Turn[] = [
            ...turn1,
            { role: "assistant", content: first.text },
            { role: "user", content: "and then?" },
          ];
          follow = (q) => timeChat(q.url, "a", history);
        } else {
          // the template's rendering of the first turn, as tokens; all asked of A before the swap (no extra load)
          const { prompt } = await postJson<{ prompt: string }>(p.url, "/apply-template", {
            model: "a",
            messages: turn1,
          });
          const prompt1 = await tokenize(p.url, "a", prompt, true);
          first = await timeRaw(p.url, "a", prompt1);
          const next = [...prompt1, ...first.tokens, ...(await tokenize(p.url, "a", QWEN_NEXT_TURN, false))];
          follow = (q) => timeRaw(q.url, "a", next);
        }
        if (mode !== 0) {
          promptTokens = first.promptN;
          firstPrefill.push(first.ttft);
        }
        await timeChat(p.url, "b", [{ role: "user", content: "hello" }]); // A is evicted (and saved)
        const f = await follow(p);
        log(
          `[families] ${label}: first turn ${first.ttft.toFixed(0)} ms (${first.promptN} tokens), ` +
            `follow-up ${f.ttft.toFixed(0)} ms (cache_n ${f.cacheN}, prompt_n ${f.promptN})`,
        );
        if (mode === 0) without.push(f.ttft);
        else {
          withRestore.push(f.ttft);
          reused = f.cacheN;
          followTokens = f.cacheN + f.promptN;
          const st = await statusOf(p, "a");
          how = [
            st?.swaFull ? `--swa-full ${st.swaFull.on ? "on" : "off"} (${st.swaFull.reason})` : "",
            st?.context?.lastRestore ? `restore ${st.context.lastRestore.ms.toFixed(0)} ms` : "",
            st?.context?.caveat ? `caveat: ${st.context.caveat}` : "",
            st?.context?.enabled === false ? `skipped: ${st.context.reason ?? ""}` : "",
          ]
            .filter(Boolean)
            .join("; ");
        }
        open.delete(p);
        await p.close(10_000);
      }
    }
  } finally {
    for (const p of open) await p.close(2_000).catch(() => {});
  }
  const ratio = median(without) / median(withRestore);
  return [
    row({
      section: SECTION_CTX,
      metric: `${c.label} (${WIDE.layers} × ${WIDE.embd}, ${c.what}): follow-up TTFT after A→B→A (prompt ${promptTokens} tokens, incl. reload)`,
      value: median(withRestore),
      baseline: median(without),
      baselineName: "without the context cache (contextCache: 0)",
      unit: "ms",
      spread: spread(withRestore),
      baselineSpread: spread(without),
      reps,
      target: "≥5× faster",
      met: ratio >= 5,
      note: `${ratio.toFixed(1)}× faster; first turn (the whole prompt prefilled) ${median(firstPrefill).toFixed(0)} ms; cache_n ${reused} of the follow-up's ${followTokens} tokens came from the restored cache${how ? `; ${how}` : ""}`,
    }),
  ];
}

export async function benchFamilies(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const bin = realLlamaServer();
  if (!bin)
    return [
      row({
        section: SECTION_EST,
        metric: "estimator per family, context cache per family",
        value: NaN,
        baseline: NaN,
        baselineName: "–",
        unit: "",
        reps: 0,
        note: "NOT MEASURED: no real llama-server (npm run rig:llama-server builds one, or set GGLIB_BENCH_LLAMA_SERVER)",
      }),
    ];
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-families-"));
  const t0 = performance.now();
  try {
    const est = CASES_ARG ? { rows: [], table: [] } : await benchEstimator(bin, dir);
    const rows = [...est.rows];
    for (const c of caseFilter(CTX_CASES)) rows.push(...(await benchContextFamily(bin, dir, c, quick ? 1 : 2)));
    if (!CASES_ARG) writeResults(est.table, rows, quick, (performance.now() - t0) / 1000);
    return rows;
  } finally {
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** bench/results/families-latest.md: the machine, the estimator table and the rows. */
function writeResults(table: string[], rows: Row[], quick: boolean, seconds: number): void {
  const m = machine();
  const out = join(ROOT, "bench", "results");
  mkdirSync(out, { recursive: true });
  const md = [
    `# Model families (${new Date().toISOString()})`,
    "",
    `Command: \`npx tsx bench/families.ts${quick ? " --quick" : ""}\` (${fmt(seconds)} s). Machine: ${m.cpus} × ${m.cpuModel}, ` +
      `Node ${m.node}; load average ${rows.at(-1)?.loadavg.toFixed(2) ?? "–"} at the end.`,
    "",
    "## Estimator vs llama-server's buffers (MiB, estimated / reported (error))",
    "",
    ...table,
    "",
    "## Rows",
    "",
    markdownTable(rows),
    "",
  ].join("\n");
  writeFileSync(join(out, "families-latest.md"), md);
}

runStandalone(import.meta.url, "model families: estimator error and context-cache follow-up TTFT", () =>
  benchFamilies(),
);
