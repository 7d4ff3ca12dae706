import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { LLAMA_PATCHES, missingPatches, patchId } from "../../../../src/llama/install/patches.js";

test("a patch's id is its name and the hash of its text: a changed patch is another id", () => {
  const p = LLAMA_PATCHES[0]!;
  const text = readFileSync(p.file, "utf8");
  assert.equal(patchId(p), patchId(p, text));
  assert.match(patchId(p), /^slot-checkpoints@[0-9a-f]{8}$/);
  assert.notEqual(patchId(p, text + "\n"), patchId(p, text));
});

test("an install lacks a patch unless it was applied or tried and refused by its tree", () => {
  const want = ["slot-checkpoints@0123abcd"];
  assert.deepEqual(missingPatches({}, want), want, "built before the patch existed: rebuilt by update");
  assert.deepEqual(missingPatches({ patches: ["slot-checkpoints@0123abcd"] }, want), []);
  assert.deepEqual(missingPatches({ patchesSkipped: ["slot-checkpoints@0123abcd"] }, want), [], "tried: not again");
  assert.deepEqual(missingPatches({ patches: ["slot-checkpoints@ffffffff"] }, want), want, "an older version");
  assert.deepEqual(missingPatches({ patches: want }, []), [], "nothing wanted");
});
