import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveLlamaServer } from "../../../src/llama/binary.js";
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
