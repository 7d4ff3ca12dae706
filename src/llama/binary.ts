import { constants } from "node:fs";
import { dirname, join } from "node:path";
import { access, stat } from "node:fs/promises";
import { GglibError } from "../core/errors.js";
import { paths } from "../core/paths.js";
import { isExecutable, pathCandidates, which } from "../process/which.js";

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

/** llama-cli: GGLIB_LLAMA_CLI → next to the llama-server in use → the gglib install → PATH. */
export async function resolveLlamaCli(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const exe = process.platform === "win32" ? "llama-cli.exe" : "llama-cli";
  const looked: string[] = [];
  if (env.GGLIB_LLAMA_CLI) {
    if (await isExecutable(env.GGLIB_LLAMA_CLI)) return env.GGLIB_LLAMA_CLI;
    throw new GglibError(
      "binary_not_executable",
      `GGLIB_LLAMA_CLI points at ${env.GGLIB_LLAMA_CLI}, which is not an executable file.`,
      {
        hint: "Fix or unset GGLIB_LLAMA_CLI.",
      },
    );
  }
  const candidates: string[] = [];
  try {
    candidates.push(join(dirname((await resolveLlamaServer({ env })).path), exe));
  } catch {
    // no llama-server either: keep looking
  }
  candidates.push(join(paths.llamaDir(env), "bin", exe));
  candidates.push(...pathCandidates("llama-cli", env));
  for (const c of candidates) {
    looked.push(c);
    if (await isExecutable(c)) return c;
  }
  throw new GglibError("binary_not_found", "llama-cli was not found.", {
    hint: `Looked in: ${looked.slice(0, 4).join(", ")}${looked.length > 4 ? ", and PATH" : ""}. Install llama.cpp with \`gglib llama install\`, or set GGLIB_LLAMA_CLI.`,
  });
}

async function checkExecutable(p: string, what: string, binary = "llama-server", hint = INSTALL_HINT): Promise<void> {
  let st;
  try {
    st = await stat(p);
  } catch {
    throw new GglibError("binary_not_found", `${binary} binary not found at ${p} (from ${what}).`, {
      binaryPath: p,
      hint,
    });
  }
  if (!st.isFile()) {
    throw new GglibError("binary_not_found", `${p} (from ${what}) is not a file.`, {
      binaryPath: p,
      hint,
    });
  }
  try {
    await access(p, constants.X_OK);
  } catch {
    throw new GglibError("binary_not_executable", `${p} (from ${what}) is not executable.`, {
      binaryPath: p,
      hint: `Make it executable (chmod +x ${p}) or ${hint.charAt(0).toLowerCase()}${hint.slice(1)}`,
    });
  }
}

/** rpc-server's names: `rpc-server` (llama.cpp's build target), `ggml-rpc-server` (some packages). */
const RPC_SERVER_NAMES =
  process.platform === "win32" ? ["rpc-server.exe", "ggml-rpc-server.exe"] : ["rpc-server", "ggml-rpc-server"];

const RPC_INSTALL_HINT =
  "Run `gglib llama install` (it builds rpc-server next to llama-server; an install made before gglib built the RPC " +
  "backend needs `gglib llama install --force`), or pass --binary / set GGLIB_RPC_SERVER to an rpc-server built with -DGGML_RPC=ON.";

/**
 * Finds llama.cpp's rpc-server: the explicit path (--binary) → GGLIB_RPC_SERVER → beside the llama-server gglib
 * uses (`gglib llama install` puts them in one folder) → PATH. An explicit choice that is broken is an error.
 */
export async function resolveRpcServer(
  opts: { explicit?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ResolvedBinary> {
  const env = opts.env ?? process.env;
  const explicit: [string | undefined, BinarySource, string][] = [
    [opts.explicit, "configured", "--binary"],
    [env.GGLIB_RPC_SERVER, "env", "GGLIB_RPC_SERVER"],
  ];
  for (const [p, source, what] of explicit) {
    if (!p) continue;
    await checkExecutable(p, what, "rpc-server", RPC_INSTALL_HINT);
    return { path: p, source };
  }
  const looked: string[] = [];
  const server = await resolveLlamaServer({ env }).catch(() => undefined);
  if (server) {
    for (const name of RPC_SERVER_NAMES) {
      const beside = join(dirname(server.path), name);
      looked.push(beside);
      if (await isExecutable(beside)) return { path: beside, source: server.source === "path" ? "path" : "installed" };
    }
  }
  for (const name of RPC_SERVER_NAMES) {
    const onPath = await which(name, env);
    if (onPath) return { path: onPath, source: "path" };
  }
  looked.push(`${RPC_SERVER_NAMES.join(" or ")} on PATH`);
  throw new GglibError(
    "binary_not_found",
    `rpc-server binary not found (looked in: GGLIB_RPC_SERVER, ${looked.join(", ")}).`,
    {
      hint: RPC_INSTALL_HINT,
    },
  );
}
