import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { ChatStreamParser, type ChatStreamEvent } from "../../../src/chat/stream.js";
import { ThinkSplitter, promptOpensThinking } from "../../../src/chat/think-splitter.js";
import { cuts, RUNS, splitAt, tricky } from "../../support/fuzz.js";

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/chat/${name}.sse`, import.meta.url), "utf8");

/** Feed `text` to a fresh parser in pieces of `size` characters (1 = every character its own chunk). */
function parse(text: string, size = Infinity, opts: { forcedOpen?: boolean } = {}): ChatStreamEvent[] {
  const p = new ChatStreamParser(opts);
  const out: ChatStreamEvent[] = [];
  if (size === Infinity) out.push(...p.feed(text));
  else for (let i = 0; i < text.length; i += size) out.push(...p.feed(text.slice(i, i + size)));
  out.push(...p.end());
  return out;
}

function joined(events: ChatStreamEvent[], type: "thinking" | "answer"): string {
  return events
    .filter((e): e is Extract<ChatStreamEvent, { type: typeof type }> => e.type === type)
    .map((e) => e.text)
    .join("");
}

/** Thinking events all come before answer events. */
function phasesInOrder(events: ChatStreamEvent[]): boolean {
  let answered = false;
  for (const e of events) {
    if (e.type === "answer") answered = true;
    if (e.type === "thinking" && answered) return false;
  }
  return true;
}

function sse(deltas: Array<Record<string, unknown>>, tail: Record<string, unknown>[] = []): string {
  const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
  return (
    ev({ choices: [{ index: 0, delta: { role: "assistant", content: null }, finish_reason: null }] }) +
    deltas.map((d) => ev({ choices: [{ index: 0, delta: d, finish_reason: null }] })).join("") +
    ev({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }) +
    tail.map(ev).join("") +
    "data: [DONE]\n\n"
  );
}

describe("ChatStreamParser on recorded llama-server streams", () => {
  test("reasoning_content then answer (--reasoning-format deepseek), whole and byte by byte", () => {
    for (const size of [Infinity, 1, 7]) {
      const ev = parse(fixture("04b-deepseek-chat-stream-grammar"), size);
      assert.equal(joined(ev, "thinking"), "abc", `chunk size ${size}`);
      assert.equal(joined(ev, "answer"), "hello world");
      assert.ok(phasesInOrder(ev));
      assert.deepEqual(
        ev.filter((e) => e.type === "finish"),
        [{ type: "finish", reason: "stop" }],
      );
      assert.equal(ev[ev.length - 1]?.type, "done");
    }
  });

  test("inline <think> left in content (--reasoning-format none), tag split across deltas", () => {
    for (const size of [Infinity, 1, 3]) {
      const ev = parse(fixture("04b-none-chat-stream-grammar"), size);
      assert.equal(joined(ev, "thinking"), "abc", `chunk size ${size}`);
      assert.equal(joined(ev, "answer"), "hello world");
      assert.ok(phasesInOrder(ev));
    }
  });

  test("template opened <think> in the prompt: only the closing tag is in the output (forcedOpen)", () => {
    const ev = parse(fixture("04a-deepseek-chat-stream-grammar"), Infinity, { forcedOpen: true });
    assert.equal(joined(ev, "thinking"), "abc");
    assert.equal(joined(ev, "answer"), "hello world");
    // Without the hint the whole text is answer (nothing can be known to be thinking).
    const plain = parse(fixture("04a-deepseek-chat-stream-grammar"));
    assert.equal(joined(plain, "thinking"), "");
    assert.equal(joined(plain, "answer"), "abc</think>hello world");
  });

  test("forcedOpen is overridden when the server splits reasoning itself", () => {
    const ev = parse(fixture("04b-deepseek-chat-stream-grammar"), Infinity, { forcedOpen: true });
    assert.equal(joined(ev, "thinking"), "abc");
    assert.equal(joined(ev, "answer"), "hello world");
  });

  test("answer only, with usage and timings (stream_options.include_usage)", () => {
    const ev = parse(fixture("03-chat-stream-include-usage"));
    assert.equal(joined(ev, "thinking"), "");
    assert.ok(joined(ev, "answer").length > 0);
    const usage = ev.filter((e) => e.type === "usage");
    assert.equal(usage.length, 1);
    const u = usage[0] as Extract<ChatStreamEvent, { type: "usage" }>;
    assert.equal(typeof u.usage.promptTokens, "number");
    assert.equal(typeof u.usage.completionTokens, "number");
    assert.equal(typeof u.timings?.predictedPerSecond, "number");
  });

  test("usage chunk after reasoning stream carries prompt, cached and generated tokens", () => {
    const ev = parse(fixture("04b-deepseek-chat-stream-grammar-usage"), 5);
    const u = ev.find((e) => e.type === "usage") as Extract<ChatStreamEvent, { type: "usage" }>;
    assert.deepEqual(u.usage, { promptTokens: 34, completionTokens: 17, cachedTokens: 33 });
    assert.equal(u.timings?.predictedN, 17);
  });

  test("mid-stream error event, no [DONE]", () => {
    const p = new ChatStreamParser();
    const ev = [...p.feed(fixture("06-midstream-error-chat")), ...p.end()];
    const err = ev.find((e) => e.type === "error");
    assert.deepEqual(err, {
      type: "error",
      message: "The model produced output that does not match the expected peg-native format",
      code: 500,
      errorType: "server_error",
    });
    assert.equal(p.done, false);
  });

  test("empty stream and a stream with no text", () => {
    assert.deepEqual(parse(""), []);
    const ev = parse(sse([]));
    assert.deepEqual(ev, [{ type: "finish", reason: "stop" }, { type: "done" }]);
  });

  test("proxy loading comments become progress events; other comments are ignored", () => {
    const text = ": loading tiny-think 0%\n\n: keep-alive\n\n: loading tiny-think 42.5%\n\n" + sse([{ content: "hi" }]);
    const ev = parse(text, 4);
    assert.deepEqual(
      ev.filter((e) => e.type === "loading"),
      [
        { type: "loading", model: "tiny-think", fraction: 0 },
        { type: "loading", model: "tiny-think", fraction: 0.425 },
      ],
    );
    assert.equal(joined(ev, "answer"), "hi");
  });

  test("proxy notes without a percentage", () => {
    const ev = parse(": waiting for room to load big-model\n\n: loading big-model\n\n: loading big-model 7%\n\n");
    assert.deepEqual(ev, [
      { type: "loading", model: "big-model", waiting: true },
      { type: "loading", model: "big-model" },
      { type: "loading", model: "big-model", fraction: 0.07 },
    ]);
  });

  test("`reasoning` field (other servers) counts as thinking", () => {
    const ev = parse(sse([{ reasoning: "let me see" }, { content: "42" }]));
    assert.equal(joined(ev, "thinking"), "let me see");
    assert.equal(joined(ev, "answer"), "42");
  });

  test("a non-JSON data line is reported, not thrown", () => {
    const ev = parse("data: {not json\n\n");
    assert.equal(ev[0]?.type, "error");
  });
});

describe("ThinkSplitter", () => {
  const run = (deltas: string[], forcedOpen = false) => {
    const s = new ThinkSplitter({ forcedOpen });
    const pieces = [...deltas.flatMap((d) => s.push(d)), ...s.end()];
    return {
      thinking: pieces
        .filter((p) => p.kind === "thinking")
        .map((p) => p.text)
        .join(""),
      answer: pieces
        .filter((p) => p.kind === "answer")
        .map((p) => p.text)
        .join(""),
    };
  };

  test("opening tag split across deltas, leading whitespace", () => {
    assert.deepEqual(run(["\n", "<th", "ink", ">\nhmm", " ok</th", "ink>\n\nAnswer"]), {
      thinking: "hmm ok",
      answer: "Answer",
    });
  });

  test("text that only looks like the start of a tag is answer", () => {
    assert.deepEqual(run(["<", "b>bold</b>"]), { thinking: "", answer: "<b>bold</b>" });
    assert.deepEqual(run(["<th"]), { thinking: "", answer: "<th" });
  });

  test("a think block never closed: everything is thinking, held tail flushed", () => {
    assert.deepEqual(run(["<think>abc</th"]), { thinking: "abc</th", answer: "" });
  });

  test("'<' inside thinking that is not the closing tag is kept", () => {
    assert.deepEqual(run(["<think>a < b", " and </ not", "</think>x"]), { thinking: "a < b and </ not", answer: "x" });
  });

  test("other tag spellings", () => {
    assert.deepEqual(run(["<thinking>t</thinking>a"]), { thinking: "t", answer: "a" });
    assert.deepEqual(run(["<|START_THINKING|>t<|END_", "THINKING|>a"]), { thinking: "t", answer: "a" });
  });

  test("forced open: closing tag only", () => {
    assert.deepEqual(run(["ab", "c</", "think>", "\n\nhi"], true), { thinking: "abc", answer: "hi" });
  });

  test("a <think> later in the answer is not thinking", () => {
    assert.deepEqual(run(["Use <think> tags"]), { thinking: "", answer: "Use <think> tags" });
  });

  test("promptOpensThinking", () => {
    assert.equal(promptOpensThinking("<|im_start|>assistant\n<think>\n"), true);
    assert.equal(promptOpensThinking("<|im_start|>assistant\n"), false);
    assert.equal(promptOpensThinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"), false);
  });
});

/** Adjacent thinking/answer texts merged (how they are split into events is not part of the contract). */
function normalize(events: ChatStreamEvent[]): ChatStreamEvent[] {
  const out: ChatStreamEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if ((e.type === "thinking" || e.type === "answer") && last && last.type === e.type)
      out[out.length - 1] = { type: e.type, text: last.text + e.text };
    else out.push(e);
  }
  return out;
}

/** One SSE event of a chat stream, as llama-server or the proxy writes it. */
const sseEvent: fc.Arbitrary<string> = fc.oneof(
  tricky.map(
    (t) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: t } }], object: "chat.completion.chunk" })}\n\n`,
  ),
  tricky.map(
    (t) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { reasoning_content: t } }], object: "chat.completion.chunk" })}\n\n`,
  ),
  fc
    .constantFrom("stop", "length")
    .map((r) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: r }] })}\n\n`),
  fc
    .record({ p: fc.nat(999), c: fc.nat(999) })
    .map(
      ({ p, c }) =>
        `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: p, completion_tokens: c }, timings: { predicted_per_second: 12.5 } })}\n\n`,
    ),
  fc.integer({ min: 0, max: 100 }).map((n) => `: loading some-model ${n}%\n\n`),
  fc.constant(": waiting for room to load some-model\n\n"),
  tricky.map((m) => `data: ${JSON.stringify({ error: { message: m, type: "server_error", code: 500 } })}\n\n`),
  fc.constant("data: [DONE]\n\n"),
  fc.constant("event: ping\ndata: {}\r\n\r\n"),
);

describe("chat stream parser (properties)", () => {
  test("ChatStreamParser: the same SSE bytes split anywhere (inside UTF-8 sequences too) give the same events", () => {
    const stream = fc.array(sseEvent, { minLength: 1, maxLength: 12 }).map((evs) => Buffer.from(evs.join(""), "utf8"));
    fc.assert(
      fc.property(
        stream.chain((bytes) => fc.tuple(fc.constant(bytes), cuts(bytes.length), fc.boolean())),
        ([bytes, at, forcedOpen]) => {
          const whole = new ChatStreamParser({ forcedOpen });
          const expected = normalize([...whole.feed(bytes.toString("utf8")), ...whole.end()]);
          const split = new ChatStreamParser({ forcedOpen });
          const dec = new TextDecoder();
          const got: ChatStreamEvent[] = [];
          for (const piece of splitAt(bytes, at)) got.push(...split.feed(dec.decode(piece, { stream: true })));
          got.push(...split.feed(dec.decode()), ...split.end());
          assert.deepEqual(normalize(got), expected);
          assert.equal(split.done, whole.done);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
