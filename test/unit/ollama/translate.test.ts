// The pure parts of the Ollama API (src/ollama/): wire encoding, keep_alive, options, request translation,
// response translation (NDJSON frames byte for byte in the shapes of Ollama's API docs and Go structs), names.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { goJson, goTime, ndjsonLine } from "../../../src/ollama/wire.js";
import { expiresAt, parseGoDuration, parseKeepAlive, keepAliveToTtlMs } from "../../../src/ollama/keep-alive.js";
import { mapOptions } from "../../../src/ollama/options.js";
import {
  OllamaRequestError,
  renderGoTemplate,
  translateChat,
  translateGenerate,
  translateMessages,
} from "../../../src/ollama/request.js";
import { idiomFrame, OllamaTranslator, ToolCallAccumulator } from "../../../src/ollama/response.js";
import { NdjsonFromSse } from "../../../src/ollama/stream.js";
import { embedAnswer, emptyEmbedAnswer, normalize, parseEmbedRequest } from "../../../src/ollama/embed.js";
import { quantOf } from "../../../src/gguf/names.js";
import { ollamaListName, resolveOllamaName, type NamedModel } from "../../../src/ollama/names.js";
import { parameterSize, modelInfo, capabilities } from "../../../src/ollama/model-info.js";

const fixture = (p: string) => readFileSync(fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url)));

describe("wire: Go's JSON and time formats", () => {
  test("HTML-sensitive characters are escaped like encoding/json", () => {
    assert.equal(
      goJson({ t: "<think>a & b</think>\u2028" }),
      '{"t":"\\u003cthink\\u003ea \\u0026 b\\u003c/think\\u003e\\u2028"}',
    );
    assert.equal(ndjsonLine({ a: 1 }), '{"a":1}\n');
  });
  test("created_at is RFC 3339 with the fraction's trailing zeros dropped", () => {
    assert.equal(goTime(Date.UTC(2024, 6, 22, 20, 33, 28, 123) + 0.648), "2024-07-22T20:33:28.123648Z");
    assert.equal(goTime(Date.UTC(2024, 6, 22, 20, 33, 28, 500)), "2024-07-22T20:33:28.5Z");
    assert.equal(goTime(Date.UTC(2024, 6, 22, 20, 33, 28)), "2024-07-22T20:33:28Z");
  });
});

describe("keep_alive", () => {
  test("durations, seconds, negative and zero", () => {
    assert.equal(parseGoDuration("5m"), 300_000);
    assert.equal(parseGoDuration("1h30m"), 5_400_000);
    assert.equal(parseGoDuration("1.5h"), 5_400_000);
    assert.equal(parseGoDuration("300ms"), 300);
    assert.equal(parseGoDuration("0"), 0);
    assert.deepEqual(parseKeepAlive(undefined), { kind: "default" });
    assert.deepEqual(parseKeepAlive(null), { kind: "default" });
    assert.deepEqual(parseKeepAlive(0), { kind: "ms", ms: 0 });
    assert.deepEqual(parseKeepAlive("0"), { kind: "ms", ms: 0 });
    assert.deepEqual(parseKeepAlive("0s"), { kind: "ms", ms: 0 });
    assert.deepEqual(parseKeepAlive(600), { kind: "ms", ms: 600_000 });
    assert.deepEqual(parseKeepAlive("600"), { kind: "ms", ms: 600_000 });
    assert.deepEqual(parseKeepAlive(-1), { kind: "forever" });
    assert.deepEqual(parseKeepAlive("-1m"), { kind: "forever" });
    assert.equal(keepAliveToTtlMs(parseKeepAlive("10m")), 600_000);
    assert.equal(keepAliveToTtlMs(parseKeepAlive(-5)), -1);
    assert.equal(keepAliveToTtlMs(parseKeepAlive(undefined)), undefined);
  });
  test("bad values are errors, not defaults", () => {
    assert.throws(() => parseKeepAlive("5 minutes"), /invalid duration/);
    assert.throws(() => parseKeepAlive("m"), /invalid duration/);
    assert.throws(() => parseKeepAlive(true), /keep_alive must be/);
  });
});

describe("options → llama-server parameters", () => {
  test("sampling options map; load-time, dropped and unknown ones are reported as ignored", () => {
    const m = mapOptions({
      temperature: 0.2,
      top_p: 0.9,
      top_k: 20.7,
      min_p: 0.05,
      typical_p: 0.7,
      seed: 42,
      num_predict: 100,
      stop: ["\n", "user:"],
      repeat_penalty: 1.1,
      repeat_last_n: 33,
      presence_penalty: 1.5,
      frequency_penalty: 1,
      mirostat: 1,
      mirostat_tau: 0.8,
      mirostat_eta: 0.6,
      num_keep: 5,
      num_ctx: 4096,
      num_gpu: 1,
      tfs_z: 1,
      penalize_newline: true,
      bogus: 1,
    });
    assert.deepEqual(m.params, {
      temperature: 0.2,
      top_p: 0.9,
      top_k: 20,
      min_p: 0.05,
      typical_p: 0.7,
      seed: 42,
      max_tokens: 100,
      stop: ["\n", "user:"],
      repeat_penalty: 1.1,
      repeat_last_n: 33,
      presence_penalty: 1.5,
      frequency_penalty: 1,
      mirostat: 1,
      mirostat_tau: 0.8,
      mirostat_eta: 0.6,
      n_keep: 5,
    });
    assert.deepEqual(m.ignored, ["num_ctx", "num_gpu", "tfs_z", "penalize_newline", "bogus"]);
    assert.deepEqual(mapOptions({ num_predict: -2, stop: "x" }).params, { max_tokens: -1, stop: ["x"] });
  });
  test("wrong types are errors in Ollama's words", () => {
    assert.throws(() => mapOptions({ top_k: "5" }), /option "top_k" must be of type integer/);
    assert.throws(() => mapOptions({ stop: [1] }), /option "stop" must be of type array of strings/);
    assert.throws(() => mapOptions([1]), /options must be a JSON object/);
  });
});

describe("requests → llama-server", () => {
  test("chat: messages, images as data URLs, think, format, tools, options, streaming with usage", () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).toString("base64");
    const t = translateChat(
      {
        model: "m:latest",
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "What is this?", images: [png] },
        ],
        think: "high",
        format: { type: "object", properties: { a: { type: "integer" } } },
        tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
        options: { temperature: 0, num_predict: 5, num_ctx: 8192 },
        keep_alive: "10m",
      },
      "m",
    );
    assert.equal(t.stream, true);
    assert.deepEqual(t.keepAlive, { kind: "ms", ms: 600_000 });
    assert.deepEqual(t.ignoredOptions, ["num_ctx"]);
    assert.equal(t.wantsThinking, true);
    assert.equal(t.hasImages, true);
    assert.deepEqual(t.body, {
      temperature: 0,
      max_tokens: 5,
      chat_template_kwargs: { enable_thinking: true },
      reasoning_effort: "high",
      response_format: {
        type: "json_schema",
        json_schema: { name: "format", schema: { type: "object", properties: { a: { type: "integer" } } } },
      },
      model: "m",
      messages: [
        { role: "system", content: "Be brief." },
        {
          role: "user",
          content: [
            { type: "image_url", image_url: { url: `data:image/png;base64,${png}` } },
            { type: "text", text: "What is this?" },
          ],
        },
      ],
      stream: true,
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      stream_options: { include_usage: true },
    });
    const off = translateChat(
      { model: "m", messages: [{ role: "user", content: "x" }], think: false, format: "json", stream: false },
      "m",
    );
    assert.deepEqual(off.body?.chat_template_kwargs, { enable_thinking: false });
    assert.deepEqual(off.body?.response_format, { type: "json_object" });
    assert.equal(off.body?.stream_options, undefined);
  });
  test("tool calls get ids and the tool results that follow are linked to them", () => {
    const { messages } = translateMessages([
      { role: "user", content: "weather?" },
      {
        role: "assistant",
        content: "",
        thinking: "need the tool",
        tool_calls: [
          { function: { name: "w", arguments: { city: "Paris" } } },
          { function: { name: "w", arguments: { city: "Rome" } } },
        ],
      },
      { role: "tool", content: "sunny", tool_name: "w" },
      { role: "tool", content: "rain", tool_name: "w" },
    ]);
    assert.deepEqual(messages.slice(1), [
      {
        role: "assistant",
        content: "",
        reasoning_content: "need the tool",
        tool_calls: [
          { id: "call_0", type: "function", function: { name: "w", arguments: '{"city":"Paris"}' } },
          { id: "call_1", type: "function", function: { name: "w", arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: "tool", content: "sunny", tool_call_id: "call_0", name: "w" },
      { role: "tool", content: "rain", tool_call_id: "call_1", name: "w" },
    ]);
  });
  test("empty messages / prompt is the load idiom (no upstream body)", () => {
    assert.equal(translateChat({ model: "m", messages: [] }, "m").body, undefined);
    const g = translateGenerate({ model: "m", keep_alive: 0 }, "m");
    assert.equal(g.kind, "chat");
    assert.equal(g.body, undefined);
    assert.deepEqual(g.keepAlive, { kind: "ms", ms: 0 });
  });
  test("generate: chat by default; raw, template and context become a raw /completion", () => {
    const chat = translateGenerate({ model: "m", prompt: "Hi", system: "S", stream: false }, "m");
    assert.equal(chat.kind, "chat");
    assert.deepEqual(chat.body?.messages, [
      { role: "system", content: "S" },
      { role: "user", content: "Hi" },
    ]);
    const raw = translateGenerate(
      { model: "m", prompt: "[INST] x [/INST]", raw: true, options: { num_predict: 3 } },
      "m",
    );
    assert.equal(raw.kind, "completion");
    assert.deepEqual(raw.body, {
      n_predict: 3,
      prompt: "[INST] x [/INST]",
      stream: true,
      cache_prompt: true,
      return_tokens: true,
    });
    const tpl = translateGenerate(
      {
        model: "m",
        prompt: "Hi",
        system: "S",
        template: "{{ if .System }}SYS {{ .System }}\n{{ end }}USER: {{ .Prompt }}\nASSISTANT: {{ .Response }}",
      },
      "m",
    );
    assert.equal(tpl.kind === "completion" && tpl.body.prompt, "SYS S\nUSER: Hi\nASSISTANT: ");
    const ctx = translateGenerate({ model: "m", prompt: "And?", context: [1, 2, 3] }, "m");
    assert.ok(ctx.kind === "completion" && ctx.needsTemplate?.prompt === "And?");
    assert.deepEqual(ctx.kind === "completion" && ctx.body.prompt, [1, 2, 3, "And?"]);
  });
  test("what cannot be honoured is a 400, not a silent drop", () => {
    const bad = (body: unknown, re: RegExp) =>
      assert.throws(
        () => translateGenerate(body, "m"),
        (e: unknown) => e instanceof OllamaRequestError && re.test(e.message),
      );
    bad({ model: "m", prompt: "x", think: "max" }, /invalid think value/);
    bad({ model: "m", prompt: "x", format: "yaml" }, /invalid format/);
    bad({ model: "m", prompt: "x", suffix: "y" }, /suffix/);
    bad({ model: "m", prompt: "x", raw: true, images: ["AAAA"] }, /images.*raw/);
    bad({ model: "m", prompt: "x", template: "{{ range .Messages }}x{{ end }}" }, /not supported here/);
    bad({ model: "m", prompt: "x", context: ["a"] }, /context/);
    bad({ model: "m", prompt: "x", keep_alive: "soon" }, /invalid duration/);
    bad({ model: "m", prompt: "x", stream: "yes" }, /stream/);
    assert.throws(
      () => translateChat({ model: "m", messages: [{ role: "robot", content: "x" }] }, "m"),
      /role must be/,
    );
    assert.throws(() => translateChat({ model: "m", messages: [{ role: "user", content: 5 }] }, "m"), /content/);
  });
  test("the Go template subset", () => {
    assert.equal(
      renderGoTemplate("{{- if .System }}<s>{{ .System }}</s>{{- end }} {{ .Prompt }}", { Prompt: "p" }),
      " p",
    );
    assert.equal(renderGoTemplate("A{{ if .System }}B{{ else }}C{{ end }}", { Prompt: "" }), "AC");
    assert.throws(() => renderGoTemplate("{{ if .System }}x", { Prompt: "" }), /no \{\{ end \}\}/);
  });
});

/** Feeds an SSE text through the translator with a fixed clock (+0.5 ms per data event); returns the NDJSON bytes. */
function translateSse(sse: string | Buffer, shape: "chat" | "generate", hideThinking = false): string {
  const t0 = Date.UTC(2024, 6, 22, 20, 33, 28, 0);
  let tick = 0;
  const clock = () => t0 + 1000 + ++tick * 0.5;
  const tr = new OllamaTranslator({ model: "tiny-a", shape, hideThinking, timing: { startMs: t0, loadMs: 250 } });
  const frames = new NdjsonFromSse(tr);
  const buf = typeof sse === "string" ? Buffer.from(sse) : sse;
  let out = "";
  // in odd-sized pieces, to cross line and UTF-8 boundaries
  for (let i = 0; i < buf.length; i += 7) out += frames.push(buf.subarray(i, i + 7), clock);
  out += frames.flush(clock);
  if (frames.failed) return out;
  for (const f of tr.end(clock())) out += ndjsonLine(f);
  return out;
}

describe("llama-server answers → Ollama frames", () => {
  test("a chat stream, byte for byte in the shape of Ollama's docs (ChatResponse field order, omitempty stats)", () => {
    const sse = [
      `data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk"}`,
      `data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"The"}}],"object":"chat.completion.chunk"}`,
      `: ping`,
      `data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" sky <is>"}}],"object":"chat.completion.chunk"}`,
      `data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"object":"chat.completion.chunk"}`,
      `data: {"choices":[],"object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":26,"total_tokens":28},"timings":{"cache_n":0,"prompt_n":26,"prompt_ms":130.079,"predicted_n":2,"predicted_ms":42.5}}`,
      `data: [DONE]`,
      ``,
    ].join("\n\n");
    assert.equal(
      translateSse(sse, "chat"),
      '{"model":"tiny-a","created_at":"2024-07-22T20:33:29.001Z","message":{"role":"assistant","content":"The"},"done":false}\n' +
        '{"model":"tiny-a","created_at":"2024-07-22T20:33:29.0015Z","message":{"role":"assistant","content":" sky \\u003cis\\u003e"},"done":false}\n' +
        '{"model":"tiny-a","created_at":"2024-07-22T20:33:29.003Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,' +
        '"total_duration":1003000000,"load_duration":250000000,"prompt_eval_count":26,"prompt_eval_duration":130079000,"eval_count":2,"eval_duration":42500000}\n',
    );
  });
  test("a generate stream: `response` frames, GenerateResponse order (done before done_reason)", () => {
    const sse = `data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"timings":{"prompt_n":1,"cache_n":4,"prompt_ms":1,"predicted_n":1,"predicted_ms":2}}\n\n`;
    assert.equal(
      translateSse(sse, "generate"),
      '{"model":"tiny-a","created_at":"2024-07-22T20:33:29.0005Z","response":"Hi","done":false}\n' +
        '{"model":"tiny-a","created_at":"2024-07-22T20:33:29.0015Z","response":"","done":true,"done_reason":"length",' +
        '"total_duration":1001500000,"load_duration":250000000,"prompt_eval_count":5,"prompt_eval_duration":1000000,"eval_count":1,"eval_duration":2000000}\n',
    );
  });
  test("a recorded llama-server stream (tiny model, include_usage): every delta a frame, stats from timings", () => {
    const out = translateSse(fixture("chat/03-chat-stream-include-usage.sse"), "chat");
    const lines = out
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    const sseText = fixture("chat/03-chat-stream-include-usage.sse")
      .toString("utf8")
      .split("\n")
      .filter((l) => l.startsWith("data: {"))
      .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? "")
      .join("");
    assert.equal(lines.map((l) => l.message.content).join(""), sseText);
    const last = lines.at(-1);
    assert.deepEqual(Object.keys(last), [
      "model",
      "created_at",
      "message",
      "done_reason",
      "done",
      "total_duration",
      "load_duration",
      "prompt_eval_count",
      "prompt_eval_duration",
      "eval_count",
      "eval_duration",
    ]);
    assert.equal(last.done_reason, "length");
    assert.equal(last.prompt_eval_count, 50);
    assert.equal(last.prompt_eval_duration, 818000);
    assert.equal(last.eval_count, 16);
    assert.equal(last.eval_duration, 9540000);
    assert.ok(lines.slice(0, -1).every((l) => l.done === false));
  });
  test('reasoning_content becomes message.thinking (content ""); hidden when think is false', () => {
    const sse = fixture("chat/04b-deepseek-chat-stream-grammar-usage.sse");
    const lines = translateSse(sse, "chat")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    const thinking = lines.filter((l) => l.message.thinking !== undefined);
    assert.ok(thinking.length > 0);
    assert.ok(thinking.every((l) => l.message.content === ""));
    assert.match(
      JSON.stringify(lines[1]),
      /^\{"model":"tiny-a","created_at":"[^"]+","message":\{"role":"assistant","content":"","thinking":"b"\},"done":false\}$/,
    );
    const hidden = translateSse(sse, "chat", true)
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(hidden.every((l) => l.message.thinking === undefined));
    assert.equal(hidden.map((l) => l.message.content).join(""), lines.map((l) => l.message.content).join(""));
  });
  test("tool-call deltas are collected and sent as one frame of complete calls (arguments as objects)", () => {
    const sse = [
      `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
      `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": "}}]}}]}`,
      `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"Paris\\"}"}}]}}]}`,
      `data: {"choices":[{"finish_reason":"tool_calls","index":0,"delta":{}}]}`,
      ``,
    ].join("\n\n");
    const lines = translateSse(sse, "chat").trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.equal(
      lines[0],
      '{"model":"tiny-a","created_at":"2024-07-22T20:33:29.0025Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"index":0,"name":"get_weather","arguments":{"city":"Paris"}},"id":"call_a"}]},"done":false}',
    );
    assert.match(lines[1]!, /"done_reason":"stop","done":true/);
    const acc = new ToolCallAccumulator();
    acc.add([{ index: 0, function: { name: "f", arguments: "{not json" } }]);
    assert.throws(() => acc.take(), /not JSON/);
  });
  test("a non-streamed chat completion becomes one object with the whole message", () => {
    const tr = new OllamaTranslator({ model: "m", shape: "chat", timing: { startMs: 0, loadMs: 0 } });
    tr.chunk(
      {
        choices: [
          { finish_reason: "stop", message: { role: "assistant", content: "Hello!", reasoning_content: "hmm" } },
        ],
        usage: { prompt_tokens: 26, completion_tokens: 3 },
        timings: { prompt_ms: 10, predicted_ms: 20 },
      },
      1000,
    );
    assert.equal(
      goJson(tr.aggregate(2000)),
      '{"model":"m","created_at":"1970-01-01T00:00:02Z","message":{"role":"assistant","content":"Hello!","thinking":"hmm"},"done_reason":"stop","done":true,"total_duration":2000000000,"prompt_eval_count":26,"prompt_eval_duration":10000000,"eval_count":3,"eval_duration":20000000}',
    );
  });
  test("a raw /completion stream (llama-server's own chunks) and the load/unload idiom frames", () => {
    const tr = new OllamaTranslator({ model: "m", shape: "generate", timing: { startMs: 0, loadMs: 0 } });
    assert.equal(tr.chunk({ content: "Hi", tokens: [5], stop: false }, 1).length, 1);
    tr.chunk(
      {
        content: "",
        stop: true,
        stop_type: "limit",
        tokens: [],
        tokens_evaluated: 7,
        tokens_predicted: 1,
        timings: { prompt_ms: 1, predicted_ms: 1 },
      },
      2,
    );
    const [f] = tr.end(3, { context: [1, 2, 5] });
    assert.equal(f!.done_reason, "length");
    assert.deepEqual(f!.context, [1, 2, 5]);
    assert.equal(f!.prompt_eval_count, 7);
    assert.deepEqual(tr.tokens, [5]);
    // the docs' "Load a model" / "Unload a model" answers
    assert.equal(
      goJson(idiomFrame("chat", "llama3.2", Date.UTC(2024, 8, 12, 21, 17, 29, 110) + 0.811, "load")),
      '{"model":"llama3.2","created_at":"2024-09-12T21:17:29.110811Z","message":{"role":"assistant","content":""},"done_reason":"load","done":true}',
    );
    assert.equal(
      goJson(idiomFrame("generate", "llama3.2", Date.UTC(2024, 8, 12, 3, 54, 3, 516) + 0.566, "unload")),
      '{"model":"llama3.2","created_at":"2024-09-12T03:54:03.516566Z","response":"","done":true,"done_reason":"unload"}',
    );
  });
});

describe("names: Ollama's name:tag → gglib models", () => {
  const models: NamedModel[] = [
    { name: "tiny-a", aliases: ["tiny"], path: "/m/tiny-a.gguf" },
    { name: "Qwen3-4B-Q4_K_M", aliases: [], path: "/m/unsloth/Qwen3-4B-GGUF/Qwen3-4B-Q4_K_M.gguf" },
    { name: "Qwen3-4B-Q8_0", aliases: [], path: "/m/unsloth/Qwen3-4B-GGUF/Qwen3-4B-Q8_0.gguf" },
    { name: "llama3:8b", aliases: [], path: "/m/x.gguf", quantization: "Q4_K_M" },
  ];
  const ok = (req: string, name: string) => assert.deepEqual(resolveOllamaName(models, req), { ok: true, name });
  test("the rule, step by step", () => {
    ok("tiny-a", "tiny-a");
    ok("tiny-a:latest", "tiny-a");
    ok("TINY-A:latest", "tiny-a");
    ok("tiny:latest", "tiny-a");
    ok("llama3:8b", "llama3:8b");
    ok("qwen3-4b:q4_k_m", "Qwen3-4B-Q4_K_M");
    ok("unsloth/Qwen3-4B-GGUF:Q8_0", "Qwen3-4B-Q8_0");
    ok("hf.co/unsloth/Qwen3-4B-GGUF:Q4_K_M", "Qwen3-4B-Q4_K_M");
    ok("Qwen3-4B-GGUF:Qwen3-4B-Q8_0.gguf", "Qwen3-4B-Q8_0");
    const amb = resolveOllamaName(models, "unsloth/Qwen3-4B-GGUF");
    assert.deepEqual(amb, {
      ok: false,
      reason: "ambiguous",
      candidates: ["unsloth/Qwen3-4B-GGUF:Q4_K_M", "unsloth/Qwen3-4B-GGUF:Q8_0"],
    });
    const nf = resolveOllamaName(models, "mistral");
    assert.equal(nf.ok, false);
    assert.ok(!nf.ok && nf.candidates.includes("tiny-a:latest") && nf.candidates.includes("llama3:8b"));
  });
  test("listing names and quantization labels", () => {
    assert.equal(ollamaListName("tiny-a"), "tiny-a:latest");
    assert.equal(ollamaListName("llama3:8b"), "llama3:8b");
    assert.equal(quantOf("Qwen3-4B-Q4_K_M.gguf"), "Q4_K_M");
    assert.equal(quantOf("x.f16.gguf"), "F16");
    assert.equal(quantOf("big-UD-Q4_K_XL-00001-of-00002.gguf"), "UD-Q4_K_XL");
    assert.equal(quantOf("model.gguf"), undefined);
  });
});

describe("GGUF → details, model_info, capabilities", () => {
  test("parameter_size like Ollama's", () => {
    assert.equal(parameterSize(8_030_261_248), "8.0B");
    assert.equal(parameterSize(13_015_864_320), "13B");
    assert.equal(parameterSize(494_032_768), "494M");
    assert.equal(parameterSize(155_000), "155K");
  });
  test("model_info: bigints as numbers, big arrays null, chat templates left to `template`", () => {
    const kv = new Map<string, unknown>([
      ["general.architecture", "llama"],
      ["llama.context_length", 2048n],
      ["tokenizer.ggml.tokens", { itemType: 8, length: 420 }],
      ["tokenizer.chat_template", "{{ x }}"],
    ]);
    assert.deepEqual(modelInfo(kv as never, { parameterCount: 7 }), {
      "general.architecture": "llama",
      "general.parameter_count": 7,
      "llama.context_length": 2048,
      "tokenizer.ggml.tokens": null,
    });
  });
  test("capabilities from the template, pooling and projector", () => {
    const base = { architecture: "llama", isMmproj: false } as never;
    assert.deepEqual(capabilities({ ...(base as object), chatTemplate: "{{ messages }}" } as never, {}), [
      "completion",
    ]);
    assert.deepEqual(
      capabilities({ ...(base as object), chatTemplate: "{% if tools %}{% endif %}<think>" } as never, {
        mmproj: true,
        fim: true,
      }),
      ["completion", "tools", "insert", "thinking", "vision"],
    );
    assert.deepEqual(capabilities({ ...(base as object), poolingType: 1 } as never, {}), ["embedding"]);
  });
});

describe("embeddings and /api/ps expiry (pure)", () => {
  test("embed: validation, the empty answers, shaping (sorted, truncated and re-normalized) and the usage", () => {
    assert.throws(() => parseEmbedRequest({ input: [1] }, false), /"input" must be a string or an array/);
    assert.throws(() => parseEmbedRequest({ prompt: 5 }, true), /"prompt" must be a string/);
    assert.throws(() => parseEmbedRequest({ input: "x", dimensions: 0 }, false), /positive integer/);
    assert.throws(() => parseEmbedRequest({ input: "x", keep_alive: "soon" }, false), OllamaRequestError);
    assert.deepEqual(emptyEmbedAnswer(parseEmbedRequest({ input: [] }, false), "m"), { model: "m", embeddings: [] });
    assert.deepEqual(emptyEmbedAnswer(parseEmbedRequest({ prompt: "" }, true), "m"), { embedding: [] });
    const r = parseEmbedRequest({ input: ["a", "b"], dimensions: 2, keep_alive: "5m" }, false);
    assert.equal(r.ttlMs, 300_000);
    const up = {
      data: [
        { index: 1, embedding: [0, 3, 9] },
        { index: 0, embedding: [3, 4, 9] },
      ],
      usage: { prompt_tokens: 4 },
    };
    const { answer, promptTokens } = embedAnswer(up, r, { requested: "m", totalMs: 2, loadMs: 0 });
    assert.deepEqual(answer, {
      model: "m",
      embeddings: [
        [0.6, 0.8],
        [0, 1],
      ],
      total_duration: 2_000_000,
      prompt_eval_count: 4,
    });
    assert.equal(promptTokens, 4);
    assert.deepEqual(normalize([0, 0]), [0, 0]);
  });

  test("expires_at: now when it stops as soon as idle, ttl after the last use, from now while busy, forever", () => {
    const base = { nowMs: 1000, ttlMs: 500, stopsWhenIdle: false, inFlight: 0, lastUsedMs: 800 };
    assert.equal(expiresAt(base), 1300);
    assert.equal(expiresAt({ ...base, inFlight: 1 }), 1500);
    assert.equal(expiresAt({ ...base, stopsWhenIdle: true }), 1000);
    assert.ok(expiresAt({ ...base, ttlMs: 0 }) > 1e12);
  });
});
