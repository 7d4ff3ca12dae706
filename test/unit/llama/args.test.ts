import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildServerArgs, childEnv, modelNameOf, overriddenFlags, refusedFlags } from "../../../src/llama/args.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCatalog } from "../../../src/proxy/catalog.js";
import { loadConfigFile } from "../../../src/models/config-file.js";
import { writeTinyModel } from "../../support/tiny-models.js";
import { GglibError } from "../../../src/core/errors.js";

const base = { modelPath: "/m/tiny-a.gguf" };
const head = ["-m", "/m/tiny-a.gguf", "--host", "127.0.0.1", "--port", "9001", "--alias", "tiny-a", "--metrics"];

describe("buildServerArgs", () => {
  test("minimal config: model, host, port, alias from the file stem, metrics", () => {
    assert.deepEqual(buildServerArgs(base, 9001), head);
  });

  const cases: [string, object, string[]][] = [
    ["contextSize", { contextSize: 4096 }, ["-c", "4096"]],
    ["contextSize 0 (trained context)", { contextSize: 0 }, ["-c", "0"]],
    ["gpuLayers number", { gpuLayers: 20 }, ["-ngl", "20"]],
    ["gpuLayers -1 means all", { gpuLayers: -1 }, ["-ngl", "all"]],
    ["gpuLayers auto", { gpuLayers: "auto" }, ["-ngl", "auto"]],
    ["jinja on", { jinja: true }, ["--jinja"]],
    ["jinja off is sent explicitly (llama-server defaults it on)", { jinja: false }, ["--no-jinja"]],
    ["reasoning format", { reasoningFormat: "deepseek" }, ["--reasoning-format", "deepseek"]],
    ["reasoning budget", { reasoningBudget: 0 }, ["--reasoning-budget", "0"]],
    ["reasoning budget unrestricted", { reasoningBudget: -1 }, ["--reasoning-budget", "-1"]],
    ["flash attention", { flashAttention: "on" }, ["-fa", "on"]],
    ["parallel", { parallel: 2 }, ["--parallel", "2"]],
    ["cache types", { cacheTypeK: "q8_0", cacheTypeV: "q4_0" }, ["--cache-type-k", "q8_0", "--cache-type-v", "q4_0"]],
    ["embeddings", { embeddings: true }, ["--embeddings"]],
    ["reranking", { embeddings: true, reranking: true }, ["--embeddings", "--reranking"]],
    ["mlock", { mlock: true }, ["--mlock"]],
  ];
  for (const [name, extra, tail] of cases) {
    test(name, () => assert.deepEqual(buildServerArgs({ ...base, ...extra }, 9001), [...head, ...tail]));
  }

  test("explicit name, host and no metrics", () => {
    assert.deepEqual(buildServerArgs({ ...base, modelName: "my-model", host: "0.0.0.0", metrics: false }, 8081), [
      "-m",
      "/m/tiny-a.gguf",
      "--host",
      "0.0.0.0",
      "--port",
      "8081",
      "--alias",
      "my-model",
    ]);
  });

  test("extra args come last, verbatim", () => {
    const a = buildServerArgs({ ...base, contextSize: 512, extraArgs: ["--temp", "0.6", "-lv", "4"] }, 9001);
    assert.deepEqual(a.slice(-6), ["-c", "512", "--temp", "0.6", "-lv", "4"]);
  });

  test("every field together keeps the documented order", () => {
    const a = buildServerArgs(
      {
        ...base,
        contextSize: 1,
        gpuLayers: 2,
        jinja: true,
        reasoningFormat: "none",
        reasoningBudget: 3,
        flashAttention: "off",
        parallel: 4,
        cacheTypeK: "f16",
        cacheTypeV: "f16",
        embeddings: true,
        mlock: true,
        extraArgs: ["--x"],
      },
      9001,
    );
    assert.deepEqual(a, [
      ...head,
      "-c",
      "1",
      "-ngl",
      "2",
      "--jinja",
      "--reasoning-format",
      "none",
      "--reasoning-budget",
      "3",
      "-fa",
      "off",
      "--parallel",
      "4",
      "--cache-type-k",
      "f16",
      "--cache-type-v",
      "f16",
      "--embeddings",
      "--mlock",
      "--x",
    ]);
  });

  const bad: [string, object][] = [
    ["negative context", { contextSize: -1 }],
    ["fractional context", { contextSize: 1.5 }],
    ["gpu layers below -1", { gpuLayers: -2 }],
    ["unknown reasoning format", { reasoningFormat: "think" }],
    ["zero parallel", { parallel: 0 }],
    ["unknown cache type", { cacheTypeK: "q3" }],
    ["unknown flash attention value", { flashAttention: "yes" }],
    ["name with a comma (llama-server splits aliases on commas)", { modelName: "a,b" }],
    ["empty model path", { modelPath: "" }],
  ];
  for (const [name, extra] of bad) {
    test(`refuses ${name}`, () => {
      assert.throws(
        () => buildServerArgs({ ...base, ...extra }, 9001),
        (e: unknown) => e instanceof GglibError && e.kind === "invalid_config",
      );
    });
  }

  test("refuses a port outside 1-65535", () => {
    assert.throws(() => buildServerArgs(base, 70000), /port/);
  });

  test("refuses flags the probed binary lacks, naming the flag", () => {
    const flags = new Set(["-m", "--host", "--port", "--alias", "--metrics", "-c"]);
    assert.deepEqual(buildServerArgs({ ...base, contextSize: 8 }, 9001, { flags }), [...head, "-c", "8"]);
    assert.throws(
      () => buildServerArgs({ ...base, reasoningFormat: "deepseek" }, 9001, { flags, version: "b1234" }),
      (e: unknown) =>
        e instanceof GglibError &&
        e.kind === "unsupported_flag" &&
        /--reasoning-format/.test(e.message) &&
        /b1234/.test(e.message),
    );
  });
});

describe("modelNameOf", () => {
  test("file stem, shard suffix dropped, explicit name wins", () => {
    assert.equal(modelNameOf({ modelPath: "/x/Qwen3-4B-Q4_K_M.gguf" }), "Qwen3-4B-Q4_K_M");
    assert.equal(modelNameOf({ modelPath: "/x/big-00001-of-00003.gguf" }), "big");
    assert.equal(modelNameOf({ modelPath: "/x/a.gguf", modelName: "alias" }), "alias");
  });
});

describe("childEnv", () => {
  test("drops LLAMA_ARG_* leftovers, sets the router port only for child mode, adds extras", () => {
    const env = childEnv({ PATH: "/bin", LLAMA_ARG_PORT: "1", LLAMA_SERVER_ROUTER_PORT: "5" }, { FOO: "1" }, 9001);
    assert.equal(env.PATH, "/bin");
    assert.equal(env.LLAMA_ARG_PORT, undefined);
    assert.equal(env.LLAMA_SERVER_ROUTER_PORT, "9001");
    assert.equal(env.FOO, "1");
    assert.equal(childEnv({ LLAMA_SERVER_ROUTER_PORT: "5" }, undefined).LLAMA_SERVER_ROUTER_PORT, undefined);
  });
});

describe("overriddenFlags", () => {
  test("the launcher's own flags in extraArgs (either form), once each, with why; others pass", () => {
    const found = overriddenFlags([
      "--host",
      "0.0.0.0",
      "--slot-save-path=/x",
      "-c",
      "512",
      "--host",
      "::",
      "--port=1",
    ]);
    assert.deepEqual(
      found.map((f) => f.flag),
      ["--host", "--slot-save-path", "--port"],
    );
    assert.match(found[0]!.why, /without the proxy's key/);
    assert.deepEqual(overriddenFlags(["-c", "512", "--jinja", "0.0.0.0"]), []);
    assert.deepEqual(overriddenFlags(undefined), []);
    assert.deepEqual(overriddenFlags(["constructor", "__proto__"]), []);
  });
});

describe("refusedFlags: --sleep-idle-seconds behind the proxy", () => {
  test("found in either form, with why; other flags pass", () => {
    const found = refusedFlags(["-c", "512", "--sleep-idle-seconds=60"]);
    assert.deepEqual(
      found.map((f) => f.flag),
      ["--sleep-idle-seconds"],
    );
    assert.match(found[0]!.why, /context cache would lose .* memory budget would still count/);
    assert.deepEqual(refusedFlags(["--sleep-idle-seconds", "30", "--sleep-idle-seconds", "5"]).length, 1);
    assert.deepEqual(refusedFlags(["-c", "512"]), []);
    assert.deepEqual(refusedFlags(undefined), []);
  });

  test("the proxy's catalog refuses such a model with an error naming the model and the field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-sleep-"));
    try {
      const model = await writeTinyModel(dir, { name: "sleepy", kind: "chat" });
      const cfg = join(dir, "config.yaml");
      writeFileSync(cfg, `models:\n  sleepy: { path: ${model}, extraArgs: ["--sleep-idle-seconds", "60"] }\n`);
      await assert.rejects(
        buildCatalog({ config: loadConfigFile(cfg) }),
        /Model 'sleepy': extraArgs has --sleep-idle-seconds, which the proxy refuses: .*Use the model's `ttl` instead/,
      );
      writeFileSync(cfg, `models:\n  sleepy: { path: ${model}, extraArgs: ["-c", "512"] }\n`);
      assert.equal((await buildCatalog({ config: loadConfigFile(cfg) })).models.length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
