import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveLlamaCli, resolveLlamaServer } from "../../../src/llama/binary.js";
import { GglibError } from "../../../src/core/errors.js";

let dir: string;
const exe = (p: string, mode = 0o755) => {
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, "#!/bin/sh\n");
  chmodSync(p, mode);
  return p;
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), "gglib-bin-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("resolveLlamaServer", () => {
  test("order: GGLIB_LLAMA_SERVER → configured → data-dir install → PATH", async () => {
    const fromEnv = exe(join(dir, "env", "llama-server"));
    const configured = exe(join(dir, "conf", "llama-server"));
    const data = join(dir, "data");
    const installed = exe(join(data, "llama", "bin", "llama-server"));
    const onPath = exe(join(dir, "path", "llama-server"));
    const env = { GGLIB_DATA_DIR: data, PATH: join(dir, "path") };
    assert.deepEqual(await resolveLlamaServer({ env: { ...env, GGLIB_LLAMA_SERVER: fromEnv }, configured }), {
      path: fromEnv,
      source: "env",
    });
    assert.deepEqual(await resolveLlamaServer({ env, configured }), { path: configured, source: "configured" });
    assert.deepEqual(await resolveLlamaServer({ env }), { path: installed, source: "installed" });
    assert.deepEqual(
      await resolveLlamaServer({
        env: { GGLIB_DATA_DIR: join(dir, "empty"), PATH: `/nonexistent:${join(dir, "path")}` },
      }),
      { path: onPath, source: "path" },
    );
  });

  test("an explicit binary that is broken is an error, not a silent fallback", async () => {
    const notExec = exe(join(dir, "noexec", "llama-server"), 0o644);
    await assert.rejects(resolveLlamaServer({ env: { GGLIB_LLAMA_SERVER: notExec, PATH: "" } }), (e: unknown) => {
      assert.ok(e instanceof GglibError && e.kind === "binary_not_executable");
      assert.match(e.message, /GGLIB_LLAMA_SERVER/);
      assert.match(e.details.hint ?? "", /chmod \+x/);
      return true;
    });
    await assert.rejects(
      resolveLlamaServer({ env: { PATH: "" }, configured: join(dir, "missing") }),
      (e: unknown) => e instanceof GglibError && e.kind === "binary_not_found",
    );
  });

  test("nothing found: says where it looked and how to install", async () => {
    await assert.rejects(
      resolveLlamaServer({ env: { GGLIB_DATA_DIR: join(dir, "none"), PATH: join(dir, "none-bin") } }),
      (e: unknown) => {
        assert.ok(e instanceof GglibError && e.kind === "binary_not_found");
        assert.match(e.message, /looked in/);
        assert.match(e.details.hint ?? "", /gglib llama install/);
        return true;
      },
    );
  });
});

describe("resolveLlamaCli", () => {
  test("order: GGLIB_LLAMA_CLI → beside the llama-server in use → the data-dir install → PATH", async () => {
    const root = join(dir, "cli");
    const fromEnv = exe(join(root, "env", "llama-cli"));
    const server = exe(join(root, "server", "llama-server"));
    const beside = exe(join(root, "server", "llama-cli"));
    const data = join(root, "data");
    const installed = exe(join(data, "llama", "bin", "llama-cli"));
    const onPath = exe(join(root, "path", "llama-cli"));
    const env = { GGLIB_DATA_DIR: data, PATH: join(root, "path") };
    assert.equal(await resolveLlamaCli({ ...env, GGLIB_LLAMA_CLI: fromEnv }), fromEnv);
    assert.equal(await resolveLlamaCli({ ...env, GGLIB_LLAMA_SERVER: server }), beside);
    assert.equal(await resolveLlamaCli(env), installed, "the installed llama-server has no llama-cli beside it");
    assert.equal(await resolveLlamaCli({ GGLIB_DATA_DIR: join(root, "empty"), PATH: join(root, "path") }), onPath);
  });

  test("a broken GGLIB_LLAMA_CLI is an error; nothing found says where it looked", async () => {
    await assert.rejects(
      resolveLlamaCli({ GGLIB_LLAMA_CLI: join(dir, "no-such-cli"), PATH: "" }),
      (e: unknown) =>
        e instanceof GglibError && e.kind === "binary_not_executable" && /GGLIB_LLAMA_CLI/.test(e.message),
    );
    await assert.rejects(
      resolveLlamaCli({ GGLIB_DATA_DIR: join(dir, "none"), PATH: join(dir, "none-bin") }),
      (e: unknown) => {
        assert.ok(e instanceof GglibError && e.kind === "binary_not_found");
        assert.match(e.details.hint ?? "", /Looked in: .*gglib llama install.*GGLIB_LLAMA_CLI/);
        return true;
      },
    );
  });
});
