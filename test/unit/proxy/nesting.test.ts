/**
 * The nesting scanner (src/proxy/http/nesting.ts) that keeps bodies llama-server's parser cannot survive away from
 * it: depth counted outside strings only, escapes honoured, linear in the body, and the body limit's wording.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MAX_JSON_DEPTH, nestingBeyond } from "../../../src/proxy/http/nesting.js";
import { sizeText } from "../../../src/proxy/http/json.js";

const b = (s: string) => Buffer.from(s);
const nested = (depth: number, open = "[", close = "]") => open.repeat(depth) + close.repeat(depth);

describe("nestingBeyond", () => {
  test("up to the limit passes; one level more is found at the byte that opens it", () => {
    assert.equal(nestingBeyond(b(nested(MAX_JSON_DEPTH))), -1);
    assert.equal(nestingBeyond(b(nested(MAX_JSON_DEPTH + 1))), MAX_JSON_DEPTH);
    assert.equal(nestingBeyond(b(`{"model":"a","x":${nested(3)}}`), 4), -1);
    assert.equal(nestingBeyond(b(`{"model":"a","x":${nested(3)}}`), 3), 19);
    assert.equal(nestingBeyond(b(`{"a":{"b":{"c":{}}}}`), 3), 15);
  });

  test("the issue's body: 200,000 levels under a valid request", () => {
    const body = b(`{"model":"tiny-a","messages":[{"role":"user","content":"hi"}],"x":${nested(200_000)}}`);
    const t = performance.now();
    assert.ok(nestingBeyond(body) > 0);
    assert.ok(performance.now() - t < 200, "linear");
  });

  test("brackets inside strings do not count, escaped quotes do not end a string", () => {
    assert.equal(nestingBeyond(b(`{"content":"${"[".repeat(1000)}"}`), 4), -1);
    assert.equal(nestingBeyond(b(`{"c":"a\\"[[[[[[[["}`), 2), -1, "an escaped quote stays inside the string");
    assert.equal(
      nestingBeyond(b(`{"c":"a\\\\"${nested(5)}}`), 3),
      12,
      "an escaped backslash does not escape the quote",
    );
    assert.equal(nestingBeyond(b(`{"c":"a\\\\\\"[[[[[[["}`), 2), -1, '\\\\\\" is a backslash and a quote');
    assert.equal(nestingBeyond(b(`["unterminated ${"[".repeat(50)}`), 2), -1, "malformed: the parser's to refuse");
  });

  test("closing more than opened never goes below zero; a long flat body is cheap", () => {
    assert.equal(nestingBeyond(b(`]]]]]]${nested(3)}`), 3), -1);
    const flat = b(
      JSON.stringify({ messages: Array.from({ length: 20_000 }, (_, i) => ({ role: "user", content: `m${i}` })) }),
    );
    assert.equal(nestingBeyond(flat), -1);
    assert.equal(nestingBeyond(b("[[")), -1, "shorter than the limit: not scanned");
  });
});

describe("sizeText (the 413's words)", () => {
  test("bytes, KiB, MiB", () => {
    assert.equal(sizeText(64 * 1024), "64 KiB");
    assert.equal(sizeText(32 * 1024 * 1024), "32 MiB");
    assert.equal(sizeText(1536 * 1024), "1.5 MiB");
    assert.equal(sizeText(2048), "2 KiB");
    assert.equal(sizeText(100), "100 bytes");
  });
});
