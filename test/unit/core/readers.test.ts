/**
 * The readers every upstream stream and error answer goes through (issue 25): the SSE data reader
 * (src/core/sse.ts, on eventsource-parser) and the error-body reader (src/core/upstream-error.ts).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SseDataReader } from "../../../src/core/sse.js";
import { errorOfJson, errorOfText } from "../../../src/core/upstream-error.js";

function read(text: string, piece: number): string[] {
  const r = new SseDataReader();
  const b = Buffer.from(text);
  const out: string[] = [];
  for (let i = 0; i < b.length; i += piece) out.push(...r.push(b.subarray(i, i + piece)));
  return [...out, ...r.end()];
}

describe("SseDataReader", () => {
  test("the same events whatever the split (lines, CRLF, a UTF-8 character across chunks), comments skipped", () => {
    const text = ': ping\r\ndata: {"a":"é—ü"}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata:[DONE]\n\n';
    for (const piece of [1, 2, 3, 7, 1000])
      assert.deepEqual(read(text, piece), ['{"a":"é—ü"}', "one\ntwo", "[DONE]"], `pieces of ${piece}`);
  });

  test("a last event the stream did not close with a blank line still counts", () => {
    assert.deepEqual(read("data: a\n\ndata: b", 4), ["a", "b"]);
    assert.deepEqual(read("data: a\n\ndata: b\n", 4), ["a", "b"]);
  });

  test("comments go to onComment when asked; an event longer than maxBufferChars throws", () => {
    const seen: string[] = [];
    const r = new SseDataReader({ onComment: (c) => seen.push(c.trim()) });
    assert.deepEqual(r.push(Buffer.from(": loading a 50%\n\ndata: x\n\n")), ["x"]);
    assert.deepEqual(seen, ["loading a 50%"]);
    const small = new SseDataReader({ maxBufferChars: 16 });
    assert.throws(() => small.push(Buffer.from(`data: ${"y".repeat(64)}`)));
  });
});

describe("the upstream error-body reader", () => {
  test("OpenAI's and llama-server's shape, Ollama's, a top-level message, plain text, an empty body", () => {
    assert.deepEqual(errorOfText('{"error":{"code":400,"message":"bad","type":"invalid_request_error"}}'), {
      message: "bad",
      type: "invalid_request_error",
      code: 400,
    });
    assert.deepEqual(errorOfText('{"error":"no such model"}'), { message: "no such model" });
    assert.deepEqual(errorOfText('{"message":"busy"}'), { message: "busy" });
    assert.deepEqual(errorOfText("  upstream exploded \n"), { message: "upstream exploded" });
    assert.deepEqual(errorOfText("", "nothing said"), { message: "nothing said" });
    assert.equal(errorOfText("x".repeat(5000)).message.length, 2000);
  });

  test("a JSON body without an error (a stream chunk) carries none; an odd error value is kept as JSON", () => {
    assert.equal(errorOfJson({ choices: [], message: "not an error here" }), undefined);
    assert.equal(errorOfJson(null), undefined);
    assert.deepEqual(errorOfJson({ error: 42 }), { message: "42" });
    assert.deepEqual(errorOfJson({ error: { detail: "x" } }), { message: '{"detail":"x"}' });
  });
});
