import { test } from "node:test";
import assert from "node:assert/strict";
import pc from "picocolors";
import { colorEnabled } from "../../../src/term/color.js";
import { formatBytes, formatCount, formatDuration } from "../../../src/term/format.js";
import { progressBar } from "../../../src/term/progress.js";
import { charWidth, displayWidth, table } from "../../../src/term/text.js";

test("character widths: controls and combining marks 0, CJK and emoji 2, the rest 1", () => {
  assert.equal(charWidth("a".codePointAt(0)!), 1);
  assert.equal(charWidth(0x0301), 0, "combining acute");
  assert.equal(charWidth(0x200d), 0, "zero-width joiner");
  assert.equal(charWidth(0x1b), 0);
  assert.equal(charWidth("中".codePointAt(0)!), 2);
  assert.equal(charWidth("🙂".codePointAt(0)!), 2);
  assert.equal(displayWidth("\x1b[1mab中\x1b[0m"), 4, "ANSI colours take no column");
});

test("table: columns aligned by display width, colours ignored, the last column not padded", () => {
  const c = pc.createColors(true);
  const lines = table([
    [c.bold("NAME"), "SIZE", "PATH"],
    ["中文", "1 GiB", "/m/a.gguf"],
    ["tiny", "12 MiB", "/m/b.gguf"],
  ]).split("\n");
  // the third column starts at the same screen column on every row
  const startOf = (l: string, cell: string) => displayWidth(l.slice(0, l.indexOf(cell)));
  assert.deepEqual([startOf(lines[0]!, "PATH"), startOf(lines[1]!, "/m/a"), startOf(lines[2]!, "/m/b")], [14, 14, 14]);
  assert.equal(
    table([
      ["a", "b"],
      ["ccc", "d"],
    ]),
    "a    b\nccc  d",
  );
  assert.equal(table([]), "");
});

test("sizes, durations, counts", () => {
  assert.equal(formatBytes(1536 * 1024 * 1024), "1.5 GiB");
  assert.equal(formatBytes(320 * 1024 * 1024), "320 MiB");
  assert.equal(formatDuration(850), "850 ms");
  assert.equal(formatDuration(125_000), "2 min 5 s");
  assert.equal(formatCount(7_610_000_000), "7.6B");
  assert.equal(formatCount(999), "999");
});

test("progress bar: width cells, clamped; colours only when asked", () => {
  const plain = pc.createColors(false);
  assert.equal(progressBar(0.5, 10, plain), "█████░░░░░");
  assert.equal(progressBar(2, 4, plain), "████");
  assert.equal(progressBar(Number.NaN, 4, plain), "░░░░");
  assert.equal(colorEnabled({ isTTY: true } as NodeJS.WriteStream, { NO_COLOR: "1" }), false);
  assert.equal(colorEnabled({ isTTY: false } as NodeJS.WriteStream, { FORCE_COLOR: "1" }), true);
  assert.equal(colorEnabled({ isTTY: true } as NodeJS.WriteStream, {}), true);
});
