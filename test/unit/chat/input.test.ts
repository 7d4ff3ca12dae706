import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough, Writable } from "node:stream";
import { PromptReader } from "../../../src/chat/input.js";

/** A terminal stand-in whose writes complete later, as a real stream's do. */
function terminal(): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      setImmediate(cb);
    },
  });
  return {
    stream: Object.assign(w, { isTTY: true, columns: 80, rows: 24 }) as unknown as NodeJS.WriteStream,
    text: () => chunks.join(""),
  };
}

test("Ctrl-C right after typed text (one read): the text stays shown, then ^C and a fresh prompt", async () => {
  const input = new PassThrough() as unknown as NodeJS.ReadStream;
  const out = terminal();
  const reader = new PromptReader({ input, output: out.stream });
  const first = reader.read();
  await new Promise((r) => setImmediate(r));
  // the keys and the Ctrl-C arrive in one chunk (tmux or a fast typist): readline echoes, then the line is dropped
  (input as unknown as PassThrough).write("not sent\x03");
  await new Promise((r) => setTimeout(r, 20));
  const shown = out.text();
  const at = shown.lastIndexOf("not sent");
  assert.ok(at >= 0, JSON.stringify(shown));
  // nothing between the echo and ^C: the erase readline writes while muted must never reach the terminal
  assert.equal(shown.slice(at + "not sent".length, shown.indexOf("^C", at)), "", JSON.stringify(shown));
  reader.close();
  assert.deepEqual(await first, { kind: "exit", reason: "eof" });
});
