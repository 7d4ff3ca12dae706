import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "../../../src/models/registry.js";
import {
  loadModelSources,
  scanModelsDir,
  mergeModelEntries,
  findModel,
  resolveModelPath,
  type ModelEntry,
} from "../../../src/models/sources.js";
import { parseShardName } from "../../../src/gguf/names.js";

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "gglib-src-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function gguf(p: string): string {
  writeFileSync(p, "GGUF");
  return p;
}

describe("models-dir scan", () => {
  test("files, shard sets, model folders, multi-model folders, mmproj", (t) => {
    const d = tmp(t);
    gguf(join(d, "tiny.gguf"));
    gguf(join(d, "Qwen3-4B-Q4_K_M.gguf"));
    gguf(join(d, "mmproj-stray.gguf")); // top-level projector: not a model
    writeFileSync(join(d, "notes.txt"), "hi");
    gguf(join(d, ".hidden.gguf"));
    for (let i = 1; i <= 2; i++) gguf(join(d, `split-0000${i}-of-00002.gguf`));
    gguf(join(d, "broken-00001-of-00003.gguf")); // incomplete
    mkdirSync(join(d, "vision"));
    gguf(join(d, "vision", "model-q4.gguf"));
    gguf(join(d, "vision", "mmproj-model-f16.gguf"));
    mkdirSync(join(d, "sharded"));
    for (let i = 1; i <= 3; i++) gguf(join(d, "sharded", `x-0000${i}-of-00003.gguf`));
    mkdirSync(join(d, "quants"));
    gguf(join(d, "quants", "g-Q4.gguf"));
    gguf(join(d, "quants", "g-Q8.gguf"));
    gguf(join(d, "quants", "mmproj-g.gguf"));
    mkdirSync(join(d, "publisher", "deep"), { recursive: true });
    gguf(join(d, "publisher", "deep", "whatever.gguf"));
    mkdirSync(join(d, "empty"));
    symlinkSync(join(d, "nowhere"), join(d, "dangling.gguf"));

    const { models, warnings } = scanModelsDir(d);
    const byName = new Map(models.map((m) => [m.name, m]));
    assert.deepEqual([...byName.keys()].sort(), [
      "Qwen3-4B-Q4_K_M",
      "g-Q4",
      "g-Q8",
      "sharded",
      "split",
      "tiny",
      "vision",
      "whatever",
    ]);
    assert.deepEqual(byName.get("split")!.shards, [
      join(d, "split-00001-of-00002.gguf"),
      join(d, "split-00002-of-00002.gguf"),
    ]);
    assert.equal(byName.get("split")!.path, join(d, "split-00001-of-00002.gguf"));
    assert.equal(byName.get("vision")!.path, join(d, "vision", "model-q4.gguf"));
    assert.equal(byName.get("vision")!.mmproj, join(d, "vision", "mmproj-model-f16.gguf"));
    assert.equal(byName.get("sharded")!.shards.length, 3);
    assert.equal(byName.get("g-Q8")!.mmproj, join(d, "quants", "mmproj-g.gguf"));
    assert.equal(byName.get("tiny")!.mmproj, undefined);
    assert.deepEqual(byName.get("tiny")!.shards, [join(d, "tiny.gguf")]);
    assert.equal(
      byName.get("whatever")!.path,
      join(d, "publisher", "deep", "whatever.gguf"),
      "a lone file in a subfolder keeps its stem",
    );
    assert.ok(
      warnings.some((w) => /only 1 of 3 shards/.test(w)),
      warnings.join("\n"),
    );
  });

  test("a missing folder is a warning, not an error", () => {
    const r = scanModelsDir("/nonexistent/gglib-models");
    assert.deepEqual(r.models, []);
    assert.match(r.warnings[0]!, /does not exist/);
  });

  test("shard names", () => {
    assert.deepEqual(parseShardName("/a/Foo-Bar-00002-of-00010.gguf"), {
      prefix: "/a/Foo-Bar",
      stem: "Foo-Bar",
      index: 2,
      count: 10,
    });
    assert.equal(parseShardName("foo-1-of-2.gguf"), undefined);
  });

  test("a projector is one by `mmproj` as a word part of its name, wherever it stands (one rule for every command)", (t) => {
    const d = tmp(t);
    mkdirSync(join(d, "qwen-vl"));
    gguf(join(d, "qwen-vl", "qwen-vl-Q4_K_M.gguf"));
    gguf(join(d, "qwen-vl", "qwen-mmproj-f16.gguf"));
    const r = scanModelsDir(d);
    assert.deepEqual(
      r.models.map((m) => m.name),
      ["qwen-vl"],
      "the projector is not a model of its own: the folder is one model with it",
    );
    assert.equal(r.models[0]!.mmproj, join(d, "qwen-vl", "qwen-mmproj-f16.gguf"));
    const folder = resolveModelPath(join(d, "qwen-vl"));
    assert.ok(folder.ok && folder.files.mmproj === join(d, "qwen-vl", "qwen-mmproj-f16.gguf"));
    // `mmproj` inside a longer word is not the mark
    gguf(join(d, "mmprojector-notes.gguf"));
    assert.ok(scanModelsDir(d).models.some((m) => m.name === "mmprojector-notes"));
  });

  test("one shard rule: an index past the count is not a shard, for the scan as for the GGUF reader", (t) => {
    const d = tmp(t);
    gguf(join(d, "odd-00004-of-00003.gguf"));
    const r = scanModelsDir(d);
    assert.deepEqual(
      r.models.map((m) => [m.name, m.shards.length]),
      [["odd-00004-of-00003", 1]],
    );
    assert.deepEqual(r.warnings, []);
  });
});

describe("merging sources", () => {
  const e = (name: string, source: ModelEntry["source"], path: string, aliases: string[] = []): ModelEntry => ({
    name,
    aliases,
    path,
    shards: [path],
    source,
    settings: {},
  });

  test("precedence config > registry > models-dir, by name and alias", () => {
    const { models, clashes } = mergeModelEntries([
      e("a", "models-dir", "/d/a.gguf"),
      e("a", "registry", "/r/a.gguf", ["b", "c"]),
      e("b", "models-dir", "/d/b.gguf"),
      e("c", "config", "/c/c.gguf", ["a2"]),
      e("z", "registry", "/r/z.gguf", ["a2", "zz"]),
    ]);
    assert.deepEqual(
      models.map((m) => `${m.name}:${m.source}:${m.aliases.join("|")}`),
      ["c:config:a2", "a:registry:b", "z:registry:zz"],
    );
    const desc = clashes.map((c) => `${c.name}/${c.claimedAs}/${c.winner.source}>${c.loser.source}`).sort();
    assert.deepEqual(desc, [
      "a/name/registry>models-dir",
      "a2/alias/config>registry",
      "b/name/registry>models-dir",
      "c/alias/config>registry",
    ]);
    assert.ok(clashes.every((c) => !c.samePath));
    assert.match(clashes.find((c) => c.name === "b")!.message, /shadowed by "a" from registry/);
    assert.equal(findModel(models, "b")?.name, "a");
    assert.equal(findModel(models, "a2")?.name, "c");
    assert.equal(findModel(models, "nope"), undefined);
  });

  test("a name as Ollama's /api/tags lists it (`name:latest`) finds the model, after every other match", () => {
    const models = [e("agent", "config", "/x/agent.gguf"), e("q:latest", "config", "/x/q.gguf", ["Alias"])];
    assert.equal(findModel(models, "agent:latest")?.name, "agent");
    assert.equal(findModel(models, "AGENT:Latest")?.name, "agent");
    assert.equal(findModel(models, "alias:latest")?.name, "q:latest", "an alias, case-insensitive, then :latest");
    assert.equal(findModel(models, "q:latest")?.name, "q:latest", "a name that has the tag itself matches first");
    assert.equal(findModel(models, "agent:q8"), undefined, "only :latest is dropped");
    assert.equal(findModel(models, ":latest"), undefined);
  });

  test("the same file in two sources is a harmless duplicate", () => {
    const { models, clashes } = mergeModelEntries([e("m", "registry", "/x/m.gguf"), e("m", "models-dir", "/x/m.gguf")]);
    assert.equal(models.length, 1);
    assert.equal(clashes.length, 1);
    assert.equal(clashes[0]!.samePath, true);
    assert.match(clashes[0]!.message, /same file/);
  });

  test("loadModelSources reads the registry, a models dir and config entries", async (t) => {
    const d = tmp(t);
    const modelsDir = join(d, "models");
    mkdirSync(modelsDir);
    gguf(join(modelsDir, "tiny.gguf"));
    gguf(join(modelsDir, "other.gguf"));
    gguf(join(d, "reg.gguf"));
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: async () => ({}) });
    t.after(() => reg.close());
    await reg.add({ path: join(modelsDir, "tiny.gguf"), aliases: ["t"], settings: { ctx: 1024 } });
    await reg.add({ path: join(d, "reg.gguf"), name: "other" });
    const r = loadModelSources({
      registry: reg,
      modelsDir,
      config: {
        baseDir: d,
        models: [
          { name: "cfg", path: "reg.gguf", aliases: ["t"], settings: { jinja: true } },
          { name: "ghost", path: "ghost.gguf" },
        ],
      },
    });
    const names = r.models.map((m) => `${m.name}:${m.source}`);
    assert.deepEqual(names, ["cfg:config", "ghost:config", "other:registry", "tiny:registry"]);
    assert.equal(findModel(r.models, "t")?.name, "cfg", "config alias wins over the registry alias");
    assert.deepEqual(findModel(r.models, "tiny")?.settings, { ctx: 1024 });
    assert.equal(findModel(r.models, "cfg")?.path, join(d, "reg.gguf"));
    const byName = (n: string) => r.clashes.filter((c) => c.name === n);
    assert.equal(byName("t")[0]!.claimedAs, "alias");
    assert.equal(byName("tiny")[0]!.samePath, true, "registered file inside the models dir");
    assert.equal(byName("other")[0]!.samePath, false, "different files named 'other'");
    assert.ok(r.warnings.some((w) => /ghost/.test(w)));
  });
});
