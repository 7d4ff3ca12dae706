// The model families people run, as tiny random-weight GGUFs (test/support/archs/) with their real chat templates,
// on the REAL llama-server through `gglib proxy` (in-process, --max-models 1): each family loads, chats, streams
// and stops at max_tokens through the official `openai` client, is listed by /v1/models and /api/status, and
// swaps with the others and unloads; reasoning is kept apart on the Qwen3 <think> templates, Gemma 4's thought
// channel and gpt-oss harmony (OpenAI reasoning_content, Ollama message.thinking); tool calls go through
// `tool_choice: "required"` (the `openai` client) and Ollama's `tools` (the `ollama` client); embeddings and rerank
// through /v1/embeddings, /v1/rerank and Ollama /api/embed. README's "Model families" table is taken from what this file shows.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { Ollama } from "ollama";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { FAMILIES, GPT_OSS_THOUGHT, writeArchModel, type ArchFamily } from "../support/archs/index.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

/** llama.cpp request fields the OpenAI types do not know; the client and the proxy pass them through. */
interface LlamaExtras {
  grammar?: string;
  top_k?: number;
  min_p?: number;
  chat_template_kwargs?: Record<string, unknown>;
}

// gemma4 last: each model's weight seed is its index in ALL, so the others keep theirs
const CHAT: readonly ArchFamily[] = [
  "gemma3",
  "granitehybrid",
  "qwen3",
  "qwen3moe",
  "qwen35",
  "lfm2",
  "gpt-oss",
  "gemma4",
];
/**
 * Families whose real template renders tools (Gemma 2/3's turn format has none). Gemma 4's template renders them,
 * but llama.cpp's Gemma 4 tool-call grammar (80fb11a) does not force a call on the tiny model: with
 * `tool_choice: "required"` it writes the same free text as with "auto" (same seed), and where it writes
 * `<|tool_call>` then free text llama-server answers 500 (output does not match peg-gemma4); under a user grammar
 * the same model writes `<|tool_call>call:get_weather{}<tool_call|>`.
 */
const TOOLS: readonly ArchFamily[] = ["granitehybrid", "qwen3", "qwen3moe", "qwen35", "gpt-oss", "lfm2"];
const ALL: readonly ArchFamily[] = [...CHAT, "embed", "rerank"];

let dir: string;
let proxy: RunningProxy;
let openai: OpenAI;
let ollama: Ollama;
const spawned: string[] = [];

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-families-"));
  const models = join(dir, "models");
  mkdirSync(models);
  const lines = ["models:"];
  for (const [i, family] of ALL.entries()) {
    const path = await writeArchModel(models, { family, seed: i + 1 });
    // one thread: llama.cpp's spinning thread pool is far slower per token on a shared 2-core machine
    lines.push(`  ${family}:`, `    path: ${JSON.stringify(path)}`, `    extraArgs: ["-t", "1"]`);
  }
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, lines.join("\n") + "\n");
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 21000 + Math.floor(Math.random() * 2000),
  });
  runner.on((e) => {
    if (e.type === "spawned") spawned.push(e.handle.model);
  });
  proxy = await startProxy({
    configPath,
    watchConfig: false,
    maxModels: 1,
    port: 0,
    memoryBudget: "8GiB",
    contextCacheDir: join(dir, "kv-context"),
    runner,
  });
  openai = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
  ollama = new Ollama({ host: proxy.url });
});

after(async () => {
  await proxy?.close(2_000);
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

const ready = () =>
  proxy.controller
    .status()
    .filter((s) => s.state === "ready")
    .map((s) => s.name);

function validUtf8(s: string): boolean {
  return !s.includes("\uFFFD");
}

/** gpt-oss writes its analysis and the final channel's header (13 tokens) before any content. */
function budget(family: ArchFamily, tokens: number): number {
  return family === "gpt-oss" ? tokens + 16 : tokens;
}

/** Qwen3.5's template opens <think> in the generation prompt: plain chats turn thinking off. */
function plain(family: ArchFamily): LlamaExtras {
  return family === "qwen35" ? { chat_template_kwargs: { enable_thinking: false } } : {};
}

describe("model families on the real llama-server through gglib proxy", { timeout: 600_000 }, () => {
  test("/v1/models and /api/status list every family before anything loads", async () => {
    const ids = (await openai.models.list()).data.map((m) => m.id).sort();
    assert.deepEqual(ids, [...ALL].sort());
    const st = (await (await fetch(`${proxy.url}/api/status`)).json()) as {
      models: { name: string; state: string }[];
    };
    assert.deepEqual(st.models.map((m) => m.name).sort(), [...ALL].sort());
    assert.ok(st.models.every((m) => m.state === "unloaded"));
  });

  for (const family of CHAT) {
    test(`${family} (${FAMILIES[family].arch}): loads, chats, streams and stops at max_tokens; listed as loaded`, async () => {
      const req: ChatCompletionCreateParamsNonStreaming & LlamaExtras = {
        model: family,
        messages: [{ role: "user", content: "Hello there" }],
        max_tokens: budget(family, 16),
        seed: 42,
        ...plain(family),
      };
      const r = await openai.chat.completions.create(req);
      assert.equal(r.model, family);
      const text = r.choices[0]!.message.content ?? "";
      assert.ok(text.length > 0, `${family}: content ${JSON.stringify(r.choices[0]!.message)}`);
      assert.ok(validUtf8(text), text);
      assert.equal(r.choices[0]!.finish_reason, "length");
      assert.equal(r.usage?.completion_tokens, budget(family, 16));
      assert.deepEqual(ready(), [family], "--max-models 1: only this family runs");

      const stream = await openai.chat.completions.create({
        ...req,
        max_tokens: budget(family, 12),
        seed: 7,
        stream: true,
      });
      let streamed = "";
      let chunks = 0;
      let finish: string | null = null;
      for await (const c of stream) {
        chunks++;
        assert.equal(c.model, family);
        streamed += c.choices[0]?.delta?.content ?? "";
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      assert.ok(chunks >= 3, `${chunks} chunks`);
      assert.ok(streamed.length > 0 && validUtf8(streamed), streamed);
      assert.equal(finish, "length");

      // unfiltered sampling at a high temperature still gives valid UTF-8 (the byte and special tokens are silenced)
      for (const seed of [1, 2, 3]) {
        const hot: ChatCompletionCreateParamsNonStreaming & LlamaExtras = {
          ...req,
          max_tokens: budget(family, 48),
          seed,
          temperature: 2,
          top_p: 1,
          top_k: 0,
          min_p: 0,
        };
        const h = await openai.chat.completions.create(hot);
        const t = h.choices[0]!.message.content ?? "";
        assert.ok(validUtf8(t), `${family} seed ${seed}: ${JSON.stringify(t)}`);
      }

      const list = (await (await fetch(`${proxy.url}/v1/models`)).json()) as {
        data: { id: string; status: { value: string } }[];
      };
      assert.equal(list.data.find((m) => m.id === family)?.status.value, "loaded");
      assert.ok(list.data.filter((m) => m.id !== family).every((m) => m.status.value === "unloaded"));
      const st = (await (await fetch(`${proxy.url}/api/status`)).json()) as {
        models: { name: string; state: string; pid?: number }[];
      };
      const mine = st.models.find((m) => m.name === family);
      assert.equal(mine?.state, "ready");
      assert.ok(mine?.pid, "a pid");
    });
  }

  test("swaps across families under --max-models 1 and unloads", async () => {
    const before = spawned.length;
    const running = ready()[0];
    const order = ["gpt-oss", "gemma3", "granitehybrid", "gpt-oss"] as const;
    for (const family of order) {
      const r = await openai.chat.completions.create({
        model: family,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 4,
      });
      assert.equal(r.model, family);
      assert.deepEqual(ready(), [family]);
    }
    // the last CHAT family is running when this test begins: every model of `order` starts, each once in a row
    // (the first only if it was not the one running)
    assert.deepEqual(
      spawned.slice(before),
      order.filter((f, i) => i > 0 || f !== running),
    );
    const res = await fetch(`${proxy.url}/models/unload`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-oss" }),
    });
    assert.equal(res.status, 200, await res.text());
    for (let i = 0; i < 100 && ready().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(ready(), []);
  });

  test("reasoning apart (OpenAI): gpt-oss harmony analysis → reasoning_content, the final channel → content", async () => {
    // the tiny gpt-oss writes a whole harmony turn: `<|channel|>analysis<|message|>plan<|end|>` then the final channel
    const req: ChatCompletionCreateParamsNonStreaming = {
      model: "gpt-oss",
      messages: [{ role: "user", content: "Why?" }],
      max_tokens: 32,
      seed: 4,
    };
    const r = await openai.chat.completions.create(req);
    const msg = r.choices[0]!.message as { content: string | null; reasoning_content?: string };
    assert.equal(msg.reasoning_content, GPT_OSS_THOUGHT, JSON.stringify(msg));
    assert.ok((msg.content ?? "").length > 0 && !/<\|/.test(msg.content ?? ""), JSON.stringify(msg));
    let reasoning = "";
    let content = "";
    for await (const c of await openai.chat.completions.create({ ...req, stream: true })) {
      const d = (c.choices[0]?.delta ?? {}) as { content?: string | null; reasoning_content?: string };
      reasoning += d.reasoning_content ?? "";
      content += d.content ?? "";
    }
    assert.equal(reasoning, GPT_OSS_THOUGHT);
    assert.equal(content, msg.content, "the stream carries the same answer");
  });

  test("reasoning apart (OpenAI): Qwen3 <think>, Gemma 4's thought channel and a grammar-written harmony turn → reasoning_content", async () => {
    // random weights never open a thinking block on their own: a grammar writes the exact text the model would
    const cases: [ArchFamily, string][] = [
      ["qwen3", 'root ::= "<think>" "plan it" "</think>" "the answer"'],
      ["gemma4", 'root ::= "<|channel>thought\\n" "plan it" "<channel|>" "the answer"'],
      [
        "gpt-oss",
        'root ::= "<|channel|>analysis<|message|>" "plan it" "<|end|><|start|>assistant<|channel|>final<|message|>" "the answer"',
      ],
    ];
    for (const [model, grammar] of cases) {
      const req: ChatCompletionCreateParamsNonStreaming & LlamaExtras = {
        model,
        messages: [{ role: "user", content: "Why?" }],
        // the channel names and tags come out a character at a time where the grammar spells them
        max_tokens: 200,
        grammar,
      };
      const r = await openai.chat.completions.create(req);
      const msg = r.choices[0]!.message as { content: string | null; reasoning_content?: string };
      assert.equal(msg.reasoning_content?.trim(), "plan it", `${model}: ${JSON.stringify(msg)}`);
      assert.equal(msg.content?.trim(), "the answer", model);

      // streamed: the deltas keep the two apart as well
      let reasoning = "";
      let content = "";
      for await (const c of await openai.chat.completions.create({ ...req, stream: true })) {
        const d = (c.choices[0]?.delta ?? {}) as { content?: string | null; reasoning_content?: string };
        reasoning += d.reasoning_content ?? "";
        content += d.content ?? "";
      }
      assert.equal(reasoning.trim(), "plan it", model);
      assert.equal(content.trim(), "the answer", model);
    }
  });

  test("reasoning apart (Ollama): Qwen3.5 thinks in message.thinking; think:false answers in content", async () => {
    const thinking = await ollama.chat({
      model: "qwen35",
      messages: [{ role: "user", content: "Why is the sky blue?" }],
      options: { num_predict: 12, seed: 2 },
    });
    // the template opens <think> and the random model never closes it: what it writes is thinking, up to a
    // <tool_call> tag if it writes one (llama.cpp's Qwen3.5 parser ends the reasoning there)
    const thought = thinking.message.thinking ?? "";
    assert.ok(thought.length > 0, JSON.stringify(thinking.message));
    assert.ok(/^(<tool_call>[\s\S]*)?$/.test(thinking.message.content), JSON.stringify(thinking.message));
    assert.ok(!/<\/?think>/.test(thought), "no tags in the thinking");
    const plainAnswer = await ollama.chat({
      model: "qwen35",
      messages: [{ role: "user", content: "Why is the sky blue?" }],
      think: false,
      options: { num_predict: 16, seed: 1 },
    });
    assert.ok(plainAnswer.message.content.length > 0);
    assert.ok(!plainAnswer.message.thinking, JSON.stringify(plainAnswer.message));
  });

  test("reasoning apart (Ollama): gpt-oss harmony analysis → message.thinking, final → content", async () => {
    const r = await ollama.chat({
      model: "gpt-oss",
      messages: [{ role: "user", content: "Why is the sky blue?" }],
      options: { num_predict: 32, seed: 1 },
    });
    assert.equal(r.message.thinking, GPT_OSS_THOUGHT, JSON.stringify(r.message));
    assert.ok(r.message.content.length > 0 && !/<\|/.test(r.message.content), JSON.stringify(r.message));
  });

  const weatherTool = {
    type: "function" as const,
    function: {
      name: "get_weather",
      description: "The weather in a city",
      // a boolean: every call format's grammar bounds it (Qwen3.5's XML parameters leave strings free)
      parameters: {
        type: "object",
        properties: { celsius: { type: "boolean" } },
        required: ["celsius"],
      },
    },
  };

  for (const family of TOOLS) {
    test(`${family}: tool_choice "required" through the openai client gives a valid call`, async () => {
      const req: ChatCompletionCreateParamsNonStreaming & LlamaExtras = {
        model: family,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: [weatherTool],
        tool_choice: "required",
        parallel_tool_calls: false,
        max_tokens: 400,
        seed: 3,
        ...plain(family),
      };
      const r = await openai.chat.completions.create(req);
      const choice = r.choices[0]!;
      const calls = choice.message.tool_calls ?? [];
      assert.equal(calls.length, 1, `${family}: ${JSON.stringify(choice)}`);
      assert.equal(choice.finish_reason, "tool_calls");
      const call = calls[0]!;
      assert.equal(call.type, "function");
      if (call.type !== "function") return;
      assert.equal(call.function.name, "get_weather");
      const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
      assert.deepEqual(Object.keys(args), ["celsius"], call.function.arguments);
      assert.equal(typeof args["celsius"], "boolean", call.function.arguments);
    });
  }

  for (const family of ["qwen3", "granitehybrid"] as const) {
    test(`${family}: Ollama tools through the ollama client → message.tool_calls`, async () => {
      const r = await ollama.chat({
        model: family,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: [weatherTool],
        options: { num_predict: 400, seed: 5 },
      });
      // Ollama has no parallel_tool_calls switch: the model may call again after its first call
      const calls = r.message.tool_calls ?? [];
      assert.ok(calls.length >= 1, `${family}: ${JSON.stringify(r.message)}`);
      for (const c of calls) {
        assert.equal(c.function.name, "get_weather");
        assert.deepEqual(Object.keys(c.function.arguments), ["celsius"]);
        assert.equal(typeof c.function.arguments["celsius"], "boolean");
      }
    });
  }

  test("embeddings (bert, mean pooling): /v1/embeddings and Ollama /api/embed", async () => {
    const e = await openai.embeddings.create({ model: "embed", input: ["hello world", "the cat sat"] });
    assert.equal(e.data.length, 2);
    const [a, b] = e.data.map((d) => d.embedding);
    assert.equal(a!.length, 64);
    assert.notDeepEqual(a, b, "different inputs, different vectors");
    const o = await ollama.embed({ model: "embed", input: ["hello world", "the cat sat"] });
    assert.equal(o.embeddings.length, 2);
    assert.equal(o.embeddings[0]!.length, 64);
    // the same model, the same input: the same vector (both normalized)
    const close = o.embeddings[0]!.every((v, i) => Math.abs(v - a![i]!) < 1e-4);
    assert.ok(close, "Ollama's vector is the OpenAI one");
  });

  test("rerank (bert, rank pooling): /v1/rerank scores every document", async () => {
    const res = await fetch(`${proxy.url}/v1/rerank`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "rerank",
        query: "hello",
        documents: ["hello world", "the cat sat on the mat", "Paris"],
      }),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const body = JSON.parse(text) as { results: { index: number; relevance_score: number }[] };
    assert.deepEqual(body.results.map((r) => r.index).sort(), [0, 1, 2]);
    assert.ok(body.results.every((r) => Number.isFinite(r.relevance_score)));
    assert.equal(new Set(body.results.map((r) => r.relevance_score)).size, 3, "each document its own score");
  });

  test("the dashboard's model cards (/api/config) show what each family serves", async () => {
    const cfg = (await (await fetch(`${proxy.url}/api/config`)).json()) as {
      models: { name: string; endpoints: string[] }[];
    };
    const endpoints = Object.fromEntries(cfg.models.map((m) => [m.name, m.endpoints]));
    assert.deepEqual(endpoints["embed"], ["chat", "embeddings"]);
    assert.deepEqual(endpoints["rerank"], ["chat", "embeddings", "rerank"], "started with --reranking");
    for (const family of CHAT) assert.deepEqual(endpoints[family], ["chat"], family);
  });
});
