// Ollama's API on `gglib proxy` (in-process startProxy) on the REAL llama-server with tiny models, driven by the
// official `ollama` npm client: list, show, ps, chat and generate (stream and not, thinking, context, raw), the
// load/unload idioms, keep_alive 0 unloading after the answer, embeddings, a tool-call history round trip, and
// errors in Ollama's shape. The OpenAI endpoint keeps working next to it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ollama } from "ollama";
import { Registry } from "../../src/models/registry.js";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy, type RunningProxy } from "../../src/proxy/index.js";
import { encodeGguf, GgufValue, writeGguf } from "../support/gguf-writer.js";
import { startFakeHub, type FakeHub } from "../support/fake-hub.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { tinyChatTemplate, tinyModelDocument, writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";

/** ChatML that reads `tools` and renders tool calls and tool results (a Hermes-style template). */
const TOOLS_TEMPLATE = `{%- if tools %}<|im_start|>system
Tools: {{ tools | tojson }}<|im_end|>
{% endif %}
{%- for m in messages -%}
<|im_start|>{{ m['role'] }}
{% if m['role'] == 'assistant' and m.get('tool_calls') %}{% for tc in m['tool_calls'] %}<tool_call>{"name": "{{ tc['function']['name'] }}", "arguments": {{ tc['function']['arguments'] | tojson }}}</tool_call>{% endfor %}{% else %}{{ m['content'] }}{% endif %}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% endif -%}`;

let dir: string;
let proxy: RunningProxy;
let ollama: Ollama;
let hub: FakeHub;

before(async () => {
  const bin = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-e2e-ollama-"));
  const models = join(dir, "models");
  mkdirSync(models);
  await writeTinyModel(models, { name: "tiny-a", kind: "chat" });
  await writeTinyModel(models, { name: "tiny-think", kind: "think" });
  await writeTinyModel(models, { name: "tiny-tools", kind: "chat", chatTemplate: TOOLS_TEMPLATE });
  // an embedding model: the tiny chat model with mean pooling (the proxy starts it with --embeddings)
  const emb = tinyModelDocument({ name: "tiny-embed", kind: "chat", chatTemplate: tinyChatTemplate("chat") });
  const meta = [
    ...(emb.metadata as [string, GgufValue][]),
    ["llama.pooling_type", GgufValue.u32(1)] as [string, GgufValue],
  ];
  await writeGguf(join(models, "tiny-embed.gguf"), { ...emb, metadata: meta });
  const runner = new LlamaServerRunner({
    binaryPath: bin,
    pidsDir: join(dir, "pids"),
    basePort: 20100 + Math.floor(Math.random() * 300),
  });
  const pulled = await encodeGguf(tinyModelDocument({ name: "tiny-pull", kind: "chat", seed: 9 }));
  hub = await startFakeHub({
    repos: [{ id: "test-user/tiny-pull-GGUF", files: [{ path: "tiny-pull-F16.gguf", content: pulled }] }],
  });
  proxy = await startProxy({
    modelsDir: models,
    maxModels: 2,
    port: 0,
    memoryBudget: "8GiB",
    runner,
    pull: { hubUrl: hub.url, env: {} },
    registry: Registry.open({ dbPath: join(dir, "registry.db") }),
  });
  ollama = new Ollama({ host: proxy.url });
});

after(async () => {
  await proxy?.close(2_000);
  await hub?.close();
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

const loaded = () =>
  proxy.controller
    .status()
    .filter((s) => s.state === "ready")
    .map((s) => s.name);

describe("Ollama API on the proxy, official ollama client, real llama-server", { timeout: 240_000 }, () => {
  test("GET / and /api/version answer like Ollama", async () => {
    const r = await fetch(`${proxy.url}/`);
    assert.equal(await r.text(), "Ollama is running");
    const v = await ollama.version();
    assert.match(v.version, /^\d+\.\d+\.\d+$/);
  });

  test("list: every model as name:latest with GGUF details", async () => {
    const { models } = await ollama.list();
    const names = models.map((m) => m.name).sort();
    assert.deepEqual(names, ["tiny-a:latest", "tiny-embed:latest", "tiny-think:latest", "tiny-tools:latest"]);
    const a = models.find((m) => m.name === "tiny-a:latest")!;
    assert.equal(a.model, "tiny-a:latest");
    assert.equal(a.details.format, "gguf");
    assert.equal(a.details.family, "llama");
    assert.equal(a.details.quantization_level, "F16");
    assert.match(a.details.parameter_size, /^\d+(\.\d)?[KMB]$/);
    assert.ok(a.size > 0);
    assert.match(a.digest, /^[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(String(a.modified_at))));
  });

  test("show: capabilities, template and model_info from the GGUF", async () => {
    const a = await ollama.show({ model: "tiny-a" });
    assert.deepEqual(a.capabilities, ["completion"]);
    assert.match(a.template, /<\|im_start\|>/);
    const info = a.model_info as unknown as Record<string, unknown>;
    assert.equal(info["general.architecture"], "llama");
    assert.equal(info["llama.context_length"], 2048);
    assert.equal(info["tokenizer.ggml.tokens"], null, "big arrays are null unless verbose");
    assert.match(a.modelfile, /^FROM .*tiny-a\.gguf$/m);
    assert.deepEqual((await ollama.show({ model: "tiny-think:latest" })).capabilities, ["completion", "thinking"]);
    assert.deepEqual((await ollama.show({ model: "tiny-tools" })).capabilities, ["completion", "tools"]);
    assert.deepEqual((await ollama.show({ model: "tiny-embed" })).capabilities, ["embedding"]);
  });

  test("chat, not streamed: the answer and Ollama's final stats", async () => {
    const r = await ollama.chat({
      model: "tiny-a",
      messages: [{ role: "user", content: "Hello" }],
      options: { num_predict: 8, temperature: 0, seed: 1 },
    });
    assert.equal(r.model, "tiny-a");
    assert.equal(r.message.role, "assistant");
    assert.ok(r.message.content.length > 0);
    assert.equal(r.done, true);
    assert.equal(r.done_reason, "length");
    assert.equal(r.eval_count, 8);
    assert.ok(r.prompt_eval_count > 0);
    assert.ok(r.total_duration >= r.eval_duration && r.eval_duration > 0);
    assert.ok(r.load_duration > 0, "this request loaded the model");
  });

  test("chat, streamed: NDJSON frames, then the done frame with stats", async () => {
    const stream = await ollama.chat({
      model: "tiny-a:latest",
      messages: [{ role: "user", content: "Hello" }],
      stream: true,
      options: { num_predict: 6, temperature: 0 },
    });
    let text = "";
    const frames = [];
    for await (const f of stream) {
      frames.push(f);
      text += f.message.content;
    }
    const last = frames.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.done_reason, "length");
    assert.equal(last.eval_count, 6);
    assert.ok(frames.slice(0, -1).every((f) => f.done === false && f.message.role === "assistant"));
    assert.ok(text.length > 0);
    // the raw bytes: application/x-ndjson, one JSON object per line
    const raw = await fetch(`${proxy.url}/api/chat`, {
      method: "POST",
      body: JSON.stringify({
        model: "tiny-a",
        messages: [{ role: "user", content: "Hi" }],
        options: { num_predict: 3 },
      }),
    });
    const body = await raw.text();
    assert.equal(raw.headers.get("content-type"), "application/x-ndjson", body);
    assert.ok(body.endsWith("}\n"));
    const lines = body.trimEnd().split("\n");
    assert.equal(lines.length, 4, body);
    for (const l of lines) assert.match(l, /^\{"model":"tiny-a","created_at":"\d{4}-\d\d-\d\dT[\d:.]+Z","message":/);
  });

  test("think: thinking separated from the answer; think false hides it; a model without thinking says so", async () => {
    const r = await ollama.chat({
      model: "tiny-think",
      messages: [{ role: "user", content: "Hello" }],
      think: true,
      options: { num_predict: 48, seed: 3 },
    });
    assert.ok((r.message.thinking ?? "").length > 0, JSON.stringify(r.message));
    const s = await ollama.chat({
      model: "tiny-think",
      messages: [{ role: "user", content: "Hello" }],
      think: true,
      stream: true,
      options: { num_predict: 24, seed: 3 },
    });
    let streamed = "";
    for await (const f of s) streamed += f.message.thinking ?? "";
    assert.ok(streamed.length > 0);
    const off = await ollama.chat({
      model: "tiny-think",
      messages: [{ role: "user", content: "Hello" }],
      think: false,
      options: { num_predict: 12 },
    });
    assert.equal(off.message.thinking, undefined);
    await assert.rejects(
      ollama.chat({ model: "tiny-a", messages: [{ role: "user", content: "Hi" }], think: true }),
      (e: Error & { status_code?: number }) => e.status_code === 400 && /does not support thinking/.test(e.message),
    );
  });

  test("generate: streamed and not; context carries the conversation; raw sends the prompt verbatim", async () => {
    const r = await ollama.generate({ model: "tiny-a", prompt: "Hello", options: { num_predict: 5 } });
    assert.ok(r.response!.length > 0);
    assert.equal(r.done, true);
    assert.ok(Array.isArray(r.context) && r.context.length > 5, "context returned");
    const again = await ollama.generate({
      model: "tiny-a",
      prompt: "And?",
      context: r.context,
      options: { num_predict: 4 },
    });
    assert.ok(again.response!.length > 0);
    assert.ok(again.context.length > r.context.length, "the context grew");
    const s = await ollama.generate({ model: "tiny-a", prompt: "Hi", stream: true, options: { num_predict: 4 } });
    let text = "";
    const frames = [];
    for await (const f of s) {
      text += f.response;
      frames.push(f);
    }
    const last = frames.at(-1)!;
    assert.ok(text.length > 0);
    assert.equal(last.done, true);
    assert.equal(last.eval_count, 4);
    const raw = await ollama.generate({
      model: "tiny-a",
      prompt: "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
      raw: true,
      options: { num_predict: 3 },
    });
    assert.ok(raw.response!.length > 0);
    assert.equal(raw.context, undefined, "raw mode returns no context (as in Ollama)");
  });

  test("ps lists the loaded models with size and expiry; keep_alive 0 unloads right after the answer", async () => {
    const { models } = await ollama.ps();
    const a = models.find((m) => m.name === "tiny-a:latest");
    assert.ok(a, JSON.stringify(models));
    assert.ok(a.size > 0);
    assert.ok(Date.parse(String(a.expires_at)) > Date.now());
    const r = await ollama.chat({
      model: "tiny-a",
      messages: [{ role: "user", content: "Bye" }],
      keep_alive: 0,
      options: { num_predict: 2 },
    });
    assert.equal(r.done, true);
    assert.ok(await waitFor(() => !loaded().includes("tiny-a"), 10_000), `still loaded: ${loaded().join(", ")}`);
    assert.ok(!(await ollama.ps()).models.some((m) => m.name === "tiny-a:latest"));
  });

  test("the preload idiom (empty prompt) loads; with keep_alive 0 it unloads", async () => {
    const r = await ollama.generate({ model: "tiny-a", prompt: "" });
    assert.equal(r.done, true);
    assert.equal(r.done_reason, "load");
    assert.ok(loaded().includes("tiny-a"));
    const c = await ollama.chat({ model: "tiny-a", messages: [], keep_alive: "0s" });
    assert.equal(c.done_reason, "unload");
    assert.ok(await waitFor(() => !loaded().includes("tiny-a"), 10_000));
  });

  test("embed and embeddings on an embedding model", async () => {
    const e = await ollama.embed({ model: "tiny-embed", input: ["Hello", "world"] });
    assert.equal(e.model, "tiny-embed");
    assert.equal(e.embeddings.length, 2);
    assert.equal(e.embeddings[0]!.length, 64);
    const norm = Math.hypot(...e.embeddings[0]!);
    assert.ok(Math.abs(norm - 1) < 1e-3, `normalized (${norm})`);
    assert.ok(e.prompt_eval_count > 0);
    const d = await ollama.embed({ model: "tiny-embed", input: "Hello", dimensions: 16 });
    assert.equal(d.embeddings[0]!.length, 16);
    const legacy = await ollama.embeddings({ model: "tiny-embed", prompt: "Hello" });
    assert.equal(legacy.embedding.length, 64);
    await assert.rejects(
      ollama.chat({ model: "tiny-embed", messages: [{ role: "user", content: "x" }] }),
      /does not support/,
    );
  });

  test("tool calls: a history with a call and its result round-trips through the model's template", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather of a city",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
    ];
    const r = await ollama.chat({
      model: "tiny-tools",
      tools,
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: "",
          tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }],
        },
        { role: "tool", content: "sunny, 21 C", tool_name: "get_weather" },
      ],
      options: { num_predict: 6 },
    });
    assert.equal(r.done, true);
    assert.ok(r.message.content.length > 0 || (r.message.tool_calls ?? []).length > 0);
    await assert.rejects(
      ollama.chat({ model: "tiny-a", tools, messages: [{ role: "user", content: "x" }] }),
      /does not support tools/,
    );
  });

  test("pull: NDJSON progress from the (fake) Hugging Face hub, then the model is listed and answers", async () => {
    const progress = await ollama.pull({ model: "hf.co/test-user/tiny-pull-GGUF", stream: true });
    const statuses: string[] = [];
    let sawBytes = false;
    for await (const p of progress) {
      statuses.push(p.status);
      if (p.total > 0 && p.completed === p.total) sawBytes = true;
    }
    assert.equal(statuses[0], "pulling manifest");
    assert.equal(statuses.at(-1), "success");
    assert.ok(sawBytes, statuses.join(" | "));
    const { models } = await ollama.list();
    assert.ok(
      models.some((m) => m.name === "tiny-pull-F16:latest"),
      models.map((m) => m.name).join(", "),
    );
    const r = await ollama.chat({
      model: "hf.co/test-user/tiny-pull-GGUF",
      messages: [{ role: "user", content: "Hi" }],
      options: { num_predict: 3 },
    });
    assert.equal(r.done, true);
    assert.ok(r.message.content.length > 0);
    await assert.rejects(ollama.pull({ model: "test-user/missing-GGUF" }), (e: Error & { status_code?: number }) =>
      /not found|does not exist|missing/i.test(e.message),
    );
  });

  test("copy registers the files under a new name; delete unregisters it; a models-folder file is not deleted", async () => {
    await ollama.copy({ source: "tiny-a", destination: "tiny-copy" });
    const names = (await ollama.list()).models.map((m) => m.name);
    assert.ok(names.includes("tiny-copy:latest"), names.join(", "));
    const r = await ollama.chat({
      model: "tiny-copy",
      messages: [{ role: "user", content: "Hi" }],
      options: { num_predict: 2 },
    });
    assert.equal(r.done, true);
    await ollama.delete({ model: "tiny-copy" });
    assert.ok(!(await ollama.list()).models.some((m) => m.name === "tiny-copy:latest"));
    await assert.rejects(ollama.delete({ model: "tiny-a" }), /models folder: remove .*tiny-a\.gguf/);
    await assert.rejects(ollama.copy({ source: "nope", destination: "x" }), /not found/);
  });

  test("errors in Ollama's shape; the OpenAI endpoint still works alongside", async () => {
    const r = await fetch(`${proxy.url}/api/chat`, {
      method: "POST",
      body: JSON.stringify({ model: "nope", messages: [{ role: "user", content: "x" }] }),
    });
    assert.equal(r.status, 404);
    const j = (await r.json()) as { error: string };
    assert.match(j.error, /model "nope" not found; available: .*tiny-a:latest/);
    const bad = await fetch(`${proxy.url}/api/generate`, { method: "POST", body: "{not json" });
    assert.equal(bad.status, 400);
    assert.ok(typeof ((await bad.json()) as { error: unknown }).error === "string");
    const o = await fetch(`${proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny-a", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
    });
    assert.equal(o.status, 200);
    assert.equal(((await o.json()) as { object: string }).object, "chat.completion");
  });
});
