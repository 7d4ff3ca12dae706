import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, join } from "node:path";

/** A regular file this process may execute. */
export async function isExecutable(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The executables named `cmd` in each PATH folder, in PATH order (Windows: with each PATHEXT extension). */
export function pathCandidates(cmd: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const exts = process.platform === "win32" ? (env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";") : [""];
  const out: string[] = [];
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    for (const ext of exts) out.push(join(dir, cmd + ext));
  }
  return out;
}

/** Absolute path of `cmd` on PATH (a path with a slash is checked as it is); undefined when there is none. */
export async function which(cmd: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (cmd.includes("/") || cmd.includes("\\")) return (await isExecutable(cmd)) ? cmd : undefined;
  for (const p of pathCandidates(cmd, env)) if (await isExecutable(p)) return p;
  return undefined;
}
