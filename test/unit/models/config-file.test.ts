// The config file: its published JSON Schema, parsing, and errors that name the field.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { configJsonSchema } from "../../../src/models/settings.js";
import { parseConfig } from "../../../src/models/config-file.js";
import { GglibError } from "../../../src/core/errors.js";

describe("config file", () => {
  test("the published JSON Schema is the one generated from the zod schema", () => {
    const published = JSON.parse(
      readFileSync(new URL("../../../schema/gglib-config.schema.json", import.meta.url), "utf8"),
    ) as unknown;
    assert.deepEqual(
      published,
      JSON.parse(JSON.stringify(configJsonSchema())),
      "regenerate schema/gglib-config.schema.json from configJsonSchema()",
    );
  });

  test("a full config parses; relative paths resolve against the config's folder", () => {
    const c = parseConfig(
      `host: 127.0.0.1\nport: 8081\nmaxModels: 2\nmemoryBudget: 24GiB\nttl: 600\napiKeys: [k1]\nmodels:\n  qwen:\n    path: ./q.gguf\n    aliases: [gpt-4o-mini]\n    ctx: 8192\n    gpuLayers: -1\n    jinja: true\n    reasoningFormat: deepseek\n    parallel: 2\n    extraArgs: ["--temp", "0.6"]\n    ttl: 60\n    pinned: true\n    preload: true\n`,
      "/etc/gglib/proxy.yaml",
    );
    assert.equal(c.baseDir, "/etc/gglib");
    assert.equal(c.config.models!.qwen!.ctx, 8192);
    assert.equal(c.config.memoryBudget, "24GiB");
  });

  test("errors name the field and the problem", () => {
    assert.throws(
      () => parseConfig(`models:\n  a:\n    path: x.gguf\n    ctx: -5\n    bogus: 1\n`, "c.yaml"),
      (e: unknown) =>
        e instanceof GglibError &&
        e.kind === "invalid_config" &&
        /models\.a\.ctx/.test(e.message) &&
        /bogus/.test(e.message),
    );
    assert.throws(() => parseConfig(`models: [`, "c.yaml"), /not valid YAML/);
    assert.throws(() => parseConfig(`memoryBudget: lots`, "c.yaml"), /memoryBudget/);
  });
});
