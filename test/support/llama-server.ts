/**
 * The test rig's real llama-server: built once from the llama.cpp source that the npm package
 * node-llama-cpp@3.21.1 ships (llama/gitRelease.bundle), CPU only, cached by commit outside the repo:
 *   <cacheDir>/rig/llama.cpp-<commit>-cpu/bin/{llama-server,llama-cli}
 * It uses the same code as `gglib llama install --source` (src/llama/install/source-build.ts).
 * GGLIB_TEST_LLAMA_SERVER overrides it with a binary you already have.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../../src/core/paths.js";
import { buildFromSource } from "../../src/llama/install/source-build.js";
import { fetchLlamaSourceBundle } from "../../src/llama/install/npm-bundle.js";

export const RIG_PACKAGE = "node-llama-cpp@3.21.1";
/** HEAD of the bundle in node-llama-cpp@3.21.1 (llama.cpp v0.4.0). */
export const RIG_COMMIT = "80fb11ac73e66d89eae2c6a91d8a77428fa733ed";

export function rigDir(): string {
  return join(cacheDir(), "rig");
}

export function rigInstallDir(): string {
  return join(rigDir(), `llama.cpp-${RIG_COMMIT.slice(0, 12)}-cpu`);
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function withLock<T>(lockDir: string, fn: () => Promise<T>, log: (s: string) => void): Promise<T> {
  const owner = join(lockDir, "owner");
  let waitedMsg = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(owner, String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = Number(existsSync(owner) ? readFileSync(owner, "utf8") : "0");
      if (!holder || !pidAlive(holder)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!waitedMsg) log(`waiting for another build of llama-server (pid ${holder})…`);
      waitedMsg = true;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

export interface EnsureOptions {
  log?: (line: string) => void;
  onProgress?: (fraction: number) => void;
}

/** Absolute path of a working llama-server for tests; builds it the first time (10-20 min on 2 cores). */
export async function ensureLlamaServer(opts: EnsureOptions = {}): Promise<string> {
  const fromEnv = process.env.GGLIB_TEST_LLAMA_SERVER;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`GGLIB_TEST_LLAMA_SERVER=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const bin = join(rigInstallDir(), "bin", "llama-server");
  if (isExecutable(bin)) return bin;
  const log = opts.log ?? ((s: string) => process.stderr.write(s + "\n"));
  mkdirSync(rigDir(), { recursive: true });
  return withLock(
    join(rigDir(), ".build-lock"),
    async () => {
      if (isExecutable(bin)) return bin;
      const bundle = await fetchLlamaSourceBundle({ packageSpec: RIG_PACKAGE, log });
      log(`building llama-server ${RIG_COMMIT.slice(0, 7)} (CPU) into ${rigInstallDir()}`);
      let lastPct = -1;
      const res = await buildFromSource({
        source: bundle,
        backend: "cpu",
        workDir: join(rigDir(), "work"),
        installDir: rigInstallDir(),
        targets: ["llama-server", "llama-cli"],
        logFile: join(rigDir(), "build.log"),
        onStage: (s) => log(`  ${s}…`),
        onProgress: (f) => {
          opts.onProgress?.(f);
          const pct = Math.floor(f * 10) * 10;
          if (pct > lastPct) {
            lastPct = pct;
            log(`  build ${pct}%`);
          }
        },
      });
      if (res.commit !== RIG_COMMIT) log(`note: the bundle's commit is ${res.commit}, expected ${RIG_COMMIT}`);
      log(`built ${res.binaryPath} (${res.version ?? "unknown version"}) in ${(res.durationMs / 1000).toFixed(0)} s`);
      // the build tree is not needed once the static binaries are installed
      rmSync(join(rigDir(), "work"), { recursive: true, force: true });
      return res.binaryPath;
    },
    log,
  );
}

/** llama-cli next to the rig's llama-server. */
export async function ensureLlamaCli(): Promise<string> {
  const server = await ensureLlamaServer();
  return join(server, "..", "llama-cli");
}
