/**
 * Files of the llama.cpp source that the rig's llama-server is built from (the git bundle inside node-llama-cpp's
 * npm tarball, see llama-server.ts), read at test time: the real chat templates under models/templates/.
 *
 *   const tpl = await llamaSourceFile("models/templates/Qwen-Qwen3-0.6B.jinja");
 *
 * The bundle is cloned once into <cache dir>/rig/src-<commit>.git (bare, about 35 MB; ~10 s here) and files
 * are read with `git show`. GGLIB_TEST_LLAMA_SOURCE names a checked-out llama.cpp tree to read instead.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { fetchLlamaSourceBundle } from "../../src/llama/install/npm-bundle.js";
import { RIG_COMMIT, RIG_PACKAGE, rigDir } from "./llama-server.js";

const pexec = promisify(execFile);

let repo: Promise<string> | undefined;

async function cloneOnce(): Promise<string> {
  const dest = join(rigDir(), `src-${RIG_COMMIT.slice(0, 12)}.git`);
  if (existsSync(join(dest, "HEAD"))) return dest;
  const bundle = await fetchLlamaSourceBundle({ packageSpec: RIG_PACKAGE, log: () => undefined });
  mkdirSync(rigDir(), { recursive: true });
  const tmp = `${dest}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  await pexec("git", ["clone", "--quiet", "--bare", bundle, tmp], { maxBuffer: 1 << 20 });
  try {
    renameSync(tmp, dest);
  } catch (e) {
    // another process got there first
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dest, "HEAD"))) throw e;
  }
  return dest;
}

/** The text of `path` (relative to the llama.cpp root) at the rig's commit. */
export async function llamaSourceFile(path: string): Promise<string> {
  const tree = process.env.GGLIB_TEST_LLAMA_SOURCE;
  if (tree) return readFile(join(tree, path), "utf8");
  repo ??= cloneOnce();
  const dir = await repo;
  const { stdout } = await pexec("git", ["--git-dir", dir, "show", `HEAD:${path}`], { maxBuffer: 16 << 20 });
  return stdout;
}

/** A chat template from llama.cpp's models/templates/ (file name with or without .jinja). */
export function llamaTemplate(name: string): Promise<string> {
  return llamaSourceFile(`models/templates/${name.endsWith(".jinja") ? name : `${name}.jinja`}`);
}
