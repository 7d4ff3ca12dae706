import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { GglibError } from "../core/errors.js";
import { paths } from "../core/paths.js";
import { isExecutable, which } from "../process/which.js";

export type BinarySource = "env" | "configured" | "installed" | "path";

export interface ResolvedBinary {
  path: string;
  source: BinarySource;
}

const INSTALL_HINT =
  "Install llama.cpp with `gglib llama install` (or `gglib llama install --source <llama.cpp folder|bundle|git URL>` offline), " +
  "or point GGLIB_LLAMA_SERVER at an existing llama-server binary.";

/**
 * Finds llama-server: GGLIB_LLAMA_SERVER → the configured path → the install under the data dir → PATH.
 * An explicit choice (env or configured) that is broken is an error, not a silent fallback.
 */
export async function resolveLlamaServer(
  opts: { configured?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ResolvedBinary> {
  const env = opts.env ?? process.env;
  const looked: string[] = [];
  const explicit: [string | undefined, BinarySource][] = [
    [env.GGLIB_LLAMA_SERVER, "env"],
    [opts.configured, "configured"],
  ];
  for (const [p, source] of explicit) {
    if (!p) continue;
    await checkExecutable(p, source === "env" ? "GGLIB_LLAMA_SERVER" : "the configured llama-server path");
    return { path: p, source };
  }
  const installed = paths.llamaServerBinary(env);
  looked.push(installed);
  if (await isExecutable(installed)) return { path: installed, source: "installed" };
  const exe = process.platform === "win32" ? "llama-server.exe" : "llama-server";
  const onPath = await which("llama-server", env);
  if (onPath) return { path: onPath, source: "path" };
  looked.push(`${exe} on PATH`);
  throw new GglibError(
    "binary_not_found",
    `llama-server binary not found (looked in: GGLIB_LLAMA_SERVER, ${looked.join(", ")}).`,
    {
      hint: INSTALL_HINT,
    },
  );
}

async function checkExecutable(p: string, what: string): Promise<void> {
  let st;
  try {
    st = await stat(p);
  } catch {
    throw new GglibError("binary_not_found", `llama-server binary not found at ${p} (from ${what}).`, {
      binaryPath: p,
      hint: INSTALL_HINT,
    });
  }
  if (!st.isFile()) {
    throw new GglibError("binary_not_found", `${p} (from ${what}) is not a file.`, {
      binaryPath: p,
      hint: INSTALL_HINT,
    });
  }
  try {
    await access(p, constants.X_OK);
  } catch {
    throw new GglibError("binary_not_executable", `${p} (from ${what}) is not executable.`, {
      binaryPath: p,
      hint: `Make it executable (chmod +x ${p}) or ${INSTALL_HINT.charAt(0).toLowerCase()}${INSTALL_HINT.slice(1)}`,
    });
  }
}
