// The proxy launches a model with the settings its GGUF calls for, unless the config says otherwise.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCatalog } from "../../../src/proxy/catalog.js";
import { loadConfigFile } from "../../../src/proxy/config.js";
import { writeTinyModel } from "../../support/tiny-models.js";

let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "gglib-launch-"));
  await writeTinyModel(dir, { name: "tiny-a", kind: "chat" });
  await writeTinyModel(dir, { name: "tiny-think", kind: "think" });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("proxy launch defaults", () => {
  test("a reasoning model gets --reasoning-format deepseek and jinja; a plain chat model keeps llama-server's defaults", async () => {
    const cat = await buildCatalog({ modelsDir: dir });
    const think = cat.models.find((m) => m.name === "tiny-think")!;
    const plain = cat.models.find((m) => m.name === "tiny-a")!;
    assert.equal(think.server.reasoningFormat, "deepseek");
    assert.equal(think.server.jinja, true);
    assert.equal(plain.server.reasoningFormat, undefined);
    assert.equal(plain.server.jinja, undefined);
  });

  test("an explicit setting in the config wins over what the model suggests", async () => {
    const cfgPath = join(dir, "config.yaml");
    writeFileSync(
      cfgPath,
      `models:\n  thinker:\n    path: ./tiny-think.gguf\n    reasoningFormat: none\n    jinja: false\n`,
    );
    const cat = await buildCatalog({ config: loadConfigFile(cfgPath) });
    const m = cat.models.find((x) => x.name === "thinker")!;
    assert.equal(m.server.reasoningFormat, "none");
    assert.equal(m.server.jinja, false);
  });
});
