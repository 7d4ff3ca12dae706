import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, utimesSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Registry, jsonSafe, type MetadataReader } from "../../../src/models/registry.js";
import { modelTags } from "../../../src/models/capabilities.js";
import { migrate, MIGRATIONS, type Migration } from "../../../src/models/migrations/index.js";
import { isGglibError } from "../../../src/core/errors.js";

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "gglib-reg-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A file that starts like a GGUF file; the metadata reader under test decides what it "contains". */
function fakeGguf(p: string, body = "x"): string {
  writeFileSync(p, "GGUF" + body);
  return p;
}

/** Reads the file's text after the magic as its "architecture", and counts calls. */
function countingReader(): { reader: MetadataReader; calls: string[] } {
  const calls: string[] = [];
  const reader: MetadataReader = async (p) => {
    calls.push(p);
    const { readFileSync } = await import("node:fs");
    return { architecture: readFileSync(p, "latin1").slice(4), params: 10n, tokens: new Array(1000).fill("a") };
  };
  return { reader, calls };
}

describe("registry", () => {
  test("add, get by name and alias, list, remove", async (t) => {
    const d = tmp(t);
    const { reader } = countingReader();
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: reader });
    t.after(() => reg.close());
    const m = await reg.add({
      path: fakeGguf(join(d, "tiny.gguf"), "llama"),
      aliases: ["t", "tiny-alias"],
      settings: { ctx: 2048 },
    });
    assert.equal(m.name, "tiny");
    assert.deepEqual(m.aliases, ["t", "tiny-alias"]);
    assert.equal(m.path, join(d, "tiny.gguf"));
    assert.deepEqual(m.shards, [join(d, "tiny.gguf")]);
    assert.deepEqual(m.settings, { ctx: 2048 });
    assert.equal(m.metadata?.architecture, "llama");
    assert.equal(m.metadata?.params, 10, "bigint stored as number");
    assert.deepEqual(m.metadata?.tokens, { arrayLength: 1000 }, "huge arrays are not stored");
    assert.equal(m.sizeBytes, 9);
    assert.equal(reg.get("t")?.name, "tiny");
    assert.equal(reg.get("nope"), undefined);
    assert.deepEqual(
      reg.list().map((x) => x.name),
      ["tiny"],
    );
    const removed = reg.remove("tiny-alias");
    assert.equal(removed.name, "tiny");
    assert.equal(reg.list().length, 0);
    assert.equal(reg.get("t"), undefined, "aliases go with the model");
  });

  test("names and aliases are one namespace", async (t) => {
    const d = tmp(t);
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: countingReader().reader });
    t.after(() => reg.close());
    await reg.add({ path: fakeGguf(join(d, "a.gguf")), aliases: ["x"] });
    await assert.rejects(
      reg.add({ path: fakeGguf(join(d, "b.gguf")), name: "a" }),
      (e) => isGglibError(e, "invalid_config") && /name of a registered/.test(e.message),
    );
    await assert.rejects(
      reg.add({ path: join(d, "b.gguf"), name: "x" }),
      (e) => isGglibError(e, "invalid_config") && /alias of "a"/.test(e.message),
    );
    await assert.rejects(reg.add({ path: join(d, "b.gguf"), aliases: ["a"] }), (e) =>
      isGglibError(e, "invalid_config"),
    );
    await assert.rejects(
      reg.add({ path: join(d, "b.gguf"), name: "bad name" }),
      (e) => isGglibError(e, "invalid_config") && /Invalid model name/.test(e.message),
    );
    const b = await reg.add({ path: join(d, "b.gguf"), aliases: ["y"] });
    assert.throws(
      () => reg.update("b", { aliases: ["x"] }),
      (e) => isGglibError(e, "invalid_config"),
    );
    assert.throws(
      () => reg.update("y", { name: "a" }),
      (e) => isGglibError(e, "invalid_config"),
    );
    const renamed = reg.update("y", { name: "bee", aliases: ["b", "y2"] });
    assert.equal(renamed.id, b.id);
    assert.deepEqual(renamed.aliases, ["b", "y2"]);
    assert.equal(reg.get("b")?.name, "bee", "the old name can become an alias of the same model");
  });

  test("rejects missing files and non-GGUF files with clear errors", async (t) => {
    const d = tmp(t);
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: countingReader().reader });
    t.after(() => reg.close());
    await assert.rejects(
      reg.add({ path: join(d, "missing.gguf") }),
      (e) => isGglibError(e, "model_not_found") && /does not exist/.test(e.message),
    );
    writeFileSync(join(d, "notgguf.gguf"), "PK\x03\x04");
    await assert.rejects(
      reg.add({ path: join(d, "notgguf.gguf") }),
      (e) => isGglibError(e, "invalid_config") && /not a GGUF/.test(e.message),
    );
    assert.throws(
      () => reg.require("ghost"),
      (e) => isGglibError(e, "model_not_found") && /models add/.test(e.details.hint ?? ""),
    );
  });

  test("a folder with shards and an mmproj is one model named by the folder", async (t) => {
    const d = tmp(t);
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: countingReader().reader });
    t.after(() => reg.close());
    const dir = join(d, "Big-Model");
    mkdirSync(dir);
    for (let i = 1; i <= 3; i++) fakeGguf(join(dir, `big-0000${i}-of-00003.gguf`));
    fakeGguf(join(dir, "mmproj-f16.gguf"));
    const m = await reg.add({ path: dir });
    assert.equal(m.name, "Big-Model");
    assert.equal(m.path, join(dir, "big-00001-of-00003.gguf"));
    assert.equal(m.shards.length, 3);
    assert.equal(m.mmproj, join(dir, "mmproj-f16.gguf"));
    // adding by the 2nd shard finds the set too
    const m2 = await reg.add({ path: join(dir, "big-00002-of-00003.gguf"), name: "big2" });
    assert.equal(m2.path, join(dir, "big-00001-of-00003.gguf"));
    assert.equal(m2.shards.length, 3);
    assert.equal(reg.findByPath(join(dir, "big-00001-of-00003.gguf"))?.name, "Big-Model");
  });

  test("metadata is cached and re-read only when the file changes", async (t) => {
    const d = tmp(t);
    const { reader, calls } = countingReader();
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: reader });
    t.after(() => reg.close());
    const f = fakeGguf(join(d, "m.gguf"), "llama");
    await reg.add({ path: f });
    assert.equal(calls.length, 1);
    assert.deepEqual(await reg.refreshStale(), []);
    assert.equal(calls.length, 1, "unchanged file: no re-read");
    assert.equal(reg.status(reg.require("m")).stale, false);
    appendFileSync(f, "2"); // size changes
    assert.equal(reg.status(reg.require("m")).stale, true);
    assert.deepEqual(await reg.refreshStale(), ["m"]);
    assert.equal(reg.require("m").metadata?.architecture, "llama2");
    // same size, new mtime
    writeFileSync(f, "GGUFqwen3x");
    const future = new Date(Date.now() + 60_000);
    utimesSync(f, future, future);
    assert.deepEqual(await reg.refreshStale(), ["m"]);
    assert.equal(reg.require("m").metadata?.architecture, "qwen3x");
    assert.equal(calls.length, 3);
    // missing file: not stale, missing; refresh is a no-op
    rmSync(f);
    const st = reg.status(reg.require("m"));
    assert.equal(st.missing, true);
    assert.deepEqual(await reg.refreshStale(), []);
  });

  test("a failing metadata read is stored as an error, not a failed add, and retried later", async (t) => {
    const d = tmp(t);
    let fail = true;
    const reg = Registry.open({
      dbPath: join(d, "r.sqlite"),
      readMetadata: async () => {
        if (fail) throw new Error("truncated header");
        return { architecture: "llama" };
      },
    });
    t.after(() => reg.close());
    const m = await reg.add({ path: fakeGguf(join(d, "m.gguf")) });
    assert.equal(m.metadata, undefined);
    assert.equal(m.metadataError, "truncated header");
    assert.equal(reg.status(m).stale, true);
    fail = false;
    assert.deepEqual(await reg.refreshStale(), ["m"]);
    assert.equal(reg.require("m").metadata?.architecture, "llama");
    assert.equal(reg.require("m").metadataError, undefined);
    assert.equal(reg.status(reg.require("m")).stale, false);
  });

  test("update merges and unsets settings, sets and clears mmproj", async (t) => {
    const d = tmp(t);
    const reg = Registry.open({ dbPath: join(d, "r.sqlite"), readMetadata: countingReader().reader });
    t.after(() => reg.close());
    await reg.add({ path: fakeGguf(join(d, "m.gguf")), settings: { ctx: 4096, jinja: true } });
    let m = reg.update("m", { settings: { ctx: undefined, parallel: 2, extraArgs: ["--top-k", "20"] } });
    assert.deepEqual(m.settings, { jinja: true, parallel: 2, extraArgs: ["--top-k", "20"] });
    m = reg.update("m", { mmproj: fakeGguf(join(d, "mmproj.gguf")) });
    assert.equal(m.mmproj, join(d, "mmproj.gguf"));
    m = reg.update("m", { mmproj: null });
    assert.equal(m.mmproj, undefined);
    assert.throws(
      () => reg.update("m", { mmproj: join(d, "nope.gguf") }),
      (e) => isGglibError(e, "model_not_found"),
    );
  });

  test("data persists across opens; two handles see each other's writes (WAL)", async (t) => {
    const d = tmp(t);
    const db = join(d, "r.sqlite");
    const a = Registry.open({ dbPath: db, readMetadata: countingReader().reader });
    const b = Registry.open({ dbPath: db, readMetadata: countingReader().reader });
    t.after(() => {
      a.close();
      b.close();
    });
    const v0 = b.dataVersion();
    await a.add({ path: fakeGguf(join(d, "m.gguf")), aliases: ["mm"] });
    assert.notEqual(b.dataVersion(), v0, "the other handle sees that something changed");
    const v1 = b.dataVersion();
    assert.equal(b.get("mm")?.name, "m");
    assert.equal(b.dataVersion(), v1, "reading changes nothing");
    a.close();
    const c = Registry.open({ dbPath: db, readMetadata: countingReader().reader });
    t.after(() => c.close());
    assert.equal(c.get("m")?.aliases[0], "mm");
    assert.equal(c.schemaVersion(), MIGRATIONS.at(-1)!.version);
    const raw = new Database(db, { readonly: true });
    t.after(() => raw.close());
    assert.equal((raw.pragma("journal_mode", { simple: true }) as string).toLowerCase(), "wal");
  });
});

describe("migrations", () => {
  const steps: Migration[] = [
    { version: 1, description: "one", up: (db) => db.exec("CREATE TABLE a (x INTEGER)") },
    { version: 2, description: "two", up: (db) => db.exec("ALTER TABLE a ADD COLUMN y TEXT") },
  ];

  test("apply in order once; later ones apply on the next open", () => {
    const db = new Database(":memory:");
    try {
      assert.deepEqual(migrate(db, steps.slice(0, 1)), [1]);
      assert.deepEqual(migrate(db, steps.slice(0, 1)), []);
      assert.deepEqual(migrate(db, [steps[1]!, steps[0]!]), [2], "order comes from the version, not the list");
      db.prepare("INSERT INTO a (x, y) VALUES (1, 'z')").run();
      const rows = db.prepare("SELECT version, description FROM schema_version ORDER BY version").all();
      assert.deepEqual(rows, [
        { version: 1, description: "one" },
        { version: 2, description: "two" },
      ]);
    } finally {
      db.close();
    }
  });

  test("a failing migration rolls back and leaves the version", () => {
    const db = new Database(":memory:");
    try {
      migrate(db, steps.slice(0, 1));
      const bad: Migration = {
        version: 2,
        description: "bad",
        up: (d) => {
          d.exec("CREATE TABLE b (x INTEGER)");
          throw new Error("boom");
        },
      };
      assert.throws(() => migrate(db, [steps[0]!, bad]), /boom/);
      assert.equal((db.prepare("SELECT MAX(version) v FROM schema_version").get() as { v: number }).v, 1);
      assert.equal(db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").get(), undefined, "rolled back");
    } finally {
      db.close();
    }
  });

  test("a database from a newer gglib is refused with a clear error", (t) => {
    const d = tmp(t);
    const p = join(d, "r.sqlite");
    const db = new Database(p);
    migrate(db, [...MIGRATIONS, { version: 99, description: "future", up: () => {} }]);
    db.close();
    assert.throws(
      () => Registry.open({ dbPath: p }),
      (e) =>
        isGglibError(e, "invalid_config") &&
        /newer gglib/.test(e.message) &&
        /Upgrade gglib/.test(e.details.hint ?? ""),
    );
  });
});

describe("stored values", () => {
  test("jsonSafe keeps big integers exact as strings", () => {
    assert.deepEqual(jsonSafe({ a: 2n ** 60n, b: [1n], c: new Map([["k", 1]]) }), {
      a: (2n ** 60n).toString(),
      b: [1],
      c: { k: 1 },
    });
  });
});

describe("registry with the real GGUF reader", () => {
  test("stores the metadata of a real tiny model and refreshes it when the file is rewritten", async (t) => {
    const d = tmp(t);
    const { writeTinyModel } = await import("../../support/tiny-models.js");
    const path = await writeTinyModel(d, { name: "tiny", kind: "chat", contextLength: 2048 });
    const reg = Registry.open({ dbPath: join(d, "r.sqlite") });
    t.after(() => reg.close());
    const m = await reg.add({ path, aliases: ["t"] });
    assert.equal(m.metadata?.architecture, "llama");
    assert.equal(m.metadata?.contextLength, 2048);
    assert.equal(typeof m.metadata?.parameterCount, "number");
    assert.ok(typeof m.metadata?.chatTemplate === "string" && m.metadata.chatTemplate.includes("im_start"));
    assert.deepEqual(modelTags(m), []);
    const think = await reg.add({ path: await writeTinyModel(d, { name: "thinker", kind: "think" }) });
    assert.deepEqual(modelTags(think), ["reasoning"], "capabilities are detected and stored");
    assert.deepEqual(modelTags({ ...think, mmproj: "/x/mmproj.gguf" }), ["reasoning", "vision"]);
    await writeTinyModel(d, { name: "tiny", kind: "chat", contextLength: 4096, layers: 2 });
    const future = new Date(Date.now() + 60_000);
    utimesSync(path, future, future);
    assert.deepEqual(await reg.refreshStale(), ["tiny"]);
    assert.equal(reg.require("t").metadata?.contextLength, 4096);
  });

  test("refuses an mmproj file as a model", async (t) => {
    const d = tmp(t);
    const { writeGguf, GgufValue } = await import("../../support/gguf-writer.js");
    const p = join(d, "proj.gguf");
    await writeGguf(p, {
      metadata: { "general.architecture": GgufValue.string("clip"), "general.type": GgufValue.string("mmproj") },
      tensors: [],
    });
    const reg = Registry.open({ dbPath: join(d, "r.sqlite") });
    t.after(() => reg.close());
    await assert.rejects(
      reg.add({ path: p }),
      (e) => isGglibError(e, "invalid_config") && /multimodal projector/.test(e.message),
    );
  });
});
