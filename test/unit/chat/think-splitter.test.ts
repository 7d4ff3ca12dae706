// ThinkSplitter (src/chat/think-splitter.ts): properties.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ThinkSplitter, THINK_TAGS, type SplitPiece } from "../../../src/chat/think-splitter.js";
import { cuts, RUNS, splitAt, tricky } from "../../support/fuzz.js";

function mergePieces(pieces: SplitPiece[]): SplitPiece[] {
  const out: SplitPiece[] = [];
  for (const p of pieces) {
    const last = out[out.length - 1];
    if (last && last.kind === p.kind) out[out.length - 1] = { kind: p.kind, text: last.text + p.text };
    else out.push(p);
  }
  return out;
}

describe("think splitter (properties)", () => {
  test("ThinkSplitter: tags split anywhere give the same thinking and answer text", () => {
    const text = fc
      .tuple(
        fc.constantFrom(...THINK_TAGS),
        fc.constantFrom("", " ", "\n"),
        tricky,
        fc.constantFrom("", "\n\n", " "),
        tricky,
        fc.boolean(),
      )
      .map(([tag, lead, thinking, gap, answer, withTags]) =>
        withTags ? `${lead}${tag.open}${thinking}${tag.close}${gap}${answer}` : `${lead}${thinking}${answer}`,
      );
    fc.assert(
      fc.property(
        text.chain((s) => fc.tuple(fc.constant(s), cuts(s.length), fc.boolean())),
        ([s, at, forcedOpen]) => {
          const whole = new ThinkSplitter({ forcedOpen });
          const expected = mergePieces([...whole.push(s), ...whole.end()]);
          const split = new ThinkSplitter({ forcedOpen });
          const got: SplitPiece[] = [];
          for (const piece of splitAt(s, at)) got.push(...split.push(piece));
          got.push(...split.end());
          assert.deepEqual(mergePieces(got), expected, JSON.stringify({ s, at }));
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });

  test("ThinkSplitter: <think>T</think>A (T, A free of tags) gives thinking T and answer A, whatever the split", () => {
    const plain = fc.string({ maxLength: 30 }).filter((s) => !/[<>]/.test(s) && s.trim() === s);
    fc.assert(
      fc.property(
        fc.tuple(plain, plain).chain(([t, a]) => {
          const s = `<think>${t}</think>\n\n${a}`;
          return fc.tuple(fc.constant({ t, a, s }), cuts(s.length));
        }),
        ([{ t, a, s }, at]) => {
          const sp = new ThinkSplitter();
          const pieces: SplitPiece[] = [];
          for (const piece of splitAt(s, at)) pieces.push(...sp.push(piece));
          pieces.push(...sp.end());
          const thinking = pieces
            .filter((p) => p.kind === "thinking")
            .map((p) => p.text)
            .join("");
          const answer = pieces
            .filter((p) => p.kind === "answer")
            .map((p) => p.text)
            .join("");
          assert.equal(thinking, t);
          assert.equal(answer, a);
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });
});
