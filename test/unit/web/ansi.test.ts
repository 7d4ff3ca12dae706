import { test } from "node:test";
import assert from "node:assert/strict";
import { ansiSegments, stripAnsi } from "../../../web/src/ansi.js";

test("plain text is one unstyled segment", () => {
  assert.deepEqual(ansiSegments("llama_server: model loaded"), [{ text: "llama_server: model loaded" }]);
  assert.deepEqual(ansiSegments(""), []);
});

test("16 colours, bold, reset, default foreground", () => {
  assert.deepEqual(ansiSegments("\x1b[31merror\x1b[0m ok \x1b[1;92mbright\x1b[39m bold"), [
    { text: "error", fg: 1 },
    { text: " ok " },
    { text: "bright", fg: 10, bold: true },
    { text: " bold", bold: true },
  ]);
  assert.deepEqual(ansiSegments("\x1b[mx"), [{ text: "x" }]);
});

test("256 and 24-bit colours become CSS colours; backgrounds", () => {
  assert.deepEqual(ansiSegments("\x1b[38;5;196ma\x1b[48;2;1;2;300mb"), [
    { text: "a", fg: "rgb(255,0,0)" },
    { text: "b", fg: "rgb(255,0,0)", bg: "rgb(1,2,255)" },
  ]);
  assert.deepEqual(ansiSegments("\x1b[38;5;3mc"), [{ text: "c", fg: 3 }]);
  assert.deepEqual(ansiSegments("\x1b[38;5;240mg"), [{ text: "g", fg: "rgb(88,88,88)" }]);
});

test("other escape sequences are dropped; stripAnsi removes them all", () => {
  const line = "\x1b[2K\x1b[1Gprogress \x1b]0;title\x07done\x1b[33m!";
  assert.deepEqual(ansiSegments(line), [{ text: "progress done" }, { text: "!", fg: 3 }]);
  assert.equal(stripAnsi(line), "progress done!");
});
