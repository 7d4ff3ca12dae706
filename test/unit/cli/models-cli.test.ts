import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../../src/cli/main.js";
import { writeTinyModel } from "../../support/tiny-models.js";

/** Runs `gglib …` in-process with its own data dir; returns the exit code and what it printed. */
async function gglib(dataDir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = {
    out: process.stdout.write.bind(process.stdout),
    err: process.stderr.write.bind(process.stderr),
    env: process.env.GGLIB_DATA_DIR,
    exit: process.exitCode,
  };
  let stdout = "";
  let stderr = "";
  process.env.GGLIB_DATA_DIR = dataDir;
  process.stdout.write = (c: string | Uint8Array) => ((stdout += String(c)), true);
  process.stderr.write = (c: string | Uint8Array) => ((stderr += String(c)), true);
  try {
    const code = await main(["node", "gglib", ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    if (saved.env === undefined) delete process.env.GGLIB_DATA_DIR;
    else process.env.GGLIB_DATA_DIR = saved.env;
    process.exitCode = saved.exit;
  }
}

describe("gglib models", () => {
  test("add with alias, list --json with metadata, show, set, rm", async (t) => {
    const d = mkdtempSync(join(tmpdir(), "gglib-cli-"));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    const data = join(d, "data");
    const model = await writeTinyModel(d, { name: "tiny", kind: "chat" });

    let r = await gglib(data, "models", "add", model, "--alias", "t", "--ctx", "1024", "--json", "--", "--temp", "0.1");
    assert.equal(r.code, 0, r.stderr);
    const added = JSON.parse(r.stdout);
    assert.equal(added.name, "tiny");
    assert.deepEqual(added.aliases, ["t"]);
    assert.deepEqual(added.settings, { ctx: 1024, extraArgs: ["--temp", "0.1"] });

    r = await gglib(data, "models", "list", "--json");
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout);
    assert.equal(list.models.length, 1);
    const m = list.models[0];
    assert.equal(m.name, "tiny");
    assert.equal(m.source, "registry");
    assert.deepEqual(m.aliases, ["t"]);
    assert.equal(m.metadata.architecture, "llama");
    assert.equal(m.metadata.contextLength, 2048);
    assert.equal(m.missing, false);
    assert.deepEqual(list.clashes, []);

    r = await gglib(data, "models", "list");
    assert.match(r.stdout, /^NAME\s+SOURCE/m);
    assert.match(r.stdout, /tiny\s+registry\s+t\s/);

    r = await gglib(data, "models", "show", "t");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /architecture: llama/);

    r = await gglib(data, "models", "set", "t", "ctx=", "jinja=on", "ttl=2m", "aliases=t,tt", "--json");
    assert.equal(r.code, 0, r.stderr);
    const set = JSON.parse(r.stdout);
    assert.deepEqual(set.settings, { jinja: true, extraArgs: ["--temp", "0.1"], ttl: 120 });
    assert.deepEqual(set.aliases, ["t", "tt"]);

    r = await gglib(data, "models", "set", "tiny", "ctx=lots");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Invalid value "lots" for ctx/);

    r = await gglib(data, "models", "add", model, "--name", "tiny");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already the name of a registered model/);

    r = await gglib(data, "models", "rm", "tt");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Removed tiny/);
    r = await gglib(data, "models", "show", "tiny");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /No registered model is called "tiny"/);
  });

  test("list flags clashes with the models dir and the proxy config; scan registers a folder", async (t) => {
    const d = mkdtempSync(join(tmpdir(), "gglib-cli-"));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    const data = join(d, "data");
    const dir = join(d, "models");
    mkdirSync(dir);
    const a = await writeTinyModel(dir, { name: "alpha", kind: "chat" });
    await writeTinyModel(dir, { name: "beta", kind: "think" });
    const elsewhere = join(d, "other");
    mkdirSync(elsewhere);
    copyFileSync(a, join(elsewhere, "alpha.gguf"));
    writeFileSync(join(d, "config.yaml"), `models:\n  beta:\n    path: models/beta.gguf\n    aliases: [b]\n`);

    let r = await gglib(data, "models", "add", join(elsewhere, "alpha.gguf"), "--alias", "b");
    assert.equal(r.code, 0, r.stderr);
    r = await gglib(data, "models", "list", "--json", "--models-dir", dir, "--config", join(d, "config.yaml"));
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout);
    assert.deepEqual(
      list.models.map((m: { name: string; source: string }) => `${m.name}:${m.source}`),
      ["beta:config", "alpha:registry"],
    );
    const clashes = list.clashes
      .map(
        (c: { name: string; winner: { source: string }; loser: { source: string } }) =>
          `${c.name}:${c.winner.source}>${c.loser.source}`,
      )
      .sort();
    assert.deepEqual(clashes, ["alpha:registry>models-dir", "b:config>registry", "beta:config>models-dir"]);
    r = await gglib(data, "models", "list", "--models-dir", dir, "--config", join(d, "config.yaml"));
    assert.match(r.stdout, /Name clashes/);
    assert.match(r.stdout, /alias "b" from registry/);

    const data2 = join(d, "data2");
    r = await gglib(data2, "models", "scan", dir, "--json");
    assert.equal(r.code, 0, r.stderr);
    const scan = JSON.parse(r.stdout);
    assert.deepEqual(scan.added.map((x: { name: string }) => x.name).sort(), ["alpha", "beta"]);
    r = await gglib(data2, "models", "scan", dir, "--json");
    assert.deepEqual(
      JSON.parse(r.stdout).skipped.map((x: { reason: string }) => x.reason.startsWith("already registered")),
      [true, true],
    );
  });

  test("stray arguments before -- are refused", async (t) => {
    const d = mkdtempSync(join(tmpdir(), "gglib-cli-"));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    const model = await writeTinyModel(d, { name: "tiny", kind: "chat" });
    const r = await gglib(join(d, "data"), "models", "add", model, "oops");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Put extra llama-server arguments after --/);
  });
});
