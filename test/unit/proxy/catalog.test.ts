// The proxy's catalog: models from the config, the models folder and the registry; name resolution; reload diffs.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../../src/models/config-file.js";
import { buildCatalog, resolveModelName } from "../../../src/proxy/catalog.js";
import { diffCatalogs } from "../../../src/proxy/index.js";
import { Registry } from "../../../src/models/registry.js";
import { writeTinyModel } from "../../support/tiny-models.js";
import fc from "fast-check";
import { RUNS } from "../../support/fuzz.js";

describe("proxy catalog", () => {
  test("per-model settings reach the ServerConfig; aliases and name clashes are reported", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-cat-"));
    try {
      writeFileSync(join(dir, "qwen.gguf"), "GGUF");
      writeFileSync(join(dir, "other.gguf"), "GGUF");
      const cfg = parseConfig(
        `models:\n  qwen:\n    path: ./qwen.gguf\n    aliases: [Chat, other]\n    ctx: 4096\n    gpuLayers: 10\n    jinja: false\n    reasoningFormat: none\n    parallel: 3\n    cacheTypeK: q8_0\n    extraArgs: ["--temp", "0.6"]\n    ttl: 30\n    pinned: true\n`,
        join(dir, "c.yaml"),
      );
      const cat = await buildCatalog({ config: cfg, modelsDir: dir });
      const q = cat.models.find((m) => m.name === "qwen")!;
      assert.equal(q.server.contextSize, 4096);
      assert.equal(q.server.gpuLayers, 10);
      assert.equal(q.server.jinja, false);
      assert.equal(q.server.reasoningFormat, "none");
      assert.equal(q.server.parallel, 3);
      assert.equal(q.server.cacheTypeK, "q8_0");
      assert.deepEqual(q.server.extraArgs, ["--temp", "0.6"]);
      assert.equal(q.spec.ttlMs, 30_000);
      assert.equal(q.spec.pinned, true);
      // the models-dir copy of qwen.gguf is the same file (listed once); the config's alias "other" takes the
      // name from the models-dir file other.gguf (the config wins), and the clash is reported
      assert.ok(cat.clashes.some((c) => c.name === "other" && c.loser.source === "models-dir"));
      assert.ok(cat.clashes.some((c) => c.name === "qwen" && c.samePath));
      assert.deepEqual(cat.models.map((m) => m.name).sort(), ["qwen"]);
      assert.equal(resolveModelName(cat.models, "chat"), "qwen", "case-insensitive alias");
      assert.equal(resolveModelName(cat.models, "Chat"), "qwen");
      assert.equal(resolveModelName(cat.models, "QWEN"), "qwen");
      assert.equal(resolveModelName(cat.models, "nope"), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("models folder: a file is a model named by its stem; a subfolder with shards and an mmproj is one model (--mmproj)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-dir-"));
    try {
      writeFileSync(join(dir, "solo.gguf"), "GGUF");
      mkdirSync(join(dir, "vision"));
      writeFileSync(join(dir, "vision", "v-00001-of-00002.gguf"), "GGUF");
      writeFileSync(join(dir, "vision", "v-00002-of-00002.gguf"), "GGUF");
      writeFileSync(join(dir, "vision", "mmproj-v.gguf"), "GGUF");
      const cat = await buildCatalog({ modelsDir: dir });
      assert.deepEqual(cat.models.map((m) => m.name).sort(), ["solo", "vision"]);
      const v = cat.models.find((m) => m.name === "vision")!;
      assert.equal(v.server.modelPath, join(dir, "vision", "v-00001-of-00002.gguf"));
      assert.deepEqual(v.server.extraArgs, ["--mmproj", join(dir, "vision", "mmproj-v.gguf")]);
      assert.equal(v.entry.shards.length, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("registered models join the catalog with their settings; the config wins a clash", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-reg-"));
    const reg = Registry.open({ dbPath: ":memory:" });
    try {
      const a = await writeTinyModel(dir, { name: "reg-a", kind: "chat" });
      const b = await writeTinyModel(dir, { name: "reg-b", kind: "chat" });
      await reg.add({ path: a, aliases: ["ra"], settings: { ctx: 1024, pinned: true, ttl: 5 } });
      await reg.add({ path: b });
      const cfg = parseConfig(`models:\n  reg-b:\n    path: ${JSON.stringify(b)}\n    ctx: 512\n`, join(dir, "c.yaml"));
      const cat = await buildCatalog({ registry: reg, config: cfg });
      const ra = cat.models.find((m) => m.name === "reg-a")!;
      assert.equal(ra.entry.source, "registry");
      assert.equal(ra.server.contextSize, 1024);
      assert.equal(ra.spec.pinned, true);
      assert.equal(ra.spec.ttlMs, 5_000);
      assert.equal(resolveModelName(cat.models, "ra"), "reg-a");
      const rb = cat.models.find((m) => m.name === "reg-b")!;
      assert.equal(rb.entry.source, "config");
      assert.equal(rb.server.contextSize, 512);
      assert.ok(cat.clashes.some((c) => c.name === "reg-b" && c.samePath));
      // the KV part of the estimate follows ctx (tiny model: 2 layers… see tiny-models)
      assert.ok(ra.estimate.kvBytes > 0 && ra.estimate.ctx === 1024);
    } finally {
      reg.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("name resolution: exact name, then alias, then case-insensitive (ambiguous → none)", () => {
    const models = [
      { name: "a", aliases: ["shared"] },
      { name: "Shared", aliases: [] },
      { name: "B", aliases: [] },
      { name: "b", aliases: [] },
    ];
    assert.equal(resolveModelName(models, "Shared"), "Shared");
    assert.equal(resolveModelName(models, "shared"), "a");
    assert.equal(resolveModelName(models, "SHARED"), undefined);
    assert.equal(resolveModelName(models, "b"), "b");
  });

  test("reload diff: added, removed, changed (settings needing a restart), unchanged", () => {
    const m = (name: string, fp: string) =>
      ({ name, spec: { name, estimateBytes: 1, fingerprint: fp } }) as Parameters<typeof diffCatalogs>[0][number];
    const d = diffCatalogs([m("a", "1"), m("b", "1"), m("c", "1")], [m("a", "1"), m("b", "2"), m("d", "1")]);
    assert.deepEqual(d, { added: ["d"], removed: ["c"], changed: ["b"], unchanged: ["a"] });
  });
});

describe("proxy catalog (properties)", () => {
  test("resolveModelName: only catalog names; exact name, then alias; case-insensitive only when unambiguous", () => {
    const name = fc.string({ minLength: 1, maxLength: 6 });
    const catalog = fc.uniqueArray(fc.record({ name, aliases: fc.array(name, { maxLength: 3 }) }), {
      selector: (m) => m.name,
      minLength: 1,
      maxLength: 6,
    });
    fc.assert(
      fc.property(catalog, name, (models, requested) => {
        const names = new Set(models.map((m) => m.name));
        const r = resolveModelName(models, requested);
        if (r !== undefined) assert.ok(names.has(r), "a catalog name");
        // an exact name always wins
        for (const m of models) assert.equal(resolveModelName(models, m.name), m.name);
        if (names.has(requested)) assert.equal(r, requested);
        else {
          const owners = models.filter((m) => m.aliases.includes(requested));
          if (owners.length > 0) assert.equal(r, owners[0]!.name, "the first model with that alias");
          else {
            const lower = requested.toLowerCase();
            const hits = new Set(
              models
                .filter((m) => m.name.toLowerCase() === lower || m.aliases.some((a) => a.toLowerCase() === lower))
                .map((m) => m.name),
            );
            assert.equal(r, hits.size === 1 ? [...hits][0] : undefined);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });
});
