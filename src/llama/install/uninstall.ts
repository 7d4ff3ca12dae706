/** `gglib llama uninstall`, as a library: removes the install (under the install lock), and with purge its caches. */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { cacheDir, paths } from "../../core/paths.js";
import { withInstallLock } from "./install-lock.js";

export interface UninstallResult {
  removed: boolean;
  dir: string;
  /** Build trees and downloads removed too (purge). */
  purged: string[];
}

export async function uninstallLlama(
  opts: { env?: NodeJS.ProcessEnv; purge?: boolean } = {},
): Promise<UninstallResult> {
  const env = opts.env ?? process.env;
  const dir = paths.llamaDir(env);
  const removed = existsSync(dir);
  await withInstallLock(env, async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const purged: string[] = [];
  if (opts.purge) {
    for (const p of [join(cacheDir(env), "llama-build"), join(cacheDir(env), "llama-downloads")]) {
      if (existsSync(p)) {
        await rm(p, { recursive: true, force: true });
        purged.push(p);
      }
    }
  }
  return { removed, dir, purged };
}
