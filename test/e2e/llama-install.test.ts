/**
 * `gglib llama …` end to end, as a user runs it (the CLI in a child process, non-TTY):
 *  1. `llama install --source <git bundle>` builds (a tiny CMake stand-in for llama.cpp) with a progress bar,
 *     then `llama status` reports it;
 *  2. `llama install` downloads the REAL llama-server (the test rig's build, packed like a llama.cpp release and
 *     served locally), `llama status` reports its real version, and `gglib serve` runs a tiny model with the
 *     installed binary, answering the openai client.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";
import { writeFakeLlamaProject } from "../support/fake-llama-project.js";
import {
  assetName,
  hostCpuAssetSuffix,
  makeReleaseArchive,
  startFakeReleaseServer,
} from "../support/fake-release-server.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const TSX = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));

function cliEnv(root: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GGLIB_DATA_DIR: join(root, "data"),
    GGLIB_CACHE_DIR: join(root, "cache"),
    NO_COLOR: "1",
    ...extra,
  };
  delete env.GGLIB_LLAMA_SERVER;
  delete env.FORCE_COLOR;
  return env;
}

/** Runs the CLI to completion (async, so a local HTTP server in this process can answer it). */
function gglib(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [MAIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("gglib llama (CLI)", () => {
  test("install --source <bundle> builds with progress; status reports it; uninstall removes it", async (t) => {
    const root = mkdtempSync(join(tmpdir(), "gglib-e2e-llama-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const repo = writeFakeLlamaProject(join(root, "repo"), "7.7.7-e2e");
    const git = (...a: string[]) =>
      execFileSync(
        "git",
        ["-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=master", ...a],
        { cwd: repo, encoding: "utf8" },
      ).trim();
    git("init", "-q");
    git("add", ".");
    git("commit", "-q", "-m", "fake llama.cpp");
    const bundle = join(root, "llama.bundle");
    git("bundle", "create", bundle, "HEAD", "master");
    const env = cliEnv(root);

    const inst = await gglib(
      env,
      "llama",
      "install",
      "--source",
      bundle,
      "--version",
      "master",
      "--backend",
      "cpu",
      "--jobs",
      "2",
    );
    assert.equal(inst.code, 0, inst.stderr);
    assert.match(inst.stderr, /→ Cloning /);
    assert.match(inst.stderr, /→ Building llama-server/);
    // non-TTY: the progress bar prints plain lines, ending at 100%
    assert.match(inst.stderr, /Building llama-server \d+%/);
    assert.match(inst.stderr, /Building llama-server 100%/);
    assert.match(inst.stderr, /✓ llama\.cpp 7\.7\.7-e2e .*\(cpu\) installed/);

    const st = await gglib(env, "llama", "status", "--json");
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout);
    assert.equal(s.healthy, true);
    assert.equal(s.record.sourceKind, "bundle");
    assert.equal(s.record.tag, "master", "--version reaches `llama install` (not the program's --version)");
    assert.equal(s.record.commit, git("rev-parse", "HEAD"));
    assert.match(s.versionText, /7\.7\.7-e2e/);
    const human = await gglib(env, "llama", "status");
    assert.match(human.stdout, /installed, working/);
    assert.match(human.stdout, /backend:\s+cpu/);

    const again = await gglib(env, "llama", "install", "--backend", "cpu");
    assert.equal(again.code, 0);
    assert.match(again.stderr, /already installed/);

    const un = await gglib(env, "llama", "uninstall");
    assert.equal(un.code, 1, "non-TTY without --yes refuses");
    assert.match(un.stderr, /--yes/);
    const un2 = await gglib(env, "llama", "uninstall", "--yes");
    assert.equal(un2.code, 0, un2.stderr);
    const gone = await gglib(env, "llama", "status");
    assert.equal(gone.code, 1);
    assert.match(gone.stdout, /not installed/);
  });

  test("a failed build prints the path of its full log", async (t) => {
    const root = mkdtempSync(join(tmpdir(), "gglib-e2e-llama-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const src = writeFakeLlamaProject(join(root, "proj"));
    const { writeFileSync, readFileSync } = await import("node:fs");
    writeFileSync(join(src, "a.c"), "int fake_a(void) { return }\n");
    const r = await gglib(cliEnv(root), "llama", "install", "--source", src, "--backend", "cpu");
    assert.equal(r.code, 1);
    const log = /Full build log: (\S+)/.exec(r.stderr)?.[1];
    assert.ok(log, r.stderr);
    assert.match(readFileSync(log, "utf8"), /a\.c/);
  });

  test("prebuilt install of the real llama-server, then gglib serve runs a tiny model with it", async (t) => {
    const real = await ensureLlamaServer();
    const root = mkdtempSync(join(tmpdir(), "gglib-e2e-llama-"));
    t.after(() => {
      for (const pid of pidsWithArg(root)) killQuietly(pid);
      rmSync(root, { recursive: true, force: true });
    });
    const stage = join(root, "stage");
    mkdirSync(stage);
    copyFileSync(real, join(stage, "llama-server"));
    chmodSync(join(stage, "llama-server"), 0o755);
    const { readFileSync } = await import("node:fs");
    const archive = makeReleaseArchive(root, "tar.gz", { "llama-server": readFileSync(join(stage, "llama-server")) });
    const srv = await startFakeReleaseServer({ [assetName(hostCpuAssetSuffix())]: { body: archive } });
    t.after(() => srv.close());
    const env = cliEnv(root, { GGLIB_LLAMA_RELEASES_URL: srv.releasesUrl });

    const inst = await gglib(env, "llama", "install", "--backend", "cpu", "--json");
    assert.equal(inst.code, 0, inst.stderr);
    const rec = JSON.parse(inst.stdout).record;
    assert.equal(rec.installType, "prebuilt");
    assert.match(inst.stderr, /→ Downloading llama-b9999-bin-/);
    const st = JSON.parse((await gglib(env, "llama", "status", "--json")).stdout);
    assert.equal(st.healthy, true);
    assert.match(st.versionText, /^version: \S+ \(build \d+, commit [0-9a-f]+\)/m, "the real llama-server's --version");

    const model = await writeTinyModel(root, { name: "tiny", kind: "chat" });
    const child = spawn(
      TSX,
      [MAIN, "serve", model, "--base-port", String(20000 + Math.floor(Math.random() * 20000)), "--json"],
      { env, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    t.after(() => killQuietly(child.pid));
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    for (let i = 0; i < 1200 && !out.includes('"event":"ready"') && child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(out.includes('"event":"ready"'), `serve did not get ready: ${out}\n${err}`);
    const ready = JSON.parse(out.split("\n").find((l) => l.includes('"event":"ready"'))!) as {
      url: string;
      pid: number;
    };
    assert.equal(
      readFileSync(`/proc/${ready.pid}/cmdline`, "utf8").split("\0")[0],
      rec.binaryPath,
      "served by the installed binary",
    );
    const client = new OpenAI({ baseURL: `${ready.url}/v1`, apiKey: "none" });
    const res = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
    });
    assert.equal(res.choices.length, 1);
    assert.ok(typeof res.choices[0]!.message.content === "string");
  });
});
