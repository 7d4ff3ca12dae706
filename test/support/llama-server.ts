/**
 * The test rig's real llama-server: llama.cpp built from the source that the npm package node-llama-cpp ships
 * (llama/gitRelease.bundle, the same package `npm run setup` builds from), CPU only. One build per machine:
 *  - an install in the data dir (`gglib llama install --source`, what `npm run setup` does offline) of the same
 *    commit and build flags, with llama-cli beside it, is used as it is;
 *  - otherwise the rig builds once, cached by commit outside the repo, with an install record next to it:
 *      <cacheDir>/rig/llama.cpp-<commit>-cpu/{bin/llama-server, bin/llama-cli, install.json}
 *    and `npm run setup` installs that build instead of compiling again (see scripts/setup.ts).
 * It uses the same code as `gglib llama install --source` (src/llama/install/source-build.ts).
 * GGLIB_TEST_LLAMA_SERVER overrides it with a binary you already have.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { cacheDir, paths } from "../../src/core/paths.js";
import { LLAMA_SOURCE_PACKAGE, fetchLlamaSourceBundle } from "../../src/llama/install/npm-bundle.js";
import {
  isSameBuild,
  readInstallRecord,
  writeInstallRecord,
  type BuildIdentity,
  type InstallRecord,
} from "../../src/llama/install/record.js";
import { RPC_SERVER_TARGETS, buildFromSource, cmakeFlagsFor } from "../../src/llama/install/source-build.js";
import { LLAMA_PATCHES, patchId } from "../../src/llama/install/patches.js";
import { createHash } from "node:crypto";
import { pidAlive } from "../../src/process/terminate/signals.js";
import { isExecutable } from "../../src/process/which.js";

export const RIG_PACKAGE = LLAMA_SOURCE_PACKAGE;
/** HEAD of the bundle in node-llama-cpp@3.21.1 (llama.cpp v0.4.0). */
export const RIG_COMMIT = "80fb11ac73e66d89eae2c6a91d8a77428fa733ed";
/** What the rig builds, our patches included (src/llama/install/patches.ts); the same identity is the same binary. */
export const RIG_BUILD: BuildIdentity = {
  commit: RIG_COMMIT,
  backend: "cpu",
  cmakeFlags: cmakeFlagsFor("cpu"),
  patches: LLAMA_PATCHES.map((p) => patchId(p)),
};

/** A patched build gets its own folder (a hash of the patch ids), so a patch change builds again. */
const RIG_PATCH_SUFFIX =
  RIG_BUILD.patches.length > 0
    ? `-p${createHash("sha256").update(RIG_BUILD.patches.join(",")).digest("hex").slice(0, 8)}`
    : "";

export function rigDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), "rig");
}

export function rigInstallDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(rigDir(env), `llama.cpp-${RIG_COMMIT.slice(0, 12)}-cpu${RIG_PATCH_SUFFIX}`);
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

/** The binaries the rig installs: llama-server, llama-cli beside it, and rpc-server (RPC worker tests). */
export const RIG_BINARIES = ["llama-server", "llama-cli", "rpc-server"] as const;

/** Every rig binary there and executable in `binDir`. */
async function hasRigBinaries(binDir: string): Promise<boolean> {
  for (const t of RIG_BINARIES) if (!(await isExecutable(join(binDir, t)))) return false;
  return true;
}

/** The rig's own build record (written after its build; for a build made before records, written now). */
export function rigRecord(env: NodeJS.ProcessEnv = process.env): InstallRecord {
  const file = join(rigInstallDir(env), "install.json");
  return (
    readInstallRecord(file) ?? {
      schema: 1,
      installType: "source",
      version: `commit ${RIG_COMMIT.slice(0, 7)}`,
      commit: RIG_COMMIT,
      backend: RIG_BUILD.backend,
      cmakeFlags: [...RIG_BUILD.cmakeFlags],
      ...(RIG_BUILD.patches.length > 0 ? { patches: [...RIG_BUILD.patches] } : {}),
      source: RIG_PACKAGE,
      sourceKind: "bundle",
      binaryPath: join(rigInstallDir(env), "bin", "llama-server"),
      installedAt: "",
    }
  );
}

/**
 * Where the rig's llama-server already is, without building: the rig's own build, else an install in the data
 * dir of the same commit and build flags (with llama-cli beside it). Undefined when it has to be built.
 */
export async function findRigLlamaServer(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const own = join(rigInstallDir(env), "bin");
  if (await hasRigBinaries(own)) {
    const file = join(rigInstallDir(env), "install.json");
    if (!existsSync(file)) await writeInstallRecord(file, rigRecord(env));
    return join(own, "llama-server");
  }
  const installed = readInstallRecord(paths.llamaInstallRecord(env));
  if (installed && isSameBuild(installed, RIG_BUILD) && (await hasRigBinaries(dirname(installed.binaryPath))))
    return installed.binaryPath;
  return undefined;
}

/**
 * For `npm run setup`: the rig's own build when it is what a source install for `backend` would build (same
 * commit and flags), so setup installs it instead of compiling again; undefined otherwise.
 */
export async function rigBuildFor(
  backend: BuildIdentity["backend"],
  env: NodeJS.ProcessEnv = process.env,
): Promise<InstallRecord | undefined> {
  if (!(await hasRigBinaries(join(rigInstallDir(env), "bin")))) return undefined;
  const record = rigRecord(env);
  const want = { commit: RIG_COMMIT, backend, cmakeFlags: cmakeFlagsFor(backend), patches: RIG_BUILD.patches };
  return isSameBuild(record, want) ? record : undefined;
}

export interface EnsureOptions {
  log?: (line: string) => void;
  onProgress?: (fraction: number) => void;
}

/** Absolute path of a working llama-server for tests; builds it the first time (10-20 min on 2 cores). */
export async function ensureLlamaServer(opts: EnsureOptions = {}): Promise<string> {
  const fromEnv = process.env.GGLIB_TEST_LLAMA_SERVER;
  if (fromEnv) {
    if (!(await isExecutable(fromEnv))) throw new Error(`GGLIB_TEST_LLAMA_SERVER=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const log = opts.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const found = await findRigLlamaServer();
  if (found) return found;
  mkdirSync(rigDir(), { recursive: true });
  return withLock(
    join(rigDir(), ".build-lock"),
    async () => {
      const again = await findRigLlamaServer();
      if (again) return again;
      const bundle = await fetchLlamaSourceBundle({ packageSpec: RIG_PACKAGE, log });
      log(`building llama-server ${RIG_COMMIT.slice(0, 7)} (CPU) into ${rigInstallDir()}`);
      let lastPct = -1;
      const res = await buildFromSource({
        source: bundle,
        backend: RIG_BUILD.backend,
        workDir: join(rigDir(), "work"),
        installDir: rigInstallDir(),
        targets: ["llama-server", "llama-cli"],
        // the RPC worker's target name depends on the tree (installed as rpc-server either way)
        optionalTargets: [...RPC_SERVER_TARGETS],
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
      for (const p of res.patches.skipped) log(`note: patch ${p.name} not applied: ${p.reason}`);
      log(`built ${res.binaryPath} (${res.version ?? "unknown version"}) in ${(res.durationMs / 1000).toFixed(0)} s`);
      await writeInstallRecord(join(rigInstallDir(), "install.json"), {
        ...rigRecord(),
        version: res.version ?? `commit ${res.commit.slice(0, 7)}`,
        commit: res.commit,
        cmakeFlags: res.cmakeFlags,
        ...(res.patches.applied.length > 0 ? { patches: res.patches.applied } : {}),
        source: bundle,
        installedAt: new Date().toISOString(),
        durationMs: res.durationMs,
      });
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
