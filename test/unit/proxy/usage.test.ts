/** Usage read from llama-server's answers on every API shape: one definition of prompt tokens (cached included). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseUsage } from "../../../src/proxy/forward.js";

const FIXTURES = new URL("../../fixtures/llama-server/", import.meta.url);

// the shapes as llama-server 80fb11a answers them (recorded on the tiny model: a 30-token prompt asked twice)
test("Anthropic /v1/messages: input_tokens + cache_read_input_tokens = the prompt; cached = cache_read", () => {
  const json =
    '{"type":"message","stop_reason":"max_tokens","usage":{"cache_read_input_tokens":29,"input_tokens":1,"output_tokens":8}}';
  assert.deepEqual(parseUsage(json), { promptTokens: 30, completionTokens: 8, cachedTokens: 29 });
  const stream =
    'event: message_start\ndata: {"type":"message_start","message":{"usage":{"cache_read_input_tokens":29,"input_tokens":1,"output_tokens":0}}}\n\n' +
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":8}}\n\n';
  assert.deepEqual(parseUsage(stream), { promptTokens: 30, completionTokens: 8, cachedTokens: 29 });
  const first = '{"usage":{"cache_read_input_tokens":0,"input_tokens":30,"output_tokens":8}}';
  assert.deepEqual(parseUsage(first), { promptTokens: 30, completionTokens: 8, cachedTokens: 0 });
});

test("OpenAI Responses and chat completions: input/prompt tokens already count the cached ones", () => {
  const responses =
    '"usage":{"input_tokens":30,"output_tokens":8,"total_tokens":38,"input_tokens_details":{"cached_tokens":29}}}';
  assert.deepEqual(parseUsage(responses), { promptTokens: 30, completionTokens: 8, cachedTokens: 29 });
  const chat =
    '"usage":{"completion_tokens":8,"prompt_tokens":30,"total_tokens":38,"prompt_tokens_details":{"cached_tokens":29}}';
  assert.deepEqual(parseUsage(chat), { promptTokens: 30, completionTokens: 8, cachedTokens: 29 });
});

test("timings only (a stream without usage): prompt_n is what was evaluated, cache_n is added back", () => {
  const timings =
    '"timings":{"cache_n":29,"prompt_n":1,"prompt_per_second":100,"predicted_n":8,"predicted_per_second":50}';
  assert.deepEqual(parseUsage(timings), {
    promptTokens: 30,
    completionTokens: 8,
    cachedTokens: 29,
    predictedPerSecond: 50,
    promptPerSecond: 100,
  });
});

test("usage and timings are read from the tail of a stream and of a JSON body (fixtures)", () => {
  const stream = readFileSync(new URL("03-chat-stream-include-usage.raw", FIXTURES), "utf8");
  assert.deepEqual(parseUsage(stream.slice(-4000)), {
    promptTokens: 50,
    completionTokens: 16,
    predictedPerSecond: 1572.3270440251574,
    promptPerSecond: 1222.4938875305625,
    // the recorded timings' cache_n: the prompt's tokens reused from the slot's cache
    cachedTokens: 49,
  });
  const plain = readFileSync(new URL("03-chat-stream.raw", FIXTURES), "utf8");
  const u = parseUsage(plain.slice(-4000))!;
  assert.ok(u.completionTokens! > 0 && u.predictedPerSecond! > 0, "timings only (no usage) still count");
  assert.equal(parseUsage("data: [DONE]"), undefined);
});
