/**
 * `gglib launch` on the fake llama-server, without any agent running (--json / --print-env): the proxy it finds
 * or starts (and stops, leaving nothing), the key it passes, the model and context it chooses, a context raised by
 * a reload of its own proxy, and the refusals (a config model or a running proxy with too small a context, a key
 * the proxy wants, an unknown agent).
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readModelMetadata } from "../../src/gguf/reader.js";
import { estimateMemory } from "../../src/models/estimator.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../support/fake-llama.js";
import { GGLIB_BIN, startProxyProcess } from "../support/proxy-harness.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function folder(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "gglib-launch-cli-"));
  t.after(async () => {
    for (const p of pidsWithArg(dir)) killQuietly(p);
    await waitFor(() => pidsWithArg(dir).length === 0, 3_000);
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, "models"));
  return dir;
}

function gglib(dir: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, [GGLIB_BIN, ...args], {
    env: {
      ...process.env,
      ...fakeLlamaEnv({ loadMs: 20 }),
      GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
      GGLIB_DATA_DIR: join(dir, "data"),
      GGLIB_CACHE_DIR: join(dir, "cache"),
      GGLIB_CONTEXT_CACHE_DIR: join(dir, "kv"),
      GGLIB_PROXY_URL: "",
      GGLIB_API_KEY: "",
      NO_COLOR: "1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const kill = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

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

interface LaunchJson {
  agent: string;
  url: string;
  proxy: string;
  model: string;
  ctx: number;
  command: string;
  args: string[];
  env: Record<string, string>;
  unset: string[];
}

describe("gglib launch (fake llama-server, no agent run)", { timeout: 120_000 }, () => {
  test("no proxy at the URL: one is started, the model chosen, --json printed, and the proxy stopped", async (t) => {
    const dir = folder(t);
    writeFakeModel(join(dir, "models"), "coder", { contextLength: 65536 });
    writeFakeModel(join(dir, "models"), "short", { contextLength: 4096 });
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await gglib(dir, ["launch", "claude", "--url", url, "--models-dir", join(dir, "models"), "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as LaunchJson;
    assert.equal(j.proxy, "started");
    assert.equal(j.model, "coder", "the model that holds the floor, not the first by name");
    assert.equal(j.ctx, 65536);
    assert.equal(j.env.ANTHROPIC_BASE_URL, url);
    assert.match(r.stderr, /no gglib proxy at .*: starting one/);
    assert.match(r.stderr, /Claude Code → coder, context 65536 tokens \(trained 65536, fits 65536\)/);
    await assert.rejects(fetch(`${url}/health`), "the launch's proxy is stopped");
    assert.deepEqual(pidsWithArg(dir), []);
  });

  test("--ctx: the launch's own proxy loads the model with that context (a reload before any load)", async (t) => {
    const dir = folder(t);
    writeFakeModel(join(dir, "models"), "coder", { contextLength: 131072 });
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await gglib(dir, [
      "launch",
      "codex",
      "--url",
      url,
      "--models-dir",
      join(dir, "models"),
      "--ctx",
      "40000",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as LaunchJson;
    assert.equal(j.ctx, 40000);
    assert.ok(j.args.includes("model_context_window=40000"), j.args.join(" "));
    const below = await gglib(dir, [
      "launch",
      "codex",
      "--url",
      url,
      "--models-dir",
      join(dir, "models"),
      "--ctx",
      "8192",
    ]);
    assert.equal(below.code, 1);
    assert.match(below.stderr, /--ctx 8192 is below the 32768 tokens this agent needs/);
    assert.deepEqual(pidsWithArg(dir), []);
  });

  test("the context is capped by what fits the memory budget (the proxy's estimator), and the model pinned to it", async (t) => {
    const dir = folder(t);
    const path = writeFakeModel(join(dir, "models"), "coder", { contextLength: 131072 });
    const metadata = await readModelMetadata(path);
    const bytesAt = (ctx: number) => estimateMemory({ metadata, fileBytes: statSync(path).size, ctx }).totalBytes;
    const config = join(dir, "gglib.yaml");
    writeFileSync(config, `memoryBudget: ${bytesAt(65536)}\n`);
    const url = `http://127.0.0.1:${await freePort()}`;
    const args = ["launch", "codex", "--url", url, "--config", config, "--models-dir", join(dir, "models"), "--json"];
    const r = await gglib(dir, args);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as LaunchJson & { fits: number; trained: number };
    assert.deepEqual([j.ctx, j.fits, j.trained], [65536, 65536, 131072]);
    assert.ok(j.args.includes("model_context_window=65536"));
    writeFileSync(config, `memoryBudget: ${bytesAt(16384)}\n`);
    const small = await gglib(dir, args);
    assert.equal(small.code, 1);
    assert.match(
      small.stderr,
      /cannot hold 32768 tokens \(trained on 131072 tokens, the memory budget holds at most 16384 tokens/,
    );
  });

  test("parallel set: each conversation gets ctx / parallel (a KV cache per slot), and that is what the agent is told", async (t) => {
    const dir = folder(t);
    const path = writeFakeModel(join(dir, "models"), "coder", { contextLength: 131072 });
    const config = join(dir, "gglib.yaml");
    writeFileSync(config, `models:\n  coder:\n    path: ${JSON.stringify(path)}\n    ctx: 131072\n    parallel: 2\n`);
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await gglib(dir, ["launch", "claude", "--url", url, "--config", config, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as LaunchJson;
    assert.equal(j.ctx, 65536);
    assert.equal(j.env.CLAUDE_CODE_MAX_CONTEXT_TOKENS, "65536");
  });

  test("a config model with a small ctx, and a running proxy with one, are refused with what to set", async (t) => {
    const dir = folder(t);
    const path = writeFakeModel(join(dir, "models"), "coder", { contextLength: 65536 });
    const config = join(dir, "gglib.yaml");
    writeFileSync(config, `models:\n  coder:\n    path: ${JSON.stringify(path)}\n    ctx: 4096\n`);
    const url = `http://127.0.0.1:${await freePort()}`;
    const own = await gglib(dir, ["launch", "opencode", "--url", url, "--config", config, "--json"]);
    assert.equal(own.code, 1);
    assert.match(own.stderr, /'coder' comes from the config file with 4096 tokens of context; the agent needs 32768/);
    assert.match(own.stderr, /Set `ctx: 32768` for 'coder' in the config file/);

    const running = await startProxyProcess(t, { dir, args: ["--config", config] });
    const r = await gglib(dir, ["launch", "opencode", "--url", running.url, "--json"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /runs 'coder' with 4096 tokens of context; the agent needs 32768/);
    assert.match(r.stderr, /Set `ctx: 32768` for 'coder' in that proxy's config/);
  });

  test("a running proxy with keys: the key is required, then passed to the agent; --print-env for sh", async (t) => {
    const running = await startProxyProcess(t, { models: [], args: ["--api-key", "sk-test-1"] });
    writeFakeModel(running.modelsDir, "coder", { contextLength: 65536 });
    const dir = running.dir;
    // the folder was scanned at start: reload it
    running.child.kill("SIGHUP");
    await waitFor(async () => {
      const m = await fetch(`${running.url}/v1/models`, { headers: { authorization: "Bearer sk-test-1" } });
      return ((await m.json()) as { data: unknown[] }).data.length === 1;
    }, 5_000);
    const denied = await gglib(dir, ["launch", "claude", "--url", running.url, "--json"]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /requires an API key.*\n.*--api-key/);
    const r = await gglib(dir, ["launch", "claude", "--url", running.url, "--json"], { GGLIB_API_KEY: "sk-test-1" });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as LaunchJson;
    assert.equal(j.proxy, "running");
    assert.equal(j.env.ANTHROPIC_AUTH_TOKEN, "sk-test-1");
    assert.deepEqual(j.unset, ["ANTHROPIC_API_KEY"]);
    const codex = await gglib(dir, ["launch", "codex", "--url", running.url, "--api-key", "sk-test-1", "--print-env"]);
    assert.equal(codex.code, 0, codex.stderr);
    const lines = codex.stdout.trim().split("\n");
    assert.equal(lines[0], "export GGLIB_API_KEY=sk-test-1");
    assert.match(lines[1]!, /^codex -c 'model_provider="gglib"' .*'model="coder"' -c model_context_window=65536/);
  });

  test("an unknown agent and a missing agent binary say what to do", async (t) => {
    const dir = folder(t);
    const r = await gglib(dir, ["launch", "cursor"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Unknown agent 'cursor'.*\n.*claude, codex, opencode/);
    const missing = await gglib(dir, ["launch", "claude"], { PATH: "/nonexistent" });
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /Claude Code \(`claude`\) is not on PATH.*\n.*npm install -g @anthropic-ai\/claude-code/,
    );
    const help = await gglib(dir, ["launch", "--help"]);
    for (const agent of ["claude", "codex", "opencode"]) assert.match(help.stdout, new RegExp(`gglib launch ${agent}`));
  });
});
