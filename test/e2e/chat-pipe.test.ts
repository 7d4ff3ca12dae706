// `gglib chat` without a terminal (stdin/stdout are pipes), against the REAL llama-server and the tiny thinking
// model. No proxy runs, so the chat starts the model itself through the runner and must stop it on exit.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
// The tiny model's weights are random: a grammar makes its output known (thinking, then the answer).
const GRAMMAR = 'grammar=root ::= "Let me see</think>Hello world"';

let bin: string;
let dir: string;
let modelsDir: string;
let think: string;
let closedUrl: string;

async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function gglibChat(
  args: string[],
  input: string,
  opts: { env?: Record<string, string>; onStdout?: (s: string, child: ReturnType<typeof spawn>) => void } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "chat", ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        GGLIB_LLAMA_SERVER: bin,
        GGLIB_DATA_DIR: join(dir, "data"),
        GGLIB_PROXY_URL: closedUrl,
        NO_COLOR: "1",
        ...opts.env,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      opts.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** llama-servers still running for this test's models. */
const leftovers = () => pidsWithArg(modelsDir).filter((pid) => pid !== process.pid);

before(async () => {
  bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-chat-pipe-"));
  modelsDir = join(dir, "models");
  mkdirSync(modelsDir, { recursive: true });
  // a model that never closes its think block: answers need the grammar below, and "all thinking" is testable
  think = await writeTinyModel(modelsDir, { name: "tiny-think", kind: "think", endsThinking: false });
  closedUrl = `http://127.0.0.1:${await closedPort()}`;
});

after(() => {
  for (const pid of leftovers()) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("gglib chat in a pipe", () => {
  test("echo hi | gglib chat tiny-think prints only the answer, says what it started, leaves nothing running", async () => {
    const r = await gglibChat(["tiny-think", "--models-dir", modelsDir, "-o", GRAMMAR, "-n", "64"], "hi\n");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Hello world\n");
    assert.match(r.stderr, /No gglib proxy at http:\/\/127\.0\.0\.1:\d+: starting tiny-think with llama-server/);
    assert.match(r.stderr, /Started tiny-think \(llama-server pid \d+, port \d+\); it stops when the chat ends\./);
    assert.doesNotMatch(r.stderr, /Let me see/, "thinking is hidden by default in a pipe");
    assert.deepEqual(leftovers(), [], "the llama-server started for the chat was stopped");
  });

  test("--think show sends the thinking to stderr; stdout stays the answer", async () => {
    const r = await gglibChat([think, "-o", GRAMMAR, "--think", "show", "--quiet"], "hi");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "Hello world\n");
    assert.equal(r.stderr, "Let me see\n");
  });

  test("--json prints one JSON object with the answer, the thinking and the stats", async () => {
    const r = await gglibChat([think, "-o", GRAMMAR, "--json", "-q"], "What is it?");
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1);
    const obj = JSON.parse(lines[0]!);
    assert.equal(obj.model, "tiny-think");
    assert.equal(obj.answer, "Hello world");
    assert.equal(obj.thinking, "Let me see");
    assert.equal(obj.finish_reason, "stop");
    assert.equal(typeof obj.stats.ttft_ms, "number");
    assert.ok(obj.stats.prompt_tokens > 0);
    assert.ok(obj.stats.generated_tokens > 0);
  });

  test("--prompt asks without stdin; --system reaches the model", async () => {
    const r = await gglibChat([think, "-o", GRAMMAR, "-p", "question", "-s", "Be brief.", "-q", "--json"], "");
    assert.equal(r.code, 0, r.stderr);
    const obj = JSON.parse(r.stdout);
    assert.equal(obj.answer, "Hello world");
    // system + user through the think template: more prompt tokens than the user message alone
    const bare = JSON.parse((await gglibChat([think, "-o", GRAMMAR, "-p", "question", "-q", "--json"], "")).stdout);
    assert.ok(obj.stats.prompt_tokens > bare.stats.prompt_tokens);
  });

  test("an answer that is all thinking: empty stdout, exit 0, and a note on stderr", async () => {
    const r = await gglibChat([think, "-n", "12"], "hi");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /gglib chat: the model spent 12 tokens thinking and gave no answer \(length limit reached: raise --max-tokens or the context size\)/,
    );
  });

  test("failures exit non-zero with a clear message", async () => {
    const empty = await gglibChat([think], "");
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /nothing to ask: stdin was empty/);

    const unknown = await gglibChat(["no-such-model", "--models-dir", modelsDir], "hi");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No model named "no-such-model"\.\nKnown models: tiny-think\./);

    const missing = await gglibChat([join(dir, "missing.gguf")], "hi");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot use model .*missing\.gguf: .* does not exist/);

    const down = await gglibChat(["tiny-think", "--url", closedUrl], "hi");
    assert.equal(down.code, 1);
    assert.match(down.stderr, /Nothing answers at http:\/\/127\.0\.0\.1:\d+\.\nStart it \(`gglib proxy`\)/);

    const noModel = await gglibChat([], "hi");
    assert.equal(noModel.code, 2);
    assert.match(noModel.stderr, /No gglib proxy at .*, and no model was named/);
    assert.deepEqual(leftovers(), []);
  });

  test("SIGINT during a long answer cancels it, exits 130 and stops the server", async () => {
    let sent = false;
    const r = await gglibChat(
      [think, "-q", "-c", "16384", "-n", "15000", "-o", 'grammar=root ::= "x</think>" [a-z ]+'],
      "go",
      {
        onStdout: (out, child) => {
          if (!sent && out.length > 20) {
            sent = true;
            child.kill("SIGINT");
          }
        },
      },
    );
    assert.equal(sent, true, "the answer started streaming");
    assert.equal(r.code, 130, r.stderr);
    assert.ok(await waitFor(() => leftovers().length === 0, 5000), "no llama-server left");
  });
});
