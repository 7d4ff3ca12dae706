/**
 * `--source` installs through the real code path (dependency check → source-build.ts → cmake → verify → swap →
 * record) with a tiny CMake project whose `llama-server` is a C program that answers --version like llama.cpp.
 * A real build, a few seconds each.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installLlama, type InstallReporter } from "../../src/llama/install/install.js";
import { llamaStatus } from "../../src/llama/install/status.js";
import { updateLlama } from "../../src/llama/install/update.js";
import { isGglibError } from "../../src/core/errors.js";
import { setFakeLlamaVersion as setVersion, writeFakeLlamaProject } from "../support/fake-llama-project.js";

function git(cwd: string, ...args: string[]): string {
  return execFileSync(
    "git",
    ["-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=master", ...args],
    { cwd, encoding: "utf8" },
  ).trim();
}

function setup(t: { after: (fn: () => void) => void }) {
  const root = mkdtempSync(join(tmpdir(), "gglib-srcinst-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv & { GGLIB_DATA_DIR: string; GGLIB_CACHE_DIR: string } = {
    ...process.env,
    GGLIB_DATA_DIR: join(root, "data"),
    GGLIB_CACHE_DIR: join(root, "cache"),
  };
  delete env.GGLIB_LLAMA_SERVER;
  return { root, env };
}

function recorder(): { rep: InstallReporter; steps: string[]; fractions: number[] } {
  const steps: string[] = [];
  const fractions: number[] = [];
  return { rep: { step: (m) => steps.push(m), progress: (f) => fractions.push(f) }, steps, fractions };
}

describe("llama install --source", () => {
  test("a folder: builds, reports stages and cmake progress, installs with a record; status reads it", async (t) => {
    const { root, env } = setup(t);
    const src = writeFakeLlamaProject(join(root, "proj"));
    const { rep, steps, fractions } = recorder();
    const r = await installLlama({ env, source: src, backend: "cpu", jobs: 2, reporter: rep });
    assert.equal(r.changed, true);
    assert.deepEqual(steps, [
      "Checking build tools",
      `Preparing ${src}`,
      "Configuring (cmake)",
      "Building llama-server",
      "Installing",
    ]);
    assert.ok(fractions.length >= 2, `progress lines: ${fractions.join(",")}`);
    assert.equal(fractions.at(-1), 1);
    assert.ok(
      fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!),
      "progress never goes back",
    );
    const rec = r.record;
    assert.equal(rec.installType, "source");
    assert.equal(rec.sourceKind, "dir");
    assert.equal(rec.source, src);
    assert.equal(rec.backend, "cpu");
    assert.equal(rec.version, "9.9.9-fake (build 3, commit 0000000)");
    assert.ok(rec.cmakeFlags.includes("-DLLAMA_CURL=OFF") && rec.cmakeFlags.includes("-DBUILD_SHARED_LIBS=OFF"));
    assert.ok(existsSync(rec.logFile!), "the build log is kept with the install");
    assert.match(readFileSync(rec.logFile!, "utf8"), /\$ cmake --build/);
    assert.equal(rec.binaryPath, join(env.GGLIB_DATA_DIR, "llama", "bin", "llama-server"));
    assert.ok(rec.cmakeFlags.includes("-DGGML_RPC=ON"), "the RPC backend is built in");
    // the RPC worker (target ggml-rpc-server in this tree) is installed as rpc-server beside llama-server
    assert.ok(existsSync(join(env.GGLIB_DATA_DIR, "llama", "bin", "rpc-server")));
    const st = await llamaStatus(env);
    assert.equal(st.healthy, true);
    assert.match(st.versionText!, /9\.9\.9-fake/);
  });

  test("a git bundle: commit recorded; update rebuilds only when the bundle has a new commit", async (t) => {
    const { root, env } = setup(t);
    const repo = writeFakeLlamaProject(join(root, "repo"), "1.0.0");
    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-q", "-m", "one");
    const bundle = join(root, "llama.bundle");
    git(repo, "bundle", "create", bundle, "HEAD", "master");
    const head1 = git(repo, "rev-parse", "HEAD");

    const r = await installLlama({ env, source: bundle, backend: "cpu" });
    assert.equal(r.record.sourceKind, "bundle");
    assert.equal(r.record.commit, head1);
    assert.match(r.record.version, /^1\.0\.0/);

    const same = await updateLlama({ env });
    assert.equal(same.changed, false, "same bundle HEAD: up to date");

    setVersion(repo, "1.1.0");
    git(repo, "commit", "-q", "-am", "two");
    rmSync(bundle);
    git(repo, "bundle", "create", bundle, "HEAD", "master");
    const upd = await updateLlama({ env });
    assert.equal(upd.changed, true);
    assert.equal(upd.record.commit, git(repo, "rev-parse", "HEAD"));
    assert.match((await llamaStatus(env)).versionText!, /version: 1\.1\.0/);
  });

  test("a git URL (file://): shallow clone of a ref; update checks the remote head first", async (t) => {
    const { root, env } = setup(t);
    const repo = writeFakeLlamaProject(join(root, "repo"), "3.0.0");
    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-q", "-m", "one");
    const url = `file://${repo}`;
    const r = await installLlama({ env, source: url, backend: "cpu", version: "master" });
    assert.equal(r.record.sourceKind, "url");
    assert.equal(r.record.tag, "master");
    assert.equal(r.record.commit, git(repo, "rev-parse", "HEAD"));
    const { rep, steps } = recorder();
    const same = await updateLlama({ env, reporter: rep });
    assert.equal(same.changed, false, "remote head unchanged");
    assert.deepEqual(steps, [], "nothing was cloned or built");
    setVersion(repo, "3.1.0");
    git(repo, "commit", "-q", "-am", "two");
    const upd = await updateLlama({ env });
    assert.equal(upd.changed, true);
    assert.equal(upd.record.commit, git(repo, "rev-parse", "HEAD"));
    assert.match((await llamaStatus(env)).versionText!, /3\.1\.0/);
  });

  test("a failing build names its log, and the working install stays", async (t) => {
    const { root, env } = setup(t);
    const src = writeFakeLlamaProject(join(root, "proj"), "1.0.0");
    await installLlama({ env, source: src, backend: "cpu" });
    writeFileSync(join(src, "b.c"), "int fake_b(void) { return ; syntax error here }\n");
    await assert.rejects(installLlama({ env, source: src, backend: "cpu", force: true }), (e) => {
      assert.ok(isGglibError(e, "build_failed"), String(e));
      const log = /Full build log: (\S+)/.exec(e.details.hint ?? "")?.[1];
      assert.ok(log, e.describe());
      assert.match(readFileSync(log, "utf8"), /b\.c.*error/);
      return true;
    });
    const st = await llamaStatus(env);
    assert.equal(st.healthy, true);
    assert.match(st.versionText!, /1\.0\.0/);
  });

  test("missing build tools are listed with how to install them; nothing is built", async (t) => {
    const { root, env } = setup(t);
    const src = writeFakeLlamaProject(join(root, "proj"));
    // a PATH with git and a compiler but no cmake
    const bin = join(root, "bin");
    mkdirSync(bin);
    for (const tool of ["git", "c++", "cc", "sh"]) {
      const p = execFileSync("sh", ["-c", `command -v ${tool} || true`], { encoding: "utf8" }).trim();
      if (p) symlinkSync(p, join(bin, tool));
    }
    await assert.rejects(installLlama({ env: { ...env, PATH: bin, CXX: "" }, source: src, backend: "cpu" }), (e) => {
      assert.ok(isGglibError(e, "build_failed"));
      assert.match(e.message, /Missing build tools: cmake/);
      assert.match(e.details.hint ?? "", /✗ cmake: not found/);
      assert.match(e.details.hint ?? "", /install/i);
      return true;
    });
    assert.equal(existsSync(join(env.GGLIB_DATA_DIR, "llama")), false);
  });

  test("a source that does not exist is refused before any work", async (t) => {
    const { root, env } = setup(t);
    await assert.rejects(
      installLlama({ env, source: join(root, "nope"), backend: "cpu" }),
      (e) => isGglibError(e) && /no such folder or file/.test(e.message),
    );
  });
});
