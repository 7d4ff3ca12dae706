import { test } from "node:test";
import assert from "node:assert/strict";
import { AnswerFolder } from "../../../web/src/chat.js";

const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ choices: [{ delta, finish_reason: null }], ...extra });

test("reasoning_content deltas are the thinking, content the answer; stats from the last chunk", () => {
  let t = 0;
  const f = new AnswerFolder(() => t);
  t = 5;
  assert.equal(f.push(chunk({ role: "assistant", content: null })), false);
  t = 12;
  assert.equal(f.push(chunk({ reasoning_content: "Let me " })), true);
  f.push(chunk({ reasoning_content: "think." }));
  f.push(chunk({ content: "The answer" }));
  f.push(chunk({ content: " is 4." }));
  f.push(
    JSON.stringify({
      choices: [{ delta: {}, finish_reason: "stop" }],
      timings: { prompt_n: 11, predicted_n: 7, predicted_per_second: 42.5, prompt_ms: 3.2, cache_n: 4 },
    }),
  );
  t = 30;
  f.push("[DONE]");
  assert.deepEqual(f.answer, {
    thinking: "Let me think.",
    content: "The answer is 4.",
    stats: {
      firstTokenMs: 12,
      finishReason: "stop",
      promptTokens: 11,
      generatedTokens: 7,
      tokensPerSecond: 42.5,
      promptMs: 3.2,
      cachedTokens: 4,
      totalMs: 30,
    },
    done: true,
  });
});

test("<think> left inline in the content is split out, across chunk boundaries", () => {
  const f = new AnswerFolder(() => 0);
  for (const piece of ["<thi", "nk>hmm", " ok</th", "ink>Hello", "!"]) f.push(chunk({ content: piece }));
  f.finish();
  assert.equal(f.answer.thinking.trim(), "hmm ok");
  assert.equal(f.answer.content, "Hello!");
});

test("an error event is kept; an event that is not JSON is an error too (the terminal chat's rule)", () => {
  const f = new AnswerFolder(() => 0);
  assert.equal(f.push("not json"), true);
  assert.match(f.answer.error ?? "", /not JSON: not json/);
  f.push(JSON.stringify({ error: { message: "llama-server for 'a' exited unexpectedly (signal SIGSEGV)" } }));
  f.push("[DONE]");
  assert.match(f.answer.error ?? "", /SIGSEGV/);
  assert.equal(f.answer.done, true);
});
