/**
 * One llama.cpp build per machine: the test rig uses an install in the data dir of the same commit and build
 * flags instead of building its own, and `npm run setup` installs the rig's build instead of compiling again.
 * Fake binaries (they answer `--version`) stand in for the real ones; nothing is built.
 */
import { test, describe, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { paths } from "../../src/core/paths.js";
import { resolveLlamaServer } from "../../src/llama/binary.js";
import { adoptBuild } from "../../src/llama/install/install.js";
import { readInstallRecord, writeInstallRecord, type InstallRecord } from "../../src/llama/install/record.js";
import { cmakeFlagsFor } from "../../src/llama/install/source-build.js";
import {
  RIG_BINARIES,
  RIG_BUILD,
  RIG_COMMIT,
  findRigLlamaServer,
  rigBuildFor,
  rigInstallDir,
} from "../support/llama-server.js";

const VERSION_SCRIPT = `#!/bin/sh\necho "version: 0.4.0-dev (build 1, commit ${RIG_COMMIT.slice(0, 7)})" >&2\nexit 0\n`;

function fakeBinaries(binDir: string, names: readonly string[] = RIG_BINARIES): void {
  mkdirSync(binDir, { recursive: true });
  for (const n of names) {
    writeFileSync(join(binDir, n), VERSION_SCRIPT);
    chmodSync(join(binDir, n), 0o755);
  }
}

let dir = "";
let env: NodeJS.ProcessEnv = {};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gglib-rig-reuse-"));
  env = { ...process.env, GGLIB_DATA_DIR: join(dir, "data"), GGLIB_CACHE_DIR: join(dir, "cache") };
  delete env.GGLIB_TEST_LLAMA_SERVER;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** An install in the data dir as `gglib llama install --source <bundle>` leaves it. */
async function installed(over: Partial<InstallRecord> = {}, binaries?: string[]): Promise<string> {
  fakeBinaries(join(paths.llamaDir(env), "bin"), binaries);
  const record: InstallRecord = {
    schema: 1,
    installType: "source",
    version: "0.4.0-dev (build 1, commit 80fb11a)",
    commit: RIG_COMMIT,
    backend: "cpu",
    cmakeFlags: cmakeFlagsFor("cpu"),
    patches: [...RIG_BUILD.patches],
    source: join(dir, "cache", "llama-src", "gitRelease.bundle"),
    sourceKind: "bundle",
    binaryPath: paths.llamaServerBinary(env),
    installedAt: new Date().toISOString(),
    ...over,
  };
  await writeInstallRecord(paths.llamaInstallRecord(env), record);
  return record.binaryPath;
}

describe("the rig reuses an installed llama-server of its commit and flags", () => {
  test("same commit, backend, flags and patches, llama-cli and rpc-server beside it: the installed binary, no build", async () => {
    const bin = await installed();
    assert.equal(await findRigLlamaServer(env), bin);
    assert.equal(existsSync(rigInstallDir(env)), false, "nothing built or written for the rig");
  });

  test("other flags, another commit, no patches, no llama-cli or no rpc-server: the rig builds its own", async () => {
    await installed({ cmakeFlags: [...cmakeFlagsFor("cpu"), "-DGGML_NATIVE=OFF"] });
    assert.equal(await findRigLlamaServer(env), undefined);
    await installed({ commit: "0123456789abcdef0123456789abcdef01234567" });
    assert.equal(await findRigLlamaServer(env), undefined);
    await installed({ patches: [] }); // built before gglib's llama.cpp patches
    assert.equal(await findRigLlamaServer(env), undefined);
    rmSync(paths.llamaDir(env), { recursive: true, force: true });
    await installed({}, ["llama-server"]);
    assert.equal(await findRigLlamaServer(env), undefined);
    rmSync(paths.llamaDir(env), { recursive: true, force: true });
    await installed({}, ["llama-server", "llama-cli"]); // a build from before the RPC backend
    assert.equal(await findRigLlamaServer(env), undefined);
  });
});

describe("setup installs the rig's build instead of building again", () => {
  test("the rig's build becomes the data dir's install, which the rig then reuses", async () => {
    fakeBinaries(join(rigInstallDir(env), "bin"));
    // a rig build made before build records: its record is written when it is found
    assert.equal(await findRigLlamaServer(env), join(rigInstallDir(env), "bin", "llama-server"));
    assert.ok(existsSync(join(rigInstallDir(env), "install.json")));

    assert.equal(await rigBuildFor("cuda", env), undefined, "a CUDA machine gets a CUDA build, not the rig's");
    const record = await rigBuildFor("cpu", env);
    assert.ok(record);
    const r = await adoptBuild({ from: rigInstallDir(env), record, env });
    assert.equal(r.changed, true);
    assert.match(r.versionText ?? "", /commit 80fb11a/);

    const rec = readInstallRecord(paths.llamaInstallRecord(env));
    assert.equal(rec?.commit, RIG_COMMIT);
    assert.equal(rec?.backend, "cpu");
    assert.deepEqual(rec?.cmakeFlags, cmakeFlagsFor("cpu"));
    assert.equal(rec?.binaryPath, paths.llamaServerBinary(env));
    assert.ok(existsSync(join(paths.llamaDir(env), "bin", "llama-cli")));
    assert.ok(existsSync(join(paths.llamaDir(env), "bin", "rpc-server")));
    assert.deepEqual(await resolveLlamaServer({ env }), { path: paths.llamaServerBinary(env), source: "installed" });

    // with the rig's cache gone, the rig finds the install setup made
    rmSync(rigInstallDir(env), { recursive: true, force: true });
    assert.equal(await findRigLlamaServer(env), paths.llamaServerBinary(env));
  });

  test("no rig build: nothing to adopt", async () => {
    assert.equal(await rigBuildFor("cpu", env), undefined);
  });
});
