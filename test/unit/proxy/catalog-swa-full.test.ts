// The proxy's catalog runs a sliding-window model with --swa-full when the context cache is on and the memory
// budget allows the larger KV cache (src/models/swa-full.ts), counts it in the estimate, and leaves the user's
// own choice alone.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCatalog } from "../../../src/proxy/catalog.js";
import { loadConfigFile } from "../../../src/models/config-file.js";
import { buildServerArgs } from "../../../src/llama/args.js";
import { writeArchModel } from "../../support/archs/index.js";
import { writeTinyModel } from "../../support/tiny-models.js";

let dir: string;
let gemma: string;
let llama: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "gglib-swa-full-"));
  // a template of our own: the family's real one is read from the llama.cpp source, not needed here
  gemma = await writeArchModel(dir, { family: "gemma3", name: "g3", chatTemplate: "{{ messages }}" });
  llama = await writeTinyModel(dir, { name: "tiny", kind: "chat" });
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function catalog(yaml: string, budgetBytes: number | undefined, contextCache = true) {
  const cfg = join(dir, "config.yaml");
  writeFileSync(cfg, yaml);
  return buildCatalog({ config: loadConfigFile(cfg), swaFull: { budgetBytes, contextCache } });
}

describe("the catalog's --swa-full choice", () => {
  test("budget room: --swa-full on the command line and in the estimate; too little: the window cache", async () => {
    const yaml = `models:\n  g: { path: ${gemma} }\n  t: { path: ${llama} }\n`;
    const roomy = await catalog(yaml, 8 * 1024 ** 3);
    const g = roomy.models.find((m) => m.name === "g")!;
    assert.equal(g.swaFull?.on, true);
    assert.ok(buildServerArgs(g.server, 9000).includes("--swa-full"));
    const tight = await catalog(yaml, g.estimate.bytes - 1);
    const w = tight.models.find((m) => m.name === "g")!;
    assert.equal(w.swaFull?.on, false);
    assert.match(w.swaFull?.reason ?? "", /does not allow it/);
    assert.ok(!buildServerArgs(w.server, 9000).includes("--swa-full"));
    assert.equal(g.estimate.bytes - w.estimate.bytes, w.swaFull?.extraBytes, "the estimate counts the full cache");
    assert.equal(roomy.models.find((m) => m.name === "t")?.swaFull, undefined, "no sliding window: nothing to choose");
  });

  test("the context cache off, or no swaFull input (gglib serve, fit): llama-server's default", async () => {
    const yaml = `models:\n  g: { path: ${gemma} }\n`;
    assert.equal((await catalog(yaml, undefined, false)).models[0]?.server.swaFull, undefined);
    const cfg = join(dir, "config.yaml");
    writeFileSync(cfg, yaml);
    assert.equal((await buildCatalog({ config: loadConfigFile(cfg) })).models[0]?.server.swaFull, undefined);
  });

  test("the user's swaFull: false wins over room in the budget; --swa-full in extraArgs is counted, not doubled", async () => {
    const off = await catalog(`models:\n  g: { path: ${gemma}, swaFull: false }\n`, 8 * 1024 ** 3);
    assert.deepEqual([off.models[0]?.swaFull?.on, off.models[0]?.swaFull?.by], [false, "user"]);
    const own = await catalog(`models:\n  g: { path: ${gemma}, extraArgs: ["--swa-full"] }\n`, 1);
    const m = own.models[0]!;
    assert.deepEqual([m.swaFull?.on, m.swaFull?.by], [true, "user"]);
    assert.equal(buildServerArgs(m.server, 9000).filter((a) => a === "--swa-full").length, 1);
    const roomy = await catalog(`models:\n  g: { path: ${gemma} }\n`, 8 * 1024 ** 3);
    assert.equal(m.estimate.bytes, roomy.models[0]?.estimate.bytes, "the user's --swa-full is in the estimate");
  });
});
