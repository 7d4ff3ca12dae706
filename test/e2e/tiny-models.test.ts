/**
 * The tiny generated models against the REAL llama-server: they load, chat (plain and streamed) through the
 * `openai` client, the think model's output lands in reasoning_content, no sampling setting makes llama-server
 * fail on invalid UTF-8, and the broken-file helpers make llama-server fail the way broken downloads do.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import type {
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import { ensureLlamaServer } from "../support/llama-server.js";
import { tinyVocab, writeNotGguf, writeTinyModel, writeTruncatedGguf } from "../support/tiny-models.js";

/** llama.cpp sampling knobs the OpenAI types do not know; the client sends them through unchanged. */
interface LlamaSampling {
  top_k?: number;
  min_p?: number;
  grammar?: string;
  chat_template_kwargs?: Record<string, unknown>;
}

interface Server {
  readonly baseURL: string;
  readonly proc: ChildProcess;
  readonly log: string[];
  readonly readyMs: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
}

/** SIGTERM to the process group, SIGKILL after 5 s; resolves once the process is gone. */
async function killGroup(proc: ChildProcess): Promise<void> {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = exited(proc);
  try {
    process.kill(-proc.pid, "SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-proc.pid!, "SIGKILL");
    } catch {
      /* already gone */
    }
  }, 5000);
  await gone;
  clearTimeout(timer);
}

function spawnServer(bin: string, args: string[]): { proc: ChildProcess; log: string[] } {
  const proc = spawn(bin, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line) log.push(line);
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  proc.stdout.on("data", collect);
  proc.stderr.on("data", collect);
  return { proc, log };
}

const running = new Set<ChildProcess>();

/** Starts llama-server on a free port and waits for /health to answer 200. */
async function startServer(bin: string, model: string, extra: string[] = []): Promise<Server> {
  const port = await freePort();
  // One thread: on a shared 2-core machine llama.cpp's spinning thread pool is ~80x slower per token with 2.
  const args = ["-m", model, "--host", "127.0.0.1", "--port", String(port), "-c", "512", "--parallel", "1", "-t", "1"];
  const t0 = Date.now();
  const { proc, log } = spawnServer(bin, [...args, ...extra]);
  running.add(proc);
  proc.once("exit", () => running.delete(proc));
  const baseURL = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`llama-server exited (${proc.exitCode ?? proc.signalCode}) while loading:\n${log.join("\n")}`);
    }
    if (Date.now() > deadline) throw new Error(`llama-server not healthy after 60 s:\n${log.join("\n")}`);
    try {
      const res = await fetch(`${baseURL}/health`);
      await res.arrayBuffer();
      if (res.status === 200) return { baseURL, proc, log, readyMs: Date.now() - t0 };
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

function client(server: Server): OpenAI {
  return new OpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: "none", maxRetries: 0, timeout: 120_000 });
}

/** A delta's content and llama-server's reasoning_content extension (absent from the OpenAI types). */
function deltaText(delta: unknown): { content: string; reasoning: string } {
  const d = (delta ?? {}) as Record<string, unknown>;
  return {
    content: typeof d["content"] === "string" ? d["content"] : "",
    reasoning: typeof d["reasoning_content"] === "string" ? d["reasoning_content"] : "",
  };
}

function isValidUtf8(s: string): boolean {
  return !s.includes("\uFFFD");
}

let bin = "";
let dir = "";
let chatModel = "";
let thinkModel = "";

before(async () => {
  bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "tiny-models-e2e-"));
  chatModel = await writeTinyModel(dir, { name: "tiny-a", kind: "chat", seed: 1 });
  // never closes its think block, so everything it samples is reasoning (the split itself is checked with a grammar)
  thinkModel = await writeTinyModel(dir, { name: "tiny-think", kind: "think", seed: 3, endsThinking: false });
});

after(async () => {
  await Promise.all([...running].map(killGroup));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

void describe("tiny chat model on the real llama-server", () => {
  let server: Server;
  let openai: OpenAI;

  before(async () => {
    server = await startServer(bin, chatModel);
    openai = client(server);
  });
  after(async () => {
    if (server) await killGroup(server.proc);
  });

  void test("loads quickly and reports the model's shape", async () => {
    const size = statSync(chatModel).size;
    assert.ok(size > 50_000 && size < 400_000, `model is ${size} bytes`);
    assert.ok(server.log.some((l) => l.includes("model loaded")) || server.readyMs < 60_000);
    const res = await fetch(`${server.baseURL}/v1/models`);
    const body = (await res.json()) as { data: { id: string; meta: Record<string, unknown> }[] };
    const meta = body.data[0]!.meta;
    assert.equal(meta["n_vocab"], tinyVocab().tokens.length);
    assert.equal(meta["n_ctx_train"], 2048);
    assert.equal(meta["n_embd"], 64);
    assert.equal(meta["n_ctx"], 512);
  });

  void test("the SPM vocabulary merges pieces and the template is ChatML", async () => {
    const tok = (await (
      await fetch(`${server.baseURL}/tokenize`, {
        method: "POST",
        body: JSON.stringify({ content: "Hello world", with_pieces: true }),
      })
    ).json()) as { tokens: { id: number; piece: string }[] };
    assert.deepEqual(
      tok.tokens.map((t) => t.piece),
      [" Hello", " world"],
    );
    const tpl = (await (
      await fetch(`${server.baseURL}/apply-template`, {
        method: "POST",
        body: JSON.stringify({
          messages: [
            { role: "system", content: "S" },
            { role: "user", content: "Hi" },
          ],
        }),
      })
    ).json()) as { prompt: string };
    assert.equal(
      tpl.prompt,
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  void test("non-streaming chat returns valid content", async () => {
    const req: ChatCompletionCreateParamsNonStreaming = {
      model: "tiny-a",
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Hello" },
      ],
      max_tokens: 24,
      seed: 42,
    };
    const a = await openai.chat.completions.create(req);
    const content = a.choices[0]!.message.content ?? "";
    assert.ok(content.length > 0, "content is not empty");
    assert.ok(isValidUtf8(content));
    assert.equal(a.choices[0]!.finish_reason, "length", "the model never stops on its own");
    assert.equal(a.usage?.completion_tokens, 24);
    const again = await openai.chat.completions.create(req);
    assert.equal(again.choices[0]!.message.content, content, "same seed, same weights → same text");
  });

  void test("streaming chat delivers deltas and ends with [DONE]", async () => {
    const stream = await openai.chat.completions.create({
      model: "tiny-a",
      messages: [{ role: "user", content: "Tell me a story" }],
      max_tokens: 16,
      seed: 7,
      stream: true,
    });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    let role: string | undefined;
    for await (const chunk of stream) {
      chunks++;
      const choice = chunk.choices[0];
      if (!choice) continue;
      role ??= choice.delta.role;
      text += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
    assert.equal(role, "assistant");
    assert.ok(chunks >= 3, `${chunks} chunks`);
    assert.ok(text.length > 0 && isValidUtf8(text));
    assert.equal(finish, "length");

    // the raw wire: SSE events and the [DONE] terminator that the client swallows
    const res = await fetch(`${server.baseURL}/v1/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], max_tokens: 4, seed: 7, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const raw = await res.text();
    assert.ok(raw.startsWith("data: {"), raw.slice(0, 80));
    assert.ok(raw.endsWith("data: [DONE]\n\n"), raw.slice(-80));
  });

  void test("no seed or sampling setting produces invalid UTF-8 (the 500 of llama-server's chat parser)", async () => {
    // unfiltered sampling at high temperature would reach the silenced byte tokens if they were merely unlikely
    const outputs = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const req: ChatCompletionCreateParamsNonStreaming & LlamaSampling = {
        model: "tiny-a",
        messages: [{ role: "user", content: `Request number ${seed}` }],
        max_tokens: 128,
        seed,
        temperature: seed % 2 === 0 ? 2 : 1,
        top_p: 1,
        top_k: 0,
        min_p: 0,
      };
      const r = await openai.chat.completions.create(req);
      const content = r.choices[0]!.message.content ?? "";
      assert.ok(isValidUtf8(content), `seed ${seed}: ${JSON.stringify(content)}`);
      assert.ok(/^[\x20-\x7e\n]*$/.test(content), `seed ${seed}: printable ASCII and newlines only`);
      assert.equal(r.usage?.completion_tokens, 128);
      outputs.add(content);
    }
    assert.ok(outputs.size >= 10, `different seeds give different text (${outputs.size} distinct of 12)`);
  });
});

void describe("tiny think model on the real llama-server (--reasoning-format deepseek)", () => {
  let server: Server;
  let openai: OpenAI;

  before(async () => {
    server = await startServer(bin, thinkModel, ["--reasoning-format", "deepseek"]);
    openai = client(server);
  });
  after(async () => {
    if (server) await killGroup(server.proc);
  });

  void test("streamed deltas carry reasoning_content (the template forces the think block open)", async () => {
    const stream = await openai.chat.completions.create({
      model: "tiny-think",
      messages: [{ role: "user", content: "Why is the sky blue?" }],
      max_tokens: 16,
      seed: 3,
      stream: true,
    });
    let reasoning = "";
    let content = "";
    for await (const chunk of stream) {
      const parts = deltaText(chunk.choices[0]?.delta);
      reasoning += parts.reasoning;
      content += parts.content;
    }
    assert.ok(reasoning.length > 0, "reasoning_content arrived");
    assert.equal(content, "", "nothing leaves the open think block");
    assert.ok(isValidUtf8(reasoning));
  });

  void test("a grammar that closes the think block splits reasoning from content", async () => {
    const req: ChatCompletionCreateParamsNonStreaming & LlamaSampling = {
      model: "tiny-think",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 64,
      seed: 1,
      grammar: 'root ::= "abc</think>hello world"',
    };
    const r = await openai.chat.completions.create(req);
    const msg = r.choices[0]!.message as { content: string | null; reasoning_content?: string };
    assert.equal(msg.reasoning_content, "abc");
    assert.equal(msg.content, "hello world");
    assert.equal(r.choices[0]!.finish_reason, "stop");
  });

  void test("enable_thinking=false closes the block in the prompt: plain content", async () => {
    const req: ChatCompletionCreateParamsStreaming & LlamaSampling = {
      model: "tiny-think",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
      seed: 2,
      stream: true,
      chat_template_kwargs: { enable_thinking: false },
    };
    let reasoning = "";
    let content = "";
    for await (const chunk of await openai.chat.completions.create(req)) {
      const parts = deltaText(chunk.choices[0]?.delta);
      reasoning += parts.reasoning;
      content += parts.content;
    }
    assert.equal(reasoning, "");
    assert.ok(content.length > 0);
  });
});

void describe("broken model files make the real llama-server fail to load", () => {
  async function runToExit(model: string): Promise<{ code: number | null; log: string }> {
    const port = await freePort();
    const { proc, log } = spawnServer(bin, ["-m", model, "--host", "127.0.0.1", "--port", String(port), "-t", "1"]);
    running.add(proc);
    const timer = setTimeout(() => void killGroup(proc), 30_000);
    const { code } = await exited(proc);
    clearTimeout(timer);
    running.delete(proc);
    // give the pipes a moment to drain their last lines
    await new Promise((r) => setImmediate(r));
    return { code, log: log.join("\n") };
  }

  void test("a truncated GGUF", async () => {
    const cut = await writeTruncatedGguf(chatModel, join(dir, "truncated.gguf"), 4096);
    assert.equal(statSync(cut).size, 4096);
    assert.deepEqual(readFileSync(cut).subarray(0, 4096), readFileSync(chatModel).subarray(0, 4096));
    const { code, log } = await runToExit(cut);
    assert.notEqual(code, 0);
    assert.match(log, /failed to load model/);
  });

  void test("a file that is not GGUF", async () => {
    const bad = await writeNotGguf(join(dir, "garbage.gguf"));
    const { code, log } = await runToExit(bad);
    assert.notEqual(code, 0);
    assert.match(log, /invalid magic characters/);
  });

  void test("writeTruncatedGguf refuses a length that is not a truncation", async () => {
    await assert.rejects(writeTruncatedGguf(chatModel, join(dir, "x.gguf"), statSync(chatModel).size), /truncate/);
  });
});
