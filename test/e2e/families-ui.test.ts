// The model families (test/support/archs/) in the dashboard and the terminal chat, on the REAL llama-server through
// `gglib proxy --max-models 1` (in-process, with the context cache on, as families.test.ts runs them for the API):
//   - each family's model card in Debian's Chromium: its name, its architecture line (sliding-window, hybrid and
//     encoder layers), the estimate, the context size, the --swa-full choice of the sliding-window models, and
//     once loaded from the card, what the context cache does with it (the hybrids' caveat);
//   - the playground keeps the reasoning apart from the answer, with no part of a marker shown while it streams:
//     gpt-oss harmony's analysis channel, Qwen3's <think> and Qwen3.5's opened <think> (presets whose grammars
//     make the random models think); it offers Embed to the BERT embedding model, Embed and Rerank to the reranker;
//   - `gglib chat` does the same in a pipe (plain and --json; and with no proxy, starting the model itself) and in a
//     real terminal (tmux: two turns, a /model switch, /save), with no harmony or <think> marker drawn.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import type { ModelList, StatusReport } from "../../src/proxy/api-types.js";
import { archLine, swaFullFact } from "../../web/src/context.js";
import { bytes } from "../../web/src/format.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { probeCapabilities } from "../../src/llama/capabilities.js";
import { CHROMIUM, ensureUiBuilt } from "../support/dashboard.js";
import { FAMILIES, GPT_OSS_THOUGHT, writeArchModel, type ArchFamily } from "../support/archs/index.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ALL = Object.keys(FAMILIES) as ArchFamily[];
// Random weights write no exact thinking of their own (but gpt-oss's "plan"): grammars write what a thinking model
// would, so the split is llama-server's parser, the proxy's relay and the page's or the chat's display of it.
/** Qwen3 writes its own <think> (families.test.ts does the same). */
const QWEN3_THINK = 'root ::= "<think>" "plan it" "</think>" "the answer"';
/** Qwen3.5's template has opened <think> already: the model writes the thinking and closes it. */
const QWEN35_THINK = 'root ::= "plan it" "</think>" "the answer"';
/** A whole harmony turn: the analysis, then the final channel. */
const HARMONY =
  'root ::= "<|channel|>analysis<|message|>" "plan it" "<|end|><|start|>assistant<|channel|>final<|message|>" "the answer"';
/** Markers that must never reach an answer: harmony's control tokens and the think tags. */
const MARKERS = /<\|(channel|message|start|end|return)\|>|<\/?think>/;
/** A part of a marker (the grammars' answers have none of these characters). */
const PART = /[<>|]/;

const TMUX = existsSync("/usr/bin/tmux") ? "/usr/bin/tmux" : "tmux";

let bin: string;
let dir: string;
let proxy: RunningProxy;
let browser: Browser;
let page: Page;

before(async () => {
  [bin] = await Promise.all([ensureLlamaServer(), ensureUiBuilt()]);
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-families-ui-"));
  const models = join(dir, "models");
  mkdirSync(models);
  const lines = ["models:"];
  for (const [i, family] of ALL.entries()) {
    const path = await writeArchModel(models, { family, seed: i + 1 });
    // one thread: llama.cpp's spinning thread pool is far slower per token on a shared 2-core machine
    lines.push(`  ${family}:`, `    path: ${JSON.stringify(path)}`, `    extraArgs: ["-t", "1"]`);
  }
  // the playground sends no grammar: presets set them, as a user's preset sets sampling
  lines.push(
    "presets:",
    `  qwen3-think: {model: qwen3, set: {grammar: ${JSON.stringify(QWEN3_THINK)}}}`,
    `  qwen35-think: {model: qwen35, set: {grammar: ${JSON.stringify(QWEN35_THINK)}}}`,
    `  gpt-oss-harmony: {model: gpt-oss, set: {grammar: ${JSON.stringify(HARMONY)}}}`,
  );
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, lines.join("\n") + "\n");
  proxy = await startProxy({
    configPath,
    watchConfig: false,
    maxModels: 1,
    port: 0,
    memoryBudget: "8GiB",
    contextCacheDir: join(dir, "kv-context"),
    runner: new LlamaServerRunner({
      binaryPath: bin,
      pidsDir: join(dir, "pids"),
      basePort: 23000 + Math.floor(Math.random() * 2000),
    }),
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await (await browser.newContext({ reducedMotion: "reduce", locale: "en-US" })).newPage();
});

after(async () => {
  try {
    tmux("kill-server");
  } catch {
    /* no tmux server left */
  }
  await browser?.close().catch(() => {});
  await proxy?.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  await waitFor(() => pidsWithArg(dir).length === 0, 3_000);
  rmSync(dir, { recursive: true, force: true });
});

interface Shown {
  thinking: string;
  answer: string;
  stats: string;
  /** Every answer text the page showed while the answer streamed (a marker must not show even for a moment). */
  streamed: string[];
}

/** Asks `text` in the playground (a fresh conversation unless `follow`) and reads the answer as the page shows it. */
async function playground(model: string, text: string, maxTokens: number, follow = false): Promise<Shown> {
  if (!page.url().endsWith("#/playground")) await page.goto(`${proxy.url}/ui/#/playground`);
  const clear = page.getByRole("button", { name: "Clear" });
  if (!follow && (await clear.isEnabled())) await clear.click();
  await page.locator(".toolbar select").selectOption(model);
  await page.getByLabel("max tokens").fill(String(maxTokens));
  // in the page (a string: the test's TypeScript has no DOM types): record the answer's text at each render
  await page.evaluate(`(() => {
    window.__answers = [];
    window.__observer?.disconnect();
    const chat = document.querySelector("[data-testid=chat]");
    const before = chat.querySelectorAll(".turn.assistant").length;
    window.__observer = new MutationObserver(() => {
      const turns = chat.querySelectorAll(".turn.assistant");
      if (turns.length <= before) return; // the new answer's turn is not there yet
      const a = turns[turns.length - 1].querySelector("[data-testid=answer]")?.textContent ?? "";
      if (a && window.__answers[window.__answers.length - 1] !== a) window.__answers.push(a);
    });
    window.__observer.observe(chat, { subtree: true, childList: true, characterData: true });
  })()`);
  await page.getByLabel("Message").fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  const turn = page.locator(".turn.assistant").last();
  await turn.getByTestId("stats").waitFor({ timeout: 60_000 });
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: 60_000 });
  const read = async (testId: string, inner?: string) => {
    const el = inner ? turn.getByTestId(testId).locator(inner) : turn.getByTestId(testId);
    return (await el.count()) > 0 ? ((await el.textContent()) ?? "") : "";
  };
  return {
    thinking: await read("thinking", ".text"),
    answer: await read("answer"),
    stats: await read("stats"),
    streamed: await page.evaluate<string[]>("window.__answers"),
  };
}

interface ChatRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `gglib chat --url <proxy> …` in a pipe, one question (-p). */
function gglibChat(args: string[], direct = false): Promise<ChatRun> {
  return new Promise((resolve, reject) => {
    // direct: no proxy answers at GGLIB_PROXY_URL (a port nothing listens on), so the chat starts the model itself
    const where = direct ? [] : ["--url", proxy.url];
    const env = direct ? { GGLIB_LLAMA_SERVER: bin, GGLIB_PROXY_URL: "http://127.0.0.1:1" } : {};
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "chat", ...where, "-q", ...args], {
      cwd: ROOT,
      env: { ...process.env, GGLIB_DATA_DIR: join(dir, "data"), NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface ChatJson {
  model: string;
  answer: string;
  thinking?: string;
  finish_reason: string;
}

async function chatJson(args: string[], direct = false): Promise<ChatJson> {
  const r = await gglibChat([...args, "--json"], direct);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1, r.stdout);
  return JSON.parse(lines[0]!) as ChatJson;
}

function tmux(...args: string[]): string {
  // its socket in the test's folder: removed with it
  return execFileSync(TMUX, ["-S", join(dir, "tmux.sock"), "-f", "/dev/null", ...args], { encoding: "utf8" });
}

const sq = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;

/** The screen plus scrollback, as text. */
const screen = (name: string) => tmux("capture-pane", "-p", "-J", "-S", "-300", "-t", name).replace(/\s+$/, "");

async function waitScreen(name: string, re: RegExp): Promise<string> {
  let last = "";
  const ok = await waitFor(() => re.test((last = screen(name))), 60_000, 100);
  assert.ok(ok, `screen never matched ${re}; it shows:\n${last}`);
  return last;
}

/** Types a line into the chat and waits for the `answers`-th stats line and the next prompt. */
async function say(name: string, text: string, answers: number): Promise<string> {
  tmux("send-keys", "-t", name, "-l", text);
  tmux("send-keys", "-t", name, "Enter");
  let last = "";
  const done = () => (last.match(/^first token /gm)?.length ?? 0) >= answers && />>>$/.test(last);
  const ok = await waitFor(() => ((last = screen(name)), done()), 60_000, 100);
  assert.ok(ok, `no answer ${answers}; the screen shows:\n${last}`);
  return last;
}

describe("model families in the dashboard and the terminal chat (real llama-server)", { timeout: 240_000 }, () => {
  test("each family's model card: name, architecture, estimate, --swa-full, context cache, encoder use", async () => {
    const status = (await (await fetch(`${proxy.url}/api/status`)).json()) as StatusReport;
    const list = (await (await fetch(`${proxy.url}/v1/models`)).json()) as ModelList;
    await page.goto(`${proxy.url}/ui/#/models`);
    await page.getByTestId("models").waitFor();
    assert.equal(await page.locator(".card[data-model]").count(), ALL.length);
    const checkpoints = (await probeCapabilities(bin, { cacheFile: null })).slotCheckpoints === true;
    for (const family of ALL) {
      const spec = FAMILIES[family];
      const layout: { layers: number; swa?: number; window?: number; recurrent?: number } = spec.layout;
      const m = status.models.find((x) => x.name === family)!;
      const card = page.locator(`.card[data-model="${family}"]`);
      assert.equal(await card.locator("h3").textContent(), family);

      // the architecture line, from the GGUF header: what the rig wrote into each family
      const arch = (await card.getByTestId("arch").textContent()) ?? "";
      assert.deepEqual(
        m.arch,
        {
          name: spec.arch,
          layers: layout.layers,
          ...(layout.swa ? { swa: { layers: layout.swa, window: layout.window } } : {}),
          ...(layout.recurrent ? { recurrent: layout.recurrent } : {}),
          ...(spec.arch === "bert" ? { encoder: family === "rerank" ? "rerank" : "embeddings" } : {}),
        },
        family,
      );
      assert.equal(arch, archLine(m.arch), family);
      if (layout.swa)
        assert.ok(arch.includes(`${layout.swa} sliding-window (window ${layout.window}) + `), `${family}: ${arch}`);
      if (layout.recurrent)
        assert.ok(arch.includes(`hybrid: ${layout.recurrent} recurrent layers`), `${family}: ${arch}`);
      if (family === "embed") assert.match(arch, /^bert · encoder \(no KV cache\): embeddings$/);
      if (family === "rerank") assert.match(arch, /^bert · encoder \(no KV cache\): a reranker$/);

      // the estimate, as /api/status has it
      const estimate = (await card.locator(".mem-row").first().textContent()) ?? "";
      assert.ok(m.estimatedBytes > 0, family);
      assert.ok(estimate.endsWith(bytes(m.estimatedBytes)), `${family}: ${estimate}`);
      const ctx = list.data.find((x) => x.id === family)?.meta?.ctx;
      assert.ok(ctx && ctx > 0, family);
      const context = card.locator("dt", { hasText: /^context$/ }).locator("xpath=following-sibling::dd[1]");
      assert.equal(await context.textContent(), `${ctx.toLocaleString("en-US")} tokens`, family);

      // the sliding-window models say whether they run with --swa-full, what it costs and why; the others nothing
      const swa = card.getByTestId("swa-full");
      if (layout.swa) {
        assert.ok(m.swaFull, `${family}: a --swa-full choice`);
        assert.equal(await swa.textContent(), swaFullFact(m.swaFull), family);
        assert.match((await swa.textContent()) ?? "", /^(on \(\+|off \(would cost \+)[\d.]+ [KMG]i?B\): \S/);
      } else assert.equal(await swa.count(), 0, family);

      // loaded from its card (each load evicts the one before: --max-models 1), the card says what the context
      // cache does with it: encoders keep no conversation; hybrids and sliding-window models take part, with no
      // caveat on a llama-server that keeps context checkpoints in slot files (the rig's, patched), else hybrids
      // with the caveat that a restore needs a follow-up extending the saved tokens and sliding-window ones only
      // with --swa-full on
      await card.getByRole("button", { name: "Load", exact: true }).click();
      await card.locator('[data-testid=state]:text-is("ready")').waitFor({ timeout: 30_000 });
      const saved = card.getByTestId("saved-context");
      await saved.waitFor({ timeout: 10_000 });
      const facts = (await saved.textContent()) ?? "";
      const caveat = card.getByTestId("context-caveat");
      if (layout.recurrent && !checkpoints)
        assert.match((await caveat.textContent()) ?? "", new RegExp(`^hybrid/recurrent memory \\(${spec.arch}\\)`));
      else assert.equal(await caveat.count(), 0, family);
      if (spec.arch === "bert") assert.match(facts, /^off: an embedding or reranking model/, family);
      else if (layout.swa && !m.swaFull?.on && !checkpoints)
        assert.match(facts, /^off: sliding-window attention/, family);
      else assert.doesNotMatch(facts, /^off/, `${family}: ${facts}`);
    }
  });

  test("gpt-oss harmony: the playground and gglib chat keep the analysis apart from the final answer", async () => {
    // on its own the tiny gpt-oss writes `<|channel|>analysis<|message|>plan<|end|>`, then the final channel (whose
    // unconstrained text may hold a stray control token such as <|message|>: random weights, not a leak)
    const own = await playground("gpt-oss", "Why?", 32);
    assert.equal(own.thinking, GPT_OSS_THOUGHT, JSON.stringify(own));
    assert.ok(own.answer.length > 0, JSON.stringify(own));
    assert.match(own.stats, /\d+ tokens/);
    // a grammar-written turn: the known answer, and no part of a marker shown at any moment of the stream
    const shown = await playground("gpt-oss-harmony", "Why?", 200);
    assert.equal(shown.thinking.trim(), "plan it", JSON.stringify(shown));
    assert.equal(shown.answer.trim(), "the answer", JSON.stringify(shown));
    assert.ok(shown.streamed.length > 0 && shown.streamed.every((a) => !PART.test(a)), JSON.stringify(shown));
    // a follow-up: the history goes back as the answers alone; the new turn is split the same way
    const next = await playground("gpt-oss-harmony", "And then?", 200, true);
    assert.equal(await page.locator(".turn.assistant").count(), 2);
    assert.equal(next.thinking.trim(), "plan it", JSON.stringify(next));
    assert.equal(next.answer.trim(), "the answer", JSON.stringify(next));
    assert.ok(
      next.streamed.every((a) => !PART.test(a)),
      JSON.stringify(next),
    );

    // the terminal chat: --json has the two apart, the model's own turn and the grammar-written one
    const j = await chatJson(["gpt-oss", "-p", "Why?", "-n", "32", "-o", "seed=4"]);
    assert.equal(j.model, "gpt-oss");
    assert.equal(j.thinking, GPT_OSS_THOUGHT, JSON.stringify(j));
    assert.ok(j.answer.length > 0, JSON.stringify(j));
    const known = await chatJson(["gpt-oss", "-p", "Why?", "-n", "200", "-o", `grammar=${HARMONY}`]);
    assert.equal(known.thinking?.trim(), "plan it", JSON.stringify(known));
    assert.equal(known.answer.trim(), "the answer", JSON.stringify(known));
    // the same with no proxy: the chat starts llama-server for the model itself, and stops it
    const alone = await chatJson([join(dir, "models", "gpt-oss.gguf"), "-p", "Why?", "-o", `grammar=${HARMONY}`], true);
    assert.equal(alone.thinking?.trim(), "plan it", JSON.stringify(alone));
    assert.equal(alone.answer.trim(), "the answer", JSON.stringify(alone));
    // plain: stdout is the answer alone (thinking hidden in a pipe); --think show puts the thinking on stderr
    const hidden = await gglibChat(["gpt-oss-harmony", "-p", "Why?"]);
    assert.equal(hidden.code, 0, hidden.stderr);
    assert.equal(hidden.stdout, "the answer\n");
    assert.equal(hidden.stderr, "");
    const show = await gglibChat(["gpt-oss-harmony", "-p", "Why?", "--think", "show"]);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(show.stdout, "the answer\n");
    assert.equal(show.stderr.trim(), "plan it");
  });

  test("Qwen3 <think>: the playground and gglib chat show the thinking apart from the answer", async () => {
    const shown = await playground("qwen3-think", "Why?", 200);
    assert.equal(shown.thinking.trim(), "plan it", JSON.stringify(shown));
    assert.equal(shown.answer.trim(), "the answer", JSON.stringify(shown));
    // the tags are streamed a character at a time where the grammar spells them: no part of one shows
    assert.ok(shown.streamed.length > 0 && shown.streamed.every((a) => !PART.test(a)), JSON.stringify(shown));

    const j = await chatJson(["qwen3", "-p", "Why?", "-n", "200", "-o", `grammar=${QWEN3_THINK}`]);
    assert.equal(j.thinking?.trim(), "plan it", JSON.stringify(j));
    assert.equal(j.answer.trim(), "the answer", JSON.stringify(j));
    const plain = await gglibChat(["qwen3-think", "-p", "Why?", "--think", "show"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, "the answer\n");
    assert.equal(plain.stderr.trim(), "plan it");
  });

  test("Qwen3.5 (its template opens <think>): the playground and gglib chat show the thinking apart", async () => {
    const shown = await playground("qwen35-think", "Why?", 200);
    assert.equal(shown.thinking.trim(), "plan it", JSON.stringify(shown));
    assert.equal(shown.answer.trim(), "the answer", JSON.stringify(shown));
    assert.ok(shown.streamed.length > 0 && shown.streamed.every((a) => !PART.test(a)), JSON.stringify(shown));

    const j = await chatJson(["qwen35", "-p", "Why?", "-n", "200", "-o", `grammar=${QWEN35_THINK}`]);
    assert.equal(j.thinking?.trim(), "plan it", JSON.stringify(j));
    assert.equal(j.answer.trim(), "the answer", JSON.stringify(j));
    // on its own the random Qwen3.5 never closes the block: what it writes is thinking, up to a <tool_call> tag if
    // it writes one (llama.cpp's Qwen3.5 parser ends the reasoning there; families.test.ts)
    const own = await chatJson(["qwen35", "-p", "Why is the sky blue?", "-n", "12", "-o", "seed=2"]);
    assert.ok((own.thinking ?? "") + own.answer !== "", JSON.stringify(own));
    assert.doesNotMatch(own.thinking ?? "", /<\/?think>/);
    assert.match(own.answer, /^(<tool_call>[\s\S]*)?$/, JSON.stringify(own));
    const plain = await gglibChat(["qwen35-think", "-p", "Why?"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, "the answer\n");
  });

  test("the BERT models in the playground: Embed for the embedding model, Embed and Rerank for the reranker", async () => {
    await page.goto(`${proxy.url}/ui/#/playground`);
    const vectors = page.locator("section.vectors");
    await page.locator(".toolbar select").selectOption("embed");
    await vectors.waitFor();
    assert.equal(await vectors.getByRole("button", { name: "Rerank" }).count(), 0, "no rerank without --reranking");
    await vectors.getByPlaceholder("one text per line").fill("hello world\nthe cat sat");
    await vectors.getByRole("button", { name: "Embed" }).click();
    const out = vectors.locator("pre");
    await out.waitFor({ timeout: 30_000 });
    assert.match((await out.textContent()) ?? "", /^#0: 64 dims \[[-\d., ]+, …\]\n#1: 64 dims \[/);

    await page.locator(".toolbar select").selectOption("rerank");
    await vectors.getByPlaceholder("query (rerank)").fill("hello");
    await vectors.getByPlaceholder("one text per line").fill("hello world\nthe cat sat on the mat\nParis");
    await vectors.getByRole("button", { name: "Rerank" }).click();
    // sorted by score, one line per document
    await vectors.locator("pre", { hasText: "Paris" }).waitFor({ timeout: 30_000 });
    const lines = ((await out.textContent()) ?? "").split("\n");
    assert.equal(lines.length, 3, lines.join("\n"));
    const scores = lines.map((l) => Number(/^(-?[\d.]+) {2}/.exec(l)?.[1]));
    assert.ok(scores.every(Number.isFinite), lines.join("\n"));
    assert.deepEqual(
      [...scores].sort((a, b) => b - a),
      scores,
      "highest first",
    );
    assert.deepEqual(lines.map((l) => l.replace(/^\S+ {2}/, "")).sort(), [
      "Paris",
      "hello world",
      "the cat sat on the mat",
    ]);
  });

  test("gglib chat in a terminal (tmux): gpt-oss's analysis and Qwen3.5's thinking fold apart, two turns, /model", async () => {
    const name = "chat";
    const log = join(dir, "tmux.log");
    const script = join(dir, "chat.sh");
    writeFileSync(
      script,
      [
        `export GGLIB_DATA_DIR=${sq(join(dir, "data"))} TERM=xterm-256color`,
        "unset NO_COLOR",
        `cd ${sq(ROOT)}`,
        `${sq(process.execPath)} --import tsx src/cli/main.ts chat gpt-oss-harmony --url ${sq(proxy.url)}`,
        'echo "[exit $?]"',
        "sleep 600",
      ].join("\n") + "\n",
    );
    tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "40", `sh ${sq(script)}`);
    tmux("pipe-pane", "-t", name, "-o", `cat >> ${sq(log)}`);
    await waitScreen(name, />>>$/);
    // each answer under its folded thinking, turn after turn
    await say(name, "Why?", 1);
    const two = await say(name, "And then?", 2);
    assert.equal(two.match(/^thought for \d+(\.\d)? m?s\nthe answer$/gm)?.length, 2, two);
    const file = join(dir, "gpt-oss chat.md");
    tmux("send-keys", "-t", name, "-l", `/save "${file}"`);
    tmux("send-keys", "-t", name, "Enter");
    await waitScreen(name, /Saved 4 messages to .*\(markdown\)\.\n>>>$/);
    const md = readFileSync(file, "utf8");
    assert.equal(
      md.match(/<summary>Thought for [\d.]+ m?s<\/summary>\n\nplan it\n\n<\/details>\n\nthe answer\n/g)?.length,
      2,
      md,
    );

    // another family in the same chat: Qwen3.5, whose template has opened <think>
    tmux("send-keys", "-t", name, "-l", "/model qwen35-think");
    tmux("send-keys", "-t", name, "Enter");
    await waitScreen(name, /qwen35-think[^\n]*\n>>>$/);
    const three = await say(name, "Why is the sky blue?", 3);
    assert.match(three, /Why is the sky blue\?\nthought for \d+(\.\d)? m?s\nthe answer\n/);
    tmux("send-keys", "-t", name, "C-d");
    await waitScreen(name, /\[exit 0\]/);
    // nothing drawn at any moment (the log has every redraw while streaming) shows a harmony or think marker
    assert.doesNotMatch(readFileSync(log, "utf8"), MARKERS);
  });
});
