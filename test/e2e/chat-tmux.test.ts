/* eslint-disable no-control-regex -- the tests read terminal escape sequences */
// `gglib chat` in a REAL terminal: tmux runs it against the REAL llama-server and the tiny thinking model; the test
// types keys and reads the screen like a user would.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureLlamaCli, ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg, running, waitFor } from "../support/procs.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TMUX = existsSync("/usr/bin/tmux") ? "/usr/bin/tmux" : "tmux";
const SOCKET = `gglib-chat-e2e-${process.pid}`;

let bin: string;
let dir: string;
let modelsDir: string;
let closedUrl: string;

function tmux(...args: string[]): string {
  return execFileSync(TMUX, ["-L", SOCKET, "-f", "/dev/null", ...args], { encoding: "utf8" });
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Start `gglib chat ARGS` in a new tmux session; raw terminal output is also logged to <dir>/<name>.log. */
function startChat(t: TestContext, name: string, args: string[], env: Record<string, string> = {}): { log: string } {
  t.after(() => {
    try {
      tmux("kill-session", "-t", name);
    } catch {
      /* already gone */
    }
  });
  const log = join(dir, `${name}.log`);
  const script = join(dir, `${name}.sh`);
  const envs = {
    GGLIB_LLAMA_SERVER: bin,
    GGLIB_DATA_DIR: join(dir, "data"),
    GGLIB_PROXY_URL: closedUrl,
    TERM: "xterm-256color",
    ...env,
  };
  writeFileSync(
    script,
    [
      ...Object.entries(envs).map(([k, v]) => `export ${k}=${sq(v)}`),
      "unset NO_COLOR",
      `cd ${sq(ROOT)}`,
      `${sq(process.execPath)} --import tsx src/cli/main.ts chat ${args.map(sq).join(" ")}`,
      'echo "[exit $?]"',
      "sleep 600",
    ].join("\n") + "\n",
  );
  tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "30", `sh ${sq(script)}`);
  tmux("pipe-pane", "-t", name, "-o", `cat >> ${sq(log)}`);
  return { log };
}

/** The screen plus scrollback, as text (escapes = with colour attributes). */
function screen(name: string, escapes = false): string {
  return tmux("capture-pane", "-p", "-J", "-S", "-300", ...(escapes ? ["-e"] : []), "-t", name).replace(/\s+$/, "");
}

async function waitScreen(name: string, re: RegExp, timeoutMs = 60_000): Promise<string> {
  let last = "";
  const ok = await waitFor(() => re.test((last = screen(name))), timeoutMs, 100);
  assert.ok(ok, `screen never matched ${re}; it shows:\n${last}`);
  return last;
}

function keys(name: string, ...k: string[]): void {
  tmux("send-keys", "-t", name, ...k);
}

function type(name: string, text: string): void {
  tmux("send-keys", "-t", name, "-l", text);
}

async function slotsBusy(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/slots`);
  const slots = (await res.json()) as Array<{ is_processing: boolean }>;
  return slots.some((s) => s.is_processing);
}

const leftovers = () => pidsWithArg(dir).filter((pid) => pid !== process.pid);
/** The llama-server pid the chat announced. */
const serverPid = (text: string) => Number(/llama-server pid (\d+)/.exec(text)?.[1] ?? "0");

before(async () => {
  bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-chat-tmux-"));
  modelsDir = join(dir, "models");
  mkdirSync(modelsDir, { recursive: true });
  await writeTinyModel(modelsDir, { name: "tiny-think", kind: "think" });
  mkdirSync(join(dir, "long"));
  closedUrl = await new Promise<string>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(`http://127.0.0.1:${port}`));
    });
  });
});

after(() => {
  try {
    tmux("kill-server");
  } catch {
    /* no server left */
  }
  for (const pid of leftovers()) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("gglib chat in tmux", () => {
  test("thinking shows dim and labelled, folds to one line; markdown answer and stats follow; /save; Ctrl-D leaves", async (t) => {
    // Random weights: a grammar fixes the shape of the output (a long thinking, then a markdown answer). Long
    // enough to span several reads and redraws even at ~10k tokens/s: a thinking that arrives in one burst with its
    // </think> is folded before any window of it is drawn
    const grammar =
      'grammar=root ::= "Let me think step by step. " [a-z ]{1000} [a-z ]{1000} [a-z ]{1000} [a-z ]{1000} "</think>Here is the **answer**:\\n\\n- first item\\n- second item\\n\\nDone."';
    const s = "think";
    const { log } = startChat(t, s, [
      "tiny-think",
      "--models-dir",
      modelsDir,
      "-c",
      "8192",
      "-n",
      "5000",
      "-o",
      grammar,
    ]);
    const started = await waitScreen(
      s,
      /Started tiny-think \(llama-server pid \d+, port \d+\); it stops when the chat ends\.[\s\S]*>>>$/,
    );
    const pid = serverPid(started);
    assert.ok(running(pid), "the chat's llama-server runs");
    assert.match(screen(s), /No gglib proxy at http:\/\/127\.0\.0\.1:\d+: starting tiny-think with llama-server/);
    type(s, "What is up?");
    keys(s, "Enter");
    const done = await waitScreen(s, /first token .* tok\/s · prompt \d+ tokens · generated \d+ tokens\n>>>$/);

    // While it streamed, the thinking was drawn dim (SGR 2) under a "thinking…" label.
    const raw = readFileSync(log, "utf8");
    assert.match(raw, /\x1b\[[0-9;]*2m(\x1b\[[0-9;]*m)*thinking… \d+ s/, "a dim thinking label was drawn");
    // (the first draw may hold only the first token; a later draw is a window of rows, dim, under the label)
    assert.match(
      raw,
      /thinking… \d+ s[^\n]*\n\x1b\[[0-9;]*2m(\x1b\[[0-9;]*m)*[A-Za-z .]{20,}/,
      "the thinking text was drawn dim",
    );

    // Now it is folded to one line, followed by the rendered answer and the stats.
    assert.doesNotMatch(done, /Let me think step by step/);
    assert.doesNotMatch(done, /thinking…/);
    const lines = done.split("\n");
    const fold = lines.findIndex((l) => /^thought for \d+(\.\d)? m?s$/.test(l));
    assert.ok(fold >= 0, `one "thought for" line:\n${done}`);
    const ans = lines.findIndex((l) => l.includes("Here is the answer:"));
    const stats = lines.findIndex((l) => l.startsWith("first token"));
    assert.ok(fold < ans && ans < stats, `fold, answer, stats in order:\n${done}`);
    assert.doesNotMatch(done, /\*\*answer\*\*/, "emphasis is rendered, not shown as asterisks");
    assert.match(done, /\* first item\n\s*\* second item/);
    assert.match(screen(s, true), /\x1b\[([0-9;]*;)?2(;[0-9;]*)?m(\x1b\[[0-9;]*m)*thought for/, "the fold line is dim");

    // /save writes the conversation (markdown by extension), then Ctrl-D leaves and the server stops.
    const file = join(dir, "saved chat.md");
    type(s, `/save "${file}"`);
    keys(s, "Enter");
    await waitScreen(s, /Saved 2 messages to .*saved chat\.md \(markdown\)\.\n>>>$/);
    const md = readFileSync(file, "utf8");
    assert.match(md, /## User\n\nWhat is up\?/);
    assert.match(md, /<summary>Thought for [\d.]+ s<\/summary>\n\nLet me think step by step\./);
    assert.match(md, /Here is the \*\*answer\*\*:\n\n- first item\n- second item\n\nDone\./);
    keys(s, "C-d");
    await waitScreen(s, /Stopping tiny-think…\n\[exit 0\]/);
    assert.equal(running(pid), false, "the chat stopped its llama-server");
  });

  test("Ctrl-C cancels a long generation, the slot frees and the prompt returns; Ctrl-C at an empty prompt exits", async (t) => {
    const s = "cancel";
    // A long answer: the same tiny thinking model with a long context (the usual 2048 tokens end in under a second).
    const long = await writeTinyModel(join(dir, "long"), { name: "tiny-think", kind: "think", contextLength: 131072 });
    startChat(t, s, [long, "-c", "131072", "-n", "120000", "-o", 'grammar=root ::= "Brief.</think>" [a-z ]+']);
    const start = await waitScreen(s, /Started tiny-think \(llama-server pid \d+, port (\d+)\)[\s\S]*>>>$/);
    const port = Number(/port (\d+)\)/.exec(start)![1]);
    const pid = serverPid(start);

    for (const question of ["tell me a very long story", "again"]) {
      type(s, question);
      keys(s, "Enter");
      // the answer streams...
      await waitScreen(s, new RegExp(`${question}\\nthought for [^\\n]+\\n[a-z ]{40}`));
      assert.equal(await slotsBusy(port), true, "the model is generating");
      keys(s, "C-c");
      // ...and stops: "cancelled", then the prompt again
      await waitScreen(s, /\ncancelled\n(first token[^\n]*\n)?>>>$/, 20_000);
      assert.ok(await waitFor(async () => !(await slotsBusy(port)), 5_000, 50), "the slot is free again");
    }
    const history = readFileSync(join(dir, "data", "chat_history"), "utf8");
    assert.match(history, /tell me a very long story\nagain\n/);

    // Ctrl-C on a half-typed line clears it; on an empty prompt it leaves.
    type(s, "not sent");
    keys(s, "C-c");
    await waitScreen(s, />>> not sent\^C\n>>>$/);
    keys(s, "C-c");
    await waitScreen(s, /Stopping tiny-think…\n\[exit 0\]/);
    assert.equal(running(pid), false, "the chat stopped its llama-server");
  });

  test("multi-line input: backslash continuation and pasted text are one message; /help, /think, /system, /clear", async (t) => {
    const s = "multi";
    const grammar = 'grammar=root ::= "ok</think>Fine."';
    // History from an earlier session comes back with Up.
    const data = join(dir, "data-multi");
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "chat_history"), "an older question\n");
    startChat(t, s, [join(modelsDir, "tiny-think.gguf"), "-o", grammar, "--json"], { GGLIB_DATA_DIR: data });
    await waitScreen(s, />>>$/);
    keys(s, "Up");
    await waitScreen(s, />>> an older question$/);
    keys(s, "C-u");
    await waitScreen(s, />>>$/);
    type(s, "/help");
    keys(s, "Enter");
    await waitScreen(s, /\/save FILE[\s\S]*"""[\s\S]*>>>$/);
    type(s, "first line \\");
    keys(s, "Enter");
    await waitScreen(s, /\.\.\.$/);
    type(s, "second line");
    keys(s, "Enter");
    const one = await waitScreen(s, /\{"model":"tiny-think","answer":"Fine\."[^\n]*\n>>>$/);
    assert.equal(one.match(/"answer":"Fine\."/g)?.length, 1, "two typed lines, one message");

    writeFileSync(join(dir, "paste.txt"), "pasted one\npasted two\npasted three");
    tmux("load-buffer", join(dir, "paste.txt"));
    tmux("paste-buffer", "-t", s);
    await waitScreen(s, /\.\.\. pasted three$/);
    keys(s, "Enter");
    const two = await waitScreen(s, /("answer":"Fine\."[\s\S]*){2}>>>$/);
    assert.equal(two.match(/"answer":"Fine\."/g)?.length, 2, "a three-line paste is one message");

    type(s, "/think hide");
    keys(s, "Enter");
    await waitScreen(s, /Thinking will be hidden/);
    type(s, "/system Be terse.");
    keys(s, "Enter");
    await waitScreen(s, /System prompt set\./);
    type(s, "/clear");
    keys(s, "Enter");
    await waitScreen(s, /Conversation cleared\./);
    type(s, "/bogus");
    keys(s, "Enter");
    await waitScreen(s, /unknown command \/bogus/);
    type(s, "/exit");
    keys(s, "Enter");
    await waitScreen(s, /\[exit 0\]/);
    const history = readFileSync(join(data, "chat_history"), "utf8").split("\n");
    assert.equal(history[0], "an older question");
    for (const line of ["first line \\", "second line", "pasted three", "/think hide", "/exit"])
      assert.ok(history.includes(line), line);
  });

  test("--cli hands the terminal to llama-cli with the model's settings (no --interactive-first)", async (t) => {
    await ensureLlamaCli(); // next to the rig's llama-server, where gglib looks for it
    const s = "cli";
    startChat(t, s, ["--cli", join(modelsDir, "tiny-think.gguf"), "-n", "8", "-s", "Be brief."]);
    const shown = await waitScreen(s, /available commands:[\s\S]*\n> ?$/, 60_000);
    assert.match(
      shown,
      /Executing: \S*llama-cli -m \S*tiny-think\.gguf --jinja --reasoning-format deepseek -sys "Be brief\." -n 8/,
    );
    assert.doesNotMatch(shown, /--interactive-first/);
    type(s, "hello");
    keys(s, "Enter");
    await waitScreen(s, /> hello\n[\s\S]*Generation: [\d.]+ t\/s[\s\S]*\n> ?$/, 60_000);
    type(s, "/exit");
    keys(s, "Enter");
    await waitScreen(s, /\[exit 0\]/);
  });
});

describe("gglib chat in tmux through the gglib proxy", () => {
  let proxy: ChildProcess | undefined;
  let proxyUrl = "";

  before(async () => {
    const pdir = join(dir, "proxy-models");
    mkdirSync(pdir, { recursive: true });
    await writeTinyModel(pdir, { name: "tiny-think-long", kind: "think", contextLength: 131072 });
    const port = Number(new URL(closedUrl).port);
    proxyUrl = `http://127.0.0.1:${port}`;
    proxy = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "proxy", "--models-dir", pdir, "--port", String(port)],
      {
        cwd: ROOT,
        env: { ...process.env, GGLIB_LLAMA_SERVER: bin, GGLIB_DATA_DIR: join(dir, "proxy-data"), NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    proxy.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    proxy.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
    assert.ok(await waitFor(() => out.includes("gglib proxy on"), 60_000, 100), `the proxy started:\n${out}`);
  });

  after(async () => {
    const p = proxy;
    if (!p || p.exitCode !== null) return;
    p.kill("SIGTERM");
    if (!(await waitFor(() => p.exitCode !== null || p.signalCode !== null, 15_000, 50))) killQuietly(p.pid, false);
  });

  test("talks to the running proxy (not starting a server), shows its loading progress; Ctrl-C frees the upstream slot", async (t) => {
    const s = "viaproxy";
    const grammar = 'grammar=root ::= "Let me think. " [a-z ]{300} "</think>" [a-z ]+';
    const { log } = startChat(t, s, ["tiny-think-long", "-n", "100000", "-o", grammar], { GGLIB_PROXY_URL: proxyUrl });
    await waitScreen(
      s,
      new RegExp(
        `Talking to the gglib proxy at ${proxyUrl.replace(/\./g, "\\.")} \\(model tiny-think-long, loads on the first message\\)\\.[\\s\\S]*>>>$`,
      ),
    );
    assert.doesNotMatch(screen(s), /Started|llama-server pid/);
    type(s, "tell me everything");
    keys(s, "Enter");
    await waitScreen(s, /tell me everything\nthought for [^\n]+\n[a-z ]{40}/);
    assert.match(
      readFileSync(log, "utf8"),
      /loading(\x1b\[[0-9;]*m)* tiny-think-long .*%/,
      "the proxy's loading progress was shown",
    );
    const upstreamBusy = async () => {
      const res = await fetch(`${proxyUrl}/upstream/tiny-think-long/slots`);
      return ((await res.json()) as Array<{ is_processing: boolean }>).some((x) => x.is_processing);
    };
    assert.equal(await upstreamBusy(), true, "the model is generating");
    keys(s, "C-c");
    await waitScreen(s, /\ncancelled\n(first token[^\n]*\n)?>>>$/, 20_000);
    assert.ok(await waitFor(async () => !(await upstreamBusy()), 5_000, 50), "the upstream slot is free again");
    keys(s, "C-d");
    const end = await waitScreen(s, /\[exit 0\]/);
    assert.doesNotMatch(end, /Stopping/, "the proxy's model is the proxy's to stop");
    const models = (await (await fetch(`${proxyUrl}/v1/models`)).json()) as {
      data: Array<{ id: string; status: { value: string } }>;
    };
    assert.equal(models.data.find((m) => m.id === "tiny-think-long")?.status.value, "loaded");
  });
});
