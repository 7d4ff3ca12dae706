/**
 * Our patches to llama.cpp's source, applied by every source build we make (`gglib llama install --source`,
 * `npm run setup`'s fallback, the test rig), and what a build carries in its identity (record.ts), so a patched and
 * an unpatched build of one commit are never taken for the same binary. A patch that does not apply to a tree (an
 * other commit) is skipped with its reason; what it enables is detected at run time from the binary
 * (llama/capabilities.ts), so gglib works the same on a build without it, a prebuilt one included.
 *
 * - `slot-checkpoints`: a slot file also carries the slot's context checkpoints (after llama.cpp's own state, which
 *   an unpatched llama-server still reads), so a hybrid/recurrent model whose follow-up drops part of the saved
 *   tokens (a template that re-renders history) can roll back after a restore, as it can before a save. Upstream's
 *   PR #20819 does the same inside llama.cpp's state format; it is not merged at the rig's commit (80fb11a).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { run } from "../../process/exec.js";

export interface SourcePatch {
  /** Short name, shown in `gglib llama status` and the install record. */
  name: string;
  /** The patch file (`git apply` format). */
  file: string;
  /** What it changes, in one line. */
  summary: string;
}

export const LLAMA_PATCHES: readonly SourcePatch[] = [
  {
    name: "slot-checkpoints",
    file: fileURLToPath(new URL("./patches/slot-checkpoints.patch", import.meta.url)),
    summary: "slot files keep the context checkpoints (hybrid models roll back after a restore)",
  },
];

/** The string the slot-checkpoints patch puts in llama-server (capabilities.ts looks for it). */
export const SLOT_CHECKPOINTS_TAG = "gglib-slot-checkpoints-v1";

/** `name@<first 8 hex of sha256(patch)>`: a changed patch is another build. */
export function patchId(p: SourcePatch, text: string = readFileSync(p.file, "utf8")): string {
  return `${p.name}@${createHash("sha256").update(text).digest("hex").slice(0, 8)}`;
}

export interface PatchOutcome {
  /** Ids of the patches applied (patchId). */
  applied: string[];
  /** The ones left out (id as patchId), with why. */
  skipped: Array<{ name: string; id: string; reason: string }>;
}

/**
 * Applies each patch to a source tree we cloned (never to a user's own folder: the caller passes `owned: false`
 * and gets every patch skipped with that reason). A patch that `git apply --check` refuses is skipped.
 */
export async function applyPatches(
  srcDir: string,
  opts: { owned: boolean; patches?: readonly SourcePatch[]; log?: (line: string) => void },
): Promise<PatchOutcome> {
  const out: PatchOutcome = { applied: [], skipped: [] };
  for (const p of opts.patches ?? LLAMA_PATCHES) {
    const id = patchId(p);
    if (!opts.owned) {
      out.skipped.push({
        name: p.name,
        id,
        reason: "a source folder of yours is built as it is, without our patches",
      });
      continue;
    }
    const check = await run("git", ["-C", srcDir, "apply", "--check", p.file]).catch((e: Error) => ({
      code: 1,
      stdout: "",
      stderr: e.message,
    }));
    if (check.code !== 0) {
      const why = (check.stderr || check.stdout).trim().split("\n")[0] ?? "";
      out.skipped.push({ name: p.name, id, reason: `does not apply to this llama.cpp tree (${why})` });
      opts.log?.(`patch ${p.name}: skipped, ${why}`);
      continue;
    }
    const r = await run("git", ["-C", srcDir, "apply", p.file]);
    if (r.code !== 0) {
      const why = r.stderr.trim().split("\n")[0] ?? "";
      out.skipped.push({ name: p.name, id, reason: `git apply failed: ${why}` });
      continue;
    }
    out.applied.push(id);
    opts.log?.(`patch ${p.name}: applied (${id})`);
  }
  return out;
}

/**
 * Pure: does an install with these patch ids (`applied`, and `skipped`: tried, did not apply) lack one of `want`
 * (the ids this gglib applies)? Such an install is rebuilt by `gglib llama update` even at the same commit.
 */
export function missingPatches(
  record: { patches?: readonly string[]; patchesSkipped?: readonly string[] },
  want: readonly string[],
): string[] {
  const tried = new Set([...(record.patches ?? []), ...(record.patchesSkipped ?? [])]);
  return want.filter((id) => !tried.has(id));
}
