// Our llama.cpp source patches (src/llama/install/patches.ts) against the source the rig builds: each applies to
// that commit with `git apply`, a source folder of the user's is never patched, and a tree the patch does not fit
// is skipped with the reason (the build goes on without it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { LLAMA_PATCHES, SLOT_CHECKPOINTS_TAG, applyPatches, patchId } from "../../src/llama/install/patches.js";
import { llamaSourceFile } from "../support/llama-source.js";

/** The files a patch touches, from its `+++ b/<path>` lines. */
function touched(patchText: string): string[] {
  return [...patchText.matchAll(/^\+\+\+ b\/(.+)$/gm)].map((m) => m[1]!);
}

/** A git tree holding `files` at the rig's commit. */
async function treeWith(files: string[], edit?: (path: string, text: string) => string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-patch-"));
  for (const f of files) {
    mkdirSync(join(dir, dirname(f)), { recursive: true });
    const text = await llamaSourceFile(f);
    writeFileSync(join(dir, f), edit ? edit(f, text) : text);
  }
  execFileSync("git", ["init", "-q", dir]);
  return dir;
}

test(
  "every patch applies to the rig's llama.cpp commit, and the build identity names it",
  { timeout: 120_000 },
  async (t) => {
    for (const p of LLAMA_PATCHES) {
      const text = readFileSync(p.file, "utf8");
      const dir = await treeWith(touched(text));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const out = await applyPatches(dir, { owned: true, patches: [p] });
      assert.deepEqual(out.skipped, [], p.name);
      assert.deepEqual(out.applied, [patchId(p)]);
      assert.match(patchId(p), new RegExp(`^${p.name}@[0-9a-f]{8}$`));
      if (p.name === "slot-checkpoints") {
        const server = readFileSync(join(dir, "tools/server/server-context.cpp"), "utf8");
        assert.ok(server.includes(SLOT_CHECKPOINTS_TAG), "the tag capabilities.ts looks for is in the source");
      }
    }
  },
);

test(
  "a user's own source folder is built as it is; a tree the patch does not fit is skipped with why",
  { timeout: 120_000 },
  async (t) => {
    const p = LLAMA_PATCHES[0]!;
    const files = touched(readFileSync(p.file, "utf8"));
    const mine = await treeWith(files);
    t.after(() => rmSync(mine, { recursive: true, force: true }));
    const before = readFileSync(join(mine, files[0]!), "utf8");
    const kept = await applyPatches(mine, { owned: false, patches: [p] });
    assert.deepEqual(kept.applied, []);
    assert.match(kept.skipped[0]?.reason ?? "", /source folder of yours/);
    assert.equal(readFileSync(join(mine, files[0]!), "utf8"), before, "not touched");

    // another llama.cpp: the slot-save code moved on
    const other = await treeWith(files, (_f, text) =>
      text.replace("res->n_bytes  = nwrite;", "res->n_bytes = (size_t) nwrite;"),
    );
    t.after(() => rmSync(other, { recursive: true, force: true }));
    const out = await applyPatches(other, { owned: true, patches: [p] });
    assert.deepEqual(out.applied, []);
    assert.equal(out.skipped[0]?.name, p.name);
    assert.match(out.skipped[0]?.reason ?? "", /does not apply to this llama\.cpp tree/);
  },
);
