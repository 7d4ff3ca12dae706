import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { GglibError } from "../../core/errors.js";
import { cacheDir } from "../../core/paths.js";

const pexec = promisify(execFile);

/** The npm package whose tarball carries llama.cpp's source as a one-commit git bundle (llama/gitRelease.bundle). */
export const LLAMA_SOURCE_PACKAGE = "node-llama-cpp@3.21.1";

/**
 * llama.cpp's source without GitHub: `npm pack` the package (35 MB, the registry only) and take its git bundle.
 * Cached under <cache dir>/llama-src/<package>/gitRelease.bundle; returns that path.
 */
export async function fetchLlamaSourceBundle(
  opts: { packageSpec?: string; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<string> {
  const spec = opts.packageSpec ?? LLAMA_SOURCE_PACKAGE;
  const dir = join(cacheDir(opts.env), "llama-src", spec.replace(/[^A-Za-z0-9.@-]/g, "_"));
  const bundle = join(dir, "gitRelease.bundle");
  if (existsSync(bundle)) return bundle;
  await mkdir(dir, { recursive: true });
  const tmp = await mkdtemp(join(dir, "pack-"));
  try {
    opts.log?.(`fetching llama.cpp source: npm pack ${spec}`);
    let tgz: string;
    try {
      const r = await pexec("npm", ["pack", spec, "--silent"], { cwd: tmp, maxBuffer: 1024 * 1024 });
      tgz = r.stdout.trim().split("\n").pop()!;
    } catch (e) {
      throw new GglibError("build_failed", `npm pack ${spec} failed: ${(e as Error).message.split("\n")[0]}`, {
        hint: "It needs the npm registry. Offline, pass a llama.cpp folder or git bundle with --source.",
      });
    }
    await pexec("tar", ["xzf", join(tmp, tgz), "-C", tmp, "package/llama/gitRelease.bundle"]);
    await rename(join(tmp, "package/llama/gitRelease.bundle"), bundle);
    return bundle;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
