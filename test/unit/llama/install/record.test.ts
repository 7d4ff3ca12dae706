import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isSameBuild, type InstallRecord } from "../../../../src/llama/install/record.js";
import { cmakeFlagsFor, definesTarget } from "../../../../src/llama/install/source-build.js";

const COMMIT = "80fb11ac73e66d89eae2c6a91d8a77428fa733ed";
const record = (over: Partial<InstallRecord> = {}): InstallRecord => ({
  schema: 1,
  installType: "source",
  version: "0.4.0-dev (build 1, commit 80fb11a)",
  commit: COMMIT,
  backend: "cpu",
  cmakeFlags: cmakeFlagsFor("cpu"),
  source: "/cache/llama-src/node-llama-cpp@3.21.1/gitRelease.bundle",
  sourceKind: "bundle",
  binaryPath: "/data/llama/bin/llama-server",
  installedAt: "2026-01-01T00:00:00.000Z",
  ...over,
});
const want = { commit: COMMIT, backend: "cpu" as const, cmakeFlags: cmakeFlagsFor("cpu"), patches: [] };

test("the same commit, backend and cmake flags from source is the same build", () => {
  assert.equal(isSameBuild(record(), want), true);
  assert.equal(isSameBuild(record({ commit: "80fb11a" }), want), true, "a short sha from --version");
  assert.equal(isSameBuild(record({ commit: COMMIT.toUpperCase() }), want), true);
});

test("another commit, backend, flag set or a prebuilt is not", () => {
  assert.equal(isSameBuild(record({ commit: "0123456789abcdef" }), want), false);
  assert.equal(isSameBuild(record({ commit: "unknown" }), want), false);
  assert.equal(isSameBuild(record({ backend: "cuda", cmakeFlags: cmakeFlagsFor("cuda") }), want), false);
  assert.equal(isSameBuild(record({ cmakeFlags: [...cmakeFlagsFor("cpu"), "-DGGML_NATIVE=OFF"] }), want), false);
  assert.equal(isSameBuild(record({ cmakeFlags: [...cmakeFlagsFor("cpu")].reverse() }), want), false);
  assert.equal(isSameBuild(record({ installType: "prebuilt", cmakeFlags: [] }), { ...want, cmakeFlags: [] }), false);
});

test("our source patches are part of a build's identity", () => {
  const patched = { ...want, patches: ["slot-checkpoints@0123abcd"] };
  assert.equal(isSameBuild(record({ patches: ["slot-checkpoints@0123abcd"] }), patched), true);
  assert.equal(isSameBuild(record(), patched), false, "an unpatched build of the same commit is another binary");
  assert.equal(isSameBuild(record({ patches: ["slot-checkpoints@0123abcd"] }), want), false);
  assert.equal(
    isSameBuild(record({ patches: ["slot-checkpoints@ffffffff"] }), patched),
    false,
    "a changed patch is another build",
  );
});

test("a source tree's optional targets are found in its CMakeLists", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-src-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "tools", "cli"), { recursive: true });
  writeFileSync(
    join(dir, "tools", "cli", "CMakeLists.txt"),
    "set(TARGET llama-cli)\nadd_executable(${TARGET} main.cpp)\n",
  );
  mkdirSync(join(dir, "examples", "simple"), { recursive: true });
  writeFileSync(join(dir, "examples", "simple", "CMakeLists.txt"), "add_executable(llama-simple simple.cpp)\n");
  assert.equal(definesTarget(dir, "llama-cli"), true);
  assert.equal(definesTarget(dir, "llama-simple"), true);
  assert.equal(definesTarget(dir, "llama-c"), false, "a prefix is not the target");
  assert.equal(definesTarget(dir, "llama-server"), false);
  assert.equal(definesTarget(join(dir, "nowhere"), "llama-cli"), false);
});
