/**
 * One resolver for every command's model argument (src/models/resolve.ts): `gglib chat`, `gglib serve` and
 * `gglib models fit` find the same model, with the same settings, for the same name, alias or path; and the one
 * settings mapping (src/models/settings.ts serverConfigOf) gives them, and the proxy, the same ServerConfig.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveModelArg } from "../../../src/chat/backend.js";
import { fitReport } from "../../../src/cli/commands/models/fit.js";
import { serveConfig } from "../../../src/cli/commands/serve.js";
import { paths } from "../../../src/core/paths.js";
import { isGglibError } from "../../../src/core/errors.js";
import { loadConfigFile } from "../../../src/models/config-file.js";
import { Registry } from "../../../src/models/registry.js";
import { knownModels, resolveModelRef } from "../../../src/models/resolve.js";
import { proxyOptions } from "../../../src/cli/commands/proxy.js";
import { buildCatalog } from "../../../src/proxy/catalog.js";
import { startProxy } from "../../../src/proxy/index.js";
import { FakeRunner } from "../../support/fake-runner.js";
import type { MemorySnapshot, SystemProbe } from "../../../src/system/types.js";
import { writeTinyModel } from "../../support/tiny-models.js";

const GIB = 1024 ** 3;
const box: MemorySnapshot = {
  ram: { totalBytes: 16 * GIB, availableBytes: 8 * GIB, source: "proc-meminfo" },
  gpus: [],
  takenAt: 0,
};
const probe: SystemProbe = { probe: () => Promise.reject(new Error("not used")), memory: async () => box };

/** A data dir with a config file (one model with every kind of setting), a registry and a models folder. */
async function dataDir(t: { after: (fn: () => void) => void }): Promise<{ env: NodeJS.ProcessEnv; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-resolve-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { GGLIB_DATA_DIR: dir };
  mkdirSync(join(dir, "files"));
  mkdirSync(paths.modelsDir(env));
  const cfgModel = await writeTinyModel(join(dir, "files"), { name: "cfg-model", kind: "chat" });
  const regModel = await writeTinyModel(join(dir, "files"), { name: "reg-model", kind: "chat" });
  await writeTinyModel(paths.modelsDir(env), { name: "dir-model", kind: "chat" });
  writeFileSync(
    paths.configFile(env),
    [
      "models:",
      "  cfg:",
      `    path: ${JSON.stringify(cfgModel)}`,
      "    aliases: [c-alias]",
      "    ctx: 2048",
      "    cacheTypeK: q8_0",
      "    cacheTypeV: q8_0",
      "    env: {FOO: bar}",
      "    ttl: 60",
      "    pinned: true",
      "    preload: true",
      "",
    ].join("\n"),
  );
  const reg = Registry.open({ dbPath: paths.registryDb(env) });
  await reg.add({ path: regModel, name: "reg", aliases: ["r-alias"], settings: { ctx: 1024, parallel: 2 } });
  reg.close();
  return { env, dir };
}

void describe("one model resolver", () => {
  void test("the chat keeps every setting of a config model (ttl, pinned, preload, cache types, env)", async (t) => {
    const { env } = await dataDir(t);
    const r = resolveModelArg("c-alias", { env });
    assert.equal(r.source, "config");
    assert.equal(r.entry.name, "cfg");
    assert.deepEqual(
      { ttl: r.entry.settings.ttl, pinned: r.entry.settings.pinned, preload: r.entry.settings.preload },
      { ttl: 60, pinned: true, preload: true },
    );
    assert.equal(r.config.contextSize, 2048);
    assert.equal(r.config.cacheTypeK, "q8_0");
    assert.equal(r.config.cacheTypeV, "q8_0");
    assert.deepEqual(r.config.env, { FOO: "bar" });
  });

  void test("chat, serve and models fit resolve a config name, an alias, a registered name and a models-folder file alike", async (t) => {
    const { env } = await dataDir(t);
    for (const [ref, name, source] of [
      ["cfg", "cfg", "config"],
      ["c-alias", "cfg", "config"],
      ["CFG", "cfg", "config"],
      ["r-alias", "reg", "registry"],
      ["dir-model", "dir-model", "models-dir"],
    ] as const) {
      const chat = resolveModelArg(ref, { env });
      assert.equal(chat.entry.name, name, ref);
      assert.equal(chat.source, source, ref);
      const serve = serveConfig(ref, [], {}, { env });
      assert.equal(serve.modelName, name, ref);
      assert.equal(serve.modelPath, chat.config.modelPath, ref);
      const fit = await fitReport(ref, { env }, probe);
      assert.equal(fit.model.name, name, ref);
      assert.equal(fit.model.path, chat.config.modelPath, ref);
    }
    // the model's settings reach each command the same way
    assert.equal(serveConfig("cfg", [], {}, { env }).cacheTypeK, "q8_0");
    assert.equal(serveConfig("reg", [], { parallel: 3 }, { env }).parallel, 3, "a flag wins over the setting");
    assert.equal(serveConfig("reg", [], {}, { env }).contextSize, 1024);
    assert.equal((await fitReport("reg", { env }, probe)).launch.config.contextSize, 1024);
    assert.equal((await fitReport("cfg", { env }, probe)).advice.estimate.kvCells, 2048);
  });

  void test("the proxy's ServerConfig for a config model is the chat's and serve's, less their own defaults", async (t) => {
    const { env } = await dataDir(t);
    const cat = await buildCatalog({ config: loadConfigFile(paths.configFile(env)) });
    const proxy = cat.models.find((m) => m.name === "cfg")!.server;
    const serve = serveConfig("cfg", [], {}, { env });
    for (const k of ["modelPath", "modelName", "contextSize", "cacheTypeK", "cacheTypeV", "env"] as const)
      assert.deepEqual(proxy[k], serve[k], k);
  });

  void test("an unknown name says which models there are; a path is a path", async (t) => {
    const { env, dir } = await dataDir(t);
    assert.throws(
      () => resolveModelRef("nope", { env }),
      (e: unknown) =>
        isGglibError(e, "model_not_found") &&
        /No model named "nope"/.test(e.message) &&
        /Known models: cfg, reg, dir-model/.test(e.details.hint ?? ""),
    );
    const p = resolveModelRef(join(dir, "files", "reg-model.gguf"), { env });
    assert.equal(p.source, "path");
    assert.equal(p.entry.name, "reg-model");
    assert.deepEqual(p.entry.settings, {});
    assert.deepEqual(
      knownModels({ env }).models.map((m) => m.name),
      ["cfg", "reg", "dir-model"],
    );
  });

  void test("gglib proxy serves what gglib models list lists, with or without a modelsDir in the config file", async (t) => {
    const { env, dir } = await dataDir(t);
    /** The names `gglib proxy` (its flags → startProxy, on an in-memory runner) serves. */
    const served = async (flags: Record<string, unknown>): Promise<string[]> => {
      const registry = Registry.open({ dbPath: paths.registryDb(env) });
      const proxy = await startProxy({
        ...proxyOptions(flags, env),
        port: 0,
        runner: new FakeRunner(),
        memoryBudget: "8GiB",
        watchConfig: false,
        registry,
        probe,
      });
      try {
        return proxy.report.models.map((m) => m.name);
      } finally {
        await proxy.close(1_000);
        registry.close();
      }
    };
    const listed = (o: { configPath?: string; modelsDir?: string } = {}) =>
      knownModels({ env, ...o }).models.map((m) => m.name);

    // the data dir's config.yaml names no modelsDir: <data dir>/models still counts, for both
    assert.deepEqual(listed(), ["cfg", "reg", "dir-model"]);
    assert.deepEqual(await served({}), listed());
    assert.equal(proxyOptions({}, env).modelsDir, paths.modelsDir(env));
    // --models-dir wins over the default folder
    const other = join(dir, "other");
    mkdirSync(other);
    await writeTinyModel(other, { name: "other-model", kind: "chat" });
    assert.deepEqual(await served({ modelsDir: other }), listed({ modelsDir: other }));
    assert.ok(listed({ modelsDir: other }).includes("other-model"));
    // a config naming its modelsDir: that folder, not <data dir>/models
    writeFileSync(join(dir, "own.yaml"), "modelsDir: ./other\n");
    const own = join(dir, "own.yaml");
    assert.deepEqual(await served({ config: own }), listed({ configPath: own }));
    assert.deepEqual(listed({ configPath: own }), ["reg", "other-model"]);
  });
});
