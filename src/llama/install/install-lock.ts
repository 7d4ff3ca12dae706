import { GglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import { withLock } from "../../process/lockfile.js";

/** One `gglib llama install/update/uninstall` at a time (they replace the same folder). */
export function withInstallLock<T>(env: NodeJS.ProcessEnv, fn: () => Promise<T>): Promise<T> {
  const held = ({ pid }: { pid: number }) =>
    new GglibError("build_failed", `Another \`gglib llama install/update\` is running (pid ${pid}).`, {
      hint: "Wait for it to finish, or stop it and run the command again.",
    });
  return withLock(paths.llamaDir(env) + ".lock", { held }, fn);
}
