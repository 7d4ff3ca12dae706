/* eslint-disable no-control-regex -- the tests read terminal escape sequences */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ChatRenderer, formatStats, type RendererOptions } from "../../../src/chat/render.js";
import type { ChatStreamEvent } from "../../../src/chat/stream.js";
import { splitCompleteBlocks, BlockBoundaries } from "../../../src/chat/blocks.js";
import { stripAnsi, wrapRows, displayWidth } from "../../../src/term/text.js";

/**
 * A small terminal emulator: enough of VT100 for what the renderer writes (text, \n, \r, CSI n A, CSI J, CSI 2K,
 * SGR colours ignored), with auto-wrap at `cols`. Lets the tests assert what a user would see on screen.
 */
class FakeTerminal {
  lines: string[] = [""];
  row = 0;
  col = 0;
  written = "";
  readonly isTTY = true;
  constructor(
    readonly columns = 60,
    readonly rows = 24,
  ) {}

  write(s: string): boolean {
    this.written += s;
    let i = 0;
    while (i < s.length) {
      const ch = s[i]!;
      if (ch === "\x1b") {
        const m = /^\x1b\[([0-9;?]*)([A-Za-z])/.exec(s.slice(i));
        if (m) {
          const n = Number(m[1] || "1");
          if (m[2] === "A") this.row = Math.max(0, this.row - n);
          else if (m[2] === "J") {
            this.lines[this.row] = (this.lines[this.row] ?? "").slice(0, this.col);
            this.lines.length = this.row + 1;
          } else if (m[2] === "K") this.lines[this.row] = "";
          i += m[0].length;
          continue;
        }
      }
      if (ch === "\n") {
        this.row++;
        this.col = 0;
        while (this.lines.length <= this.row) this.lines.push("");
      } else if (ch === "\r") this.col = 0;
      else {
        if (this.col >= this.columns) {
          this.row++;
          this.col = 0;
          while (this.lines.length <= this.row) this.lines.push("");
        }
        const line = (this.lines[this.row] ?? "").padEnd(this.col, " ");
        this.lines[this.row] = line.slice(0, this.col) + ch + line.slice(this.col + 1);
        this.col++;
      }
      i++;
    }
    return true;
  }

  screen(): string {
    return this.lines.map((l) => l.trimEnd()).join("\n");
  }
}

class Sink {
  text = "";
  isTTY = false;
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const think = (text: string): ChatStreamEvent => ({ type: "thinking", text });
const answer = (text: string): ChatStreamEvent => ({ type: "answer", text });

function liveRenderer(term: FakeTerminal, extra: Partial<RendererOptions> = {}) {
  const c = clock();
  const r = new ChatRenderer({
    out: term,
    err: term,
    live: true,
    color: true,
    markdown: true,
    think: "show",
    json: false,
    stats: true,
    now: c.now,
    ...extra,
  });
  return { r, c };
}

describe("ChatRenderer on a terminal", () => {
  test("thinking streams dim under a label, then folds to one line when the answer starts", () => {
    const term = new FakeTerminal(100);
    const { r, c } = liveRenderer(term);
    const turn = r.startTurn("tiny-think");
    c.advance(120);
    turn.event(think("Let me consider "));
    c.advance(100);
    turn.event(think("the question carefully."));
    assert.match(term.screen(), /thinking…/);
    assert.match(term.screen(), /Let me consider the question carefully\./);
    assert.match(term.written, /\x1b\[2m/, "thinking is dim");
    c.advance(3300);
    turn.event(answer("The answer is **42**."));
    turn.event({
      type: "usage",
      usage: { promptTokens: 12, completionTokens: 30 },
      timings: { predictedPerSecond: 25.5 },
    });
    turn.event({ type: "finish", reason: "stop" });
    const res = turn.end();
    const screen = term.screen();
    assert.doesNotMatch(screen, /Let me consider/, "the thinking is folded away");
    assert.match(screen, /thought for 3\.4 s/);
    assert.match(screen, /The answer is 42\./, "markdown emphasis rendered (no asterisks)");
    assert.match(screen, /first token 120 ms · 25\.5 tok\/s · prompt 12 tokens · generated 30 tokens/);
    const order = ["thought for", "The answer", "first token"].map((s) => screen.indexOf(s));
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
    );
    assert.equal(res.thinking, "Let me consider the question carefully.");
    assert.equal(res.answer, "The answer is **42**.");
    assert.equal(res.stats.ttftMs, 120);
  });

  test("--think hide shows only a ticking line, folded the same way", () => {
    const term = new FakeTerminal();
    const { r, c } = liveRenderer(term, { think: "hide" });
    const turn = r.startTurn("m");
    turn.event(think("secret reasoning"));
    assert.doesNotMatch(term.screen(), /secret/);
    assert.match(term.screen(), /thinking… 0 s/);
    c.advance(2000);
    turn.event(think(" more"));
    assert.match(term.screen(), /thinking… 2 s/);
    turn.event(answer("ok"));
    turn.end();
    assert.doesNotMatch(term.screen(), /secret|thinking…/);
    assert.match(term.screen(), /thought for 2\.0 s\nok/);
  });

  test("long thinking keeps only the last rows on screen and still folds to one line", () => {
    const term = new FakeTerminal(40, 12);
    const { r, c } = liveRenderer(term);
    const turn = r.startTurn("m");
    for (let i = 0; i < 300; i++) {
      c.advance(50);
      turn.event(think(`step ${i} `));
    }
    const during = term.screen().split("\n");
    assert.ok(during.length <= 12, `live region fits the screen (${during.length} rows)`);
    assert.match(term.screen(), /step 299/);
    c.advance(50);
    turn.event(answer("done"));
    turn.end();
    assert.equal(
      term
        .screen()
        .split("\n")
        .filter((l) => /step/.test(l)).length,
      0,
    );
    assert.match(term.screen(), /^thought for 15\.0 s\ndone/);
  });

  test("markdown: finished blocks are rendered while the next one streams; code blocks and lists", () => {
    const term = new FakeTerminal(60, 24);
    const { r, c } = liveRenderer(term);
    const turn = r.startTurn("m");
    const text = "Here is a *list*:\n\n- one\n- two\n\n```js\nconst x = 1;\n```\n\nDone **now**.";
    for (const ch of text) {
      c.advance(50);
      turn.event(answer(ch));
    }
    // Before the end, the first blocks are already rendered (no markdown markers left in them).
    assert.match(term.screen(), /Here is a list:/);
    turn.end();
    const screen = term.screen();
    assert.match(screen, /Here is a list:/);
    assert.match(screen, /\* one\n\s*\* two|• one/);
    assert.match(screen, /const x = 1;/);
    assert.doesNotMatch(screen, /```/);
    assert.match(screen, /Done now\./);
  });

  test("an answer block taller than the screen is printed raw and never redrawn", () => {
    const term = new FakeTerminal(30, 8);
    const { r, c } = liveRenderer(term);
    const turn = r.startTurn("m");
    const words = Array.from({ length: 120 }, (_, i) => `w${i}`);
    for (const w of words) {
      c.advance(50);
      turn.event(answer(w + " "));
    }
    // the next block is rendered as markdown again
    for (const piece of ["\n\n", "After ", "**bold**", "."]) {
      c.advance(50);
      turn.event(answer(piece));
    }
    turn.end();
    assert.match(term.screen(), /\n\nAfter bold\.\n/);
    const flat = term.screen().replace(/\n/g, "");
    assert.match(flat, /w0 w1 w2/);
    assert.match(flat, /w119/);
    // every word appears exactly once on screen
    for (const w of ["w0 ", "w60 ", "w119"]) assert.equal(flat.split(w).length - 1, 1, w);
  });

  test("cancelled answer keeps the text shown and says so; no stats when nothing came", () => {
    const term = new FakeTerminal();
    const { r } = liveRenderer(term);
    const t1 = r.startTurn("m");
    t1.event(answer("partial"));
    const res = t1.end({ cancelled: true });
    assert.equal(res.cancelled, true);
    assert.match(term.screen(), /partial\n+cancelled/);
    const term2 = new FakeTerminal();
    const { r: r2 } = liveRenderer(term2);
    r2.startTurn("m").end({ cancelled: true });
    assert.match(term2.screen(), /cancelled/);
    assert.doesNotMatch(term2.screen(), /first token/);
  });

  test("only thinking, token limit reached: folded line and a hint", () => {
    const term = new FakeTerminal(200);
    const { r, c } = liveRenderer(term);
    const turn = r.startTurn("m");
    turn.event(think("hmm"));
    c.advance(500);
    turn.event({ type: "finish", reason: "length" });
    turn.end();
    assert.match(
      term.screen(),
      /thought for 500 ms\nno answer \(the length limit was reached while it was still thinking: raise --max-tokens or the context size\)/,
    );
  });

  test("loading progress is drawn in place and cleared by the first token", () => {
    const term = new FakeTerminal();
    const { r } = liveRenderer(term);
    const turn = r.startTurn("m");
    turn.event({ type: "loading", model: "big", fraction: 0.1 });
    turn.event({ type: "loading", model: "big", fraction: 0.7 });
    assert.match(term.screen(), /loading big .* 70%/);
    assert.equal(term.screen().split("\n").length, 1);
    turn.event(answer("hi"));
    turn.end();
    assert.doesNotMatch(term.screen(), /loading/);
    assert.match(term.screen(), /^hi/);
  });

  test("proxy notes without a percentage: waiting for room, then loading", () => {
    const term = new FakeTerminal();
    const { r } = liveRenderer(term);
    const turn = r.startTurn("m");
    turn.event({ type: "loading", model: "big", waiting: true });
    assert.equal(term.screen(), "waiting for room to load big…");
    turn.event({ type: "loading", model: "big" });
    assert.equal(term.screen(), "loading big…");
    turn.event({ type: "loading", model: "big", fraction: 0.5 });
    assert.match(term.screen(), /^loading big .* 50%$/);
    turn.event(answer("x"));
    turn.end();
    assert.match(term.screen(), /^x\n/);
  });

  test("error is shown in place of stats", () => {
    const term = new FakeTerminal();
    const { r } = liveRenderer(term);
    const turn = r.startTurn("m");
    turn.event(answer("a"));
    turn.event({ type: "error", message: "boom" });
    const res = turn.end();
    assert.equal(res.error, "boom");
    assert.match(term.screen(), /error: boom/);
    assert.doesNotMatch(term.screen(), /first token/);
  });

  test("without colours (NO_COLOR): no escape codes except cursor moves, answer not markdown-rendered", () => {
    const term = new FakeTerminal();
    const { r } = liveRenderer(term, { color: false, markdown: false });
    const turn = r.startTurn("m");
    turn.event(think("t"));
    turn.event(answer("**bold**"));
    turn.end();
    assert.doesNotMatch(term.written, /\x1b\[[0-9;]*m/);
    assert.match(term.screen(), /\*\*bold\*\*/);
  });
});

describe("ChatRenderer in a pipe", () => {
  const plain = (extra: Partial<RendererOptions> = {}) => {
    const out = new Sink();
    const err = new Sink();
    const r = new ChatRenderer({
      out,
      err,
      live: false,
      color: false,
      markdown: false,
      think: "hide",
      json: false,
      stats: false,
      ...extra,
    });
    return { out, err, r };
  };

  test("only the answer on stdout, nothing on stderr", () => {
    const { out, err, r } = plain();
    const t = r.startTurn("m");
    for (const e of [
      think("reasoning"),
      answer("Hello"),
      answer(" world"),
      { type: "finish", reason: "stop" } as const,
    ])
      t.event(e);
    t.end();
    assert.equal(out.text, "Hello world\n");
    assert.equal(err.text, "");
  });

  test("--think show: thinking on stderr; --stats: stats on stderr", () => {
    const { out, err, r } = plain({ think: "show", stats: true });
    const t = r.startTurn("m");
    t.event(think("a"));
    t.event(think("b"));
    t.event(answer("x\n"));
    t.end();
    assert.equal(out.text, "x\n");
    assert.match(err.text, /^ab\nfirst token/);
  });

  test("--json: one JSON object per answer", () => {
    const { out, err, r } = plain({ json: true });
    const t = r.startTurn("tiny");
    t.event(think("hm"));
    t.event(answer("4"));
    t.event({ type: "usage", usage: { promptTokens: 3, completionTokens: 2 } });
    t.event({ type: "finish", reason: "stop" });
    t.end();
    const lines = out.text.trim().split("\n");
    assert.equal(lines.length, 1);
    const obj = JSON.parse(lines[0]!);
    assert.equal(obj.model, "tiny");
    assert.equal(obj.answer, "4");
    assert.equal(obj.thinking, "hm");
    assert.equal(obj.finish_reason, "stop");
    assert.equal(obj.stats.prompt_tokens, 3);
    assert.equal(obj.stats.generated_tokens, 2);
    assert.equal(err.text, "");
  });

  test("--json on a terminal: stdout gets only the JSON object (loading is on stderr)", () => {
    const out = new FakeTerminal();
    const err = new FakeTerminal();
    const r = new ChatRenderer({
      out,
      err,
      live: true,
      color: true,
      markdown: true,
      think: "show",
      json: true,
      stats: true,
    });
    const t = r.startTurn("tiny");
    t.event({ type: "loading", model: "tiny", fraction: 0.5 });
    t.event(think("hm"));
    t.event(answer("4"));
    t.end();
    assert.equal(JSON.parse(out.written).answer, "4");
    assert.match(err.written, /loading tiny 50%/);
  });

  test("loading progress goes to stderr in coarse steps", () => {
    const { out, err, r } = plain();
    const t = r.startTurn("m");
    for (const f of [0, 0.1, 0.3, 0.55, 0.6, 1]) t.event({ type: "loading", model: "m", fraction: f });
    t.event(answer("a"));
    t.end();
    assert.equal(err.text, "loading m 0%\nloading m 30%\nloading m 55%\nloading m 100%\n");
    assert.equal(out.text, "a\n");
  });
});

describe("text helpers", () => {
  test("formatStats", () => {
    assert.equal(formatStats({ totalMs: 10 }), "took 10 ms");
    assert.equal(
      formatStats({
        totalMs: 3000,
        ttftMs: 1500,
        tokensPerSecond: 12.345,
        promptTokens: 9,
        cachedTokens: 4,
        generatedTokens: 20,
      }),
      "first token 1.5 s · 12.3 tok/s · prompt 9 tokens (4 cached) · generated 20 tokens",
    );
  });

  test("wrapRows wraps at spaces, hard-wraps long words, counts wide characters", () => {
    assert.deepEqual(wrapRows("hello world foo", 11), ["hello world", "foo"]);
    assert.deepEqual(wrapRows("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    assert.deepEqual(wrapRows("a\n\nb", 10), ["a", "", "b"]);
    assert.deepEqual(wrapRows("", 10), [""]);
    assert.deepEqual(wrapRows("日本語テキスト", 6), ["日本語", "テキス", "ト"]);
    for (const row of wrapRows("the quick brown fox jumps over the lazy dog ".repeat(5), 13))
      assert.ok(displayWidth(row) <= 13);
  });

  test("splitCompleteBlocks: blank lines outside fences, closing fences", () => {
    assert.deepEqual(splitCompleteBlocks("a\n\nb"), { complete: "a\n\n", rest: "b" });
    assert.deepEqual(splitCompleteBlocks("```\nx\n\ny"), { complete: "", rest: "```\nx\n\ny" });
    assert.deepEqual(splitCompleteBlocks("```\nx\n\n```\nz"), { complete: "```\nx\n\n```\n", rest: "z" });
    assert.deepEqual(splitCompleteBlocks("no newline"), { complete: "", rest: "no newline" });
  });

  test("BlockBoundaries gives the same answer fed in pieces", () => {
    const text = "p1\n\n```py\nprint(1)\n\n```\n\n- a\n- b\n\nend";
    const b = new BlockBoundaries();
    for (const ch of text) b.append(ch);
    assert.equal(b.boundary, splitCompleteBlocks(text).complete.length);
  });

  test("stripAnsi", () => {
    assert.equal(stripAnsi("\x1b[2mdim\x1b[22m"), "dim");
  });
});
