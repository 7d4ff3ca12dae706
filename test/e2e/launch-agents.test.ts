// `gglib launch` with the REAL agent CLIs (devDependencies: @anthropic-ai/claude-code, @openai/codex, opencode-ai;
// native binaries, offline) in their non-interactive modes, through the proxy on the real llama-server with a tiny
// long-context model whose template takes tools. The answers are gibberish (random weights, and the model never
// ends an answer by itself: every answer stops at the token limit); what is tested is the wiring: the agent
// reaches the proxy on its own API (/v1/messages, /v1/responses, /v1/chat/completions) with the model and its
// real prompt, gets an answer, and nothing is left running. Also Codex's own `--oss` path on our Ollama API (the
// version check, /api/tags, a pull of a listed model, `agent:latest` on /v1/responses).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { GGLIB_BIN } from "../support/proxy-harness.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN_DIR = join(ROOT, "node_modules", ".bin");
const TOOLS_TEMPLATE = readFileSync(join(ROOT, "test/fixtures/templates/chatml-tools.jinja"), "utf8");
/** Each agent run is bounded (a first request prefills the agent's whole prompt: ~20–33k tokens here). */
const RUN_MS = 240_000;

let dir: string;
let llama: string;
let proxy: RunningProxy;
let configPath: string;
/** Marks every process the test starts (found again in /proc/<pid>/environ). */
const MARK = `GGLIB_LAUNCH_TEST_${process.pid}`;

async function writeAgentModel(models: string): Promise<void> {
  mkdirSync(models, { recursive: true });
  await writeTinyModel(models, { name: "agent", kind: "chat", contextLength: 65536, chatTemplate: TOOLS_TEMPLATE });
}

/** A config with the model: `-n 32` bounds the answers of agents that send no limit (codex). */
function writeConfig(at: string, models: string): string {
  const path = join(at, "gglib.yaml");
  writeFileSync(
    path,
    `models:\n  agent:\n    path: ${JSON.stringify(join(models, "agent.gguf"))}\n    extraArgs: ["-n", "32"]\n`,
  );
  return path;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const home = join(dir, "home");
  return {
    PATH: `${BIN_DIR}${delimiter}${process.env.PATH ?? ""}`,
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local/share"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_STATE_HOME: join(home, ".local/state"),
    CODEX_HOME: join(home, ".codex"),
    GGLIB_DATA_DIR: join(dir, "data"),
    GGLIB_CACHE_DIR: join(dir, "cache"),
    GGLIB_CONTEXT_CACHE_DIR: join(dir, "kv"),
    GGLIB_LLAMA_SERVER: llama,
    NO_COLOR: "1",
    [MARK]: "1",
    ...extra,
  };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command in the work folder, bounded: SIGTERM to its group at the bound, SIGKILL 5 s later. */
function run(cmd: string, args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const t0 = Date.now();
  const child = spawn(cmd, args, {
    cwd: join(dir, "work"),
    env: env(extraEnv),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const term = setTimeout(() => killQuietly(child.pid, true), RUN_MS);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(term);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

const launch = (agent: string, args: string[], agentArgs: string[], extraEnv?: Record<string, string>) =>
  run(process.execPath, [GGLIB_BIN, "launch", agent, ...args, "--", ...agentArgs], extraEnv);

/** Processes whose environment carries the test's mark (the launch, the agents, their children, own proxies). */
function markedPids(): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/environ`, "latin1").split("\0").includes(`${MARK}=1`)) out.push(Number(p));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

interface Activity {
  path: string;
  method: string;
  model: string | null;
  status: number;
  promptTokens: number | null;
  cachedTokens: number | null;
}

async function activity(since: number): Promise<Activity[]> {
  const r = (await (await fetch(`${proxy.url}/api/activity`)).json()) as { records: (Activity & { seq: number })[] };
  return r.records.filter((x) => x.seq > since);
}
const lastSeq = async () => {
  const r = (await (await fetch(`${proxy.url}/api/activity`)).json()) as { records: { seq: number }[] };
  return Math.max(0, ...r.records.map((x) => x.seq));
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

const show = (r: Run) =>
  `exit ${r.code} after ${r.ms} ms\n--- stdout\n${r.stdout.slice(-2000)}\n--- stderr\n${r.stderr.slice(-3000)}`;

before(async () => {
  llama = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-launch-"));
  for (const d of ["home", "home/.codex", "work", "data"]) mkdirSync(join(dir, d), { recursive: true });
  const models = join(dir, "models");
  await writeAgentModel(models);
  configPath = writeConfig(dir, models);
  const runner = new LlamaServerRunner({
    binaryPath: llama,
    pidsDir: join(dir, "pids"),
    basePort: 21000 + Math.floor(Math.random() * 300),
  });
  proxy = await startProxy({ configPath, port: 0, memoryBudget: "8GiB", runner, watchConfig: false, contextCache: 0 });
});

after(async () => {
  await proxy?.close(5_000);
  for (const p of [...markedPids(), ...pidsWithArg(dir)]) killQuietly(p);
  rmSync(dir, { recursive: true, force: true });
});

describe("gglib launch with the real agents (e2e)", { timeout: 20 * 60_000 }, () => {
  test("claude -p: Claude Code's real prompt reaches /v1/messages with the model, and an answer comes back", async () => {
    const since = await lastSeq();
    const r = await launch("claude", ["--url", proxy.url, "--max-output", "24"], ["-p", "hi"]);
    // the tiny model never ends an answer, so Claude Code reports the output limit: that is an answer read back
    assert.ok(r.code === 0 || (r.code === 1 && /exceeded the 24 output token maximum/.test(r.stdout)), show(r));
    assert.match(r.stderr, /Claude Code → agent, context 65536 tokens/);
    // the model's window is taken from CLAUDE_CODE_MAX_CONTEXT_TOKENS: no 1M assumed, no 100k minimum applied
    assert.doesNotMatch(r.stdout + r.stderr, /assumes a context window|100k minimum/, show(r));
    const seen = (await activity(since)).filter((a) => a.path.startsWith("/v1/messages") && a.method === "POST");
    assert.ok(seen.length >= 1, show(r));
    assert.ok(
      seen.every((a) => a.model === "agent" && a.status === 200),
      JSON.stringify(seen),
    );
    const biggest = Math.max(...seen.map((a) => a.promptTokens ?? 0));
    assert.ok(biggest > 10_000, `Claude Code's system prompt and tools: ${biggest} prompt tokens`);
    // the requests after the first reuse its prefix in llama-server, and /api/activity now says so
    const turns = seen.map((a) => `${a.promptTokens}/${a.cachedTokens}`).join(", ");
    console.log(`claude: ${seen.length} /v1/messages (prompt/cached tokens: ${turns}), ${r.ms} ms`);
    if (seen.length > 1)
      assert.ok(
        seen.some((a) => (a.cachedTokens ?? 0) > 10_000),
        turns,
      );
    await waitFor(() => markedPids().length === 0, 5_000);
  });

  test("codex exec: the Responses API through a provider given with -c, answer printed, exit 0", async () => {
    const since = await lastSeq();
    const r = await launch("codex", ["--url", proxy.url], ["exec", "--skip-git-repo-check", "hi"]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /provider: gglib/);
    const seen = (await activity(since)).filter((a) => a.path.startsWith("/v1/responses"));
    assert.ok(seen.length >= 1 && seen.every((a) => a.model === "agent" && a.status === 200), show(r));
    console.log(`codex: ${seen.length} /v1/responses, ${r.ms} ms`);
    await waitFor(() => markedPids().length === 0, 5_000);
  });

  test("opencode run: a custom OpenAI-compatible provider from OPENCODE_CONFIG_CONTENT, exit 0", async () => {
    const since = await lastSeq();
    const r = await launch("opencode", ["--url", proxy.url, "--max-output", "24"], ["run", "hi"]);
    assert.equal(r.code, 0, show(r));
    const seen = (await activity(since)).filter((a) => a.path.startsWith("/v1/chat/completions"));
    assert.ok(seen.length >= 1 && seen.every((a) => a.model === "agent" && a.status === 200), show(r));
    console.log(`opencode: ${seen.length} /v1/chat/completions, ${r.ms} ms`);
    await waitFor(() => markedPids().length === 0, 5_000);
  });

  test("codex --oss on the proxy's Ollama API: version accepted, a listed model pulled, agent:latest answered", async () => {
    const since = await lastSeq();
    const r = await run(
      "codex",
      ["exec", "--oss", "--local-provider", "ollama", "-m", "agent", "--skip-git-repo-check", "hi"],
      { CODEX_OSS_BASE_URL: `${proxy.url}/v1` },
    );
    assert.equal(r.code, 0, show(r));
    assert.doesNotMatch(r.stderr + r.stdout, /too old|failed to start pull/);
    const seen = (await activity(since)).filter((a) => a.path.startsWith("/v1/responses"));
    assert.ok(seen.length >= 1 && seen.every((a) => a.model === "agent" && a.status === 200), show(r));
    await waitFor(() => markedPids().length === 0, 5_000);
  });

  test("no proxy at the URL: one is started for the agent's lifetime, and nothing is left after", async () => {
    const own = join(dir, "own");
    await writeAgentModel(join(own, "models"));
    const config = writeConfig(own, join(own, "models"));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const r = await launch("codex", ["--url", url, "--config", config], ["exec", "--skip-git-repo-check", "hi"]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /no gglib proxy at .*: starting one for this session/);
    assert.match(r.stderr, /stopping the proxy started for this session/);
    await waitFor(() => markedPids().length === 0 && pidsWithArg(own).length === 0, 10_000);
    assert.deepEqual(pidsWithArg(own), [], "no llama-server of the launch's proxy is left");
    await assert.rejects(fetch(`${url}/health`), "the launch's proxy is gone");
  });

  test("a model whose context is too small is refused with the numbers; a missing agent names its npm package", async () => {
    const small = join(dir, "small");
    mkdirSync(small, { recursive: true });
    await writeTinyModel(small, { name: "short", kind: "chat", contextLength: 4096 });
    const port = await freePort();
    const r = await launch("claude", ["--url", `http://127.0.0.1:${port}`, "--models-dir", small], ["-p", "hi"]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /no model can hold the 32768 tokens .*short \(4096 tokens\)/);
    const named = await launch(
      "claude",
      ["--url", `http://127.0.0.1:${port}`, "--models-dir", small, "-m", "short"],
      [],
    );
    assert.match(named.stderr, /cannot hold 32768 tokens \(trained on 4096 tokens/);
    const missing = await run(process.execPath, [GGLIB_BIN, "launch", "opencode", "--url", proxy.url], {
      PATH: "/usr/bin:/bin",
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /npm install -g opencode-ai/);
    await waitFor(() => markedPids().length === 0 && pidsWithArg(small).length === 0, 10_000);
  });
});
