// The context cache's pure rules (identity, disk budget + LRU, eligibility, reuse verdict, worth saving) and its
// slot file store.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import fc from "fast-check";
import { defaultBudgetBytes, fitsOnDisk, planEviction, type StoredFile } from "../../../src/proxy/context/budget.js";
import { contextEligibility } from "../../../src/proxy/context/eligibility.js";
import {
  cacheSettingsOf,
  identityDifferences,
  identityKey,
  type ContextIdentity,
} from "../../../src/proxy/context/identity.js";
import { SlotStore, type Manifest } from "../../../src/proxy/context/store.js";
import {
  checkEntry,
  isSlotFileName,
  pathInside,
  slotDigest,
  slotFileName,
  slotFileProblem,
  slotIdOfKey,
} from "../../../src/proxy/context/integrity.js";
import { RESTORE_MIN_MS, restoreBoundMs } from "../../../src/proxy/context/client.js";
import { judgeReuse } from "../../../src/proxy/context/verify.js";
import {
  SLOT_ACTION_FIXED_MS,
  runningEstimate,
  slotWorthKeeping,
  timedAction,
  type SlotCosts,
} from "../../../src/proxy/context/worth.js";
import { buildServerArgs } from "../../../src/llama/args.js";

const HASH = "ab".repeat(32);

const base: ContextIdentity = {
  files: [{ path: "/m/a.gguf", size: 1000, mtimeMs: 1700000000000 }],
  build: { version: "0.4.0 (build 1, commit 80fb11a)", commit: "80fb11a", backend: "cpu", binarySize: 123 },
  settings: { ctx: 4096, parallel: 2, extraArgs: [] },
};
const withSettings = (s: Partial<ContextIdentity["settings"]>): ContextIdentity => ({
  ...base,
  settings: { ...base.settings, ...s },
});

describe("context cache: identity", () => {
  test("the same inputs give the same key; every cache-shaping change gives another key and names itself", () => {
    assert.equal(identityKey(base), identityKey(structuredClone(base)));
    const changes: [ContextIdentity, RegExp][] = [
      [withSettings({ ctx: 8192 }), /^ctx 4096 → 8192$/],
      [withSettings({ parallel: 4 }), /^parallel 2 → 4$/],
      [withSettings({ cacheTypeK: "q8_0" }), /^cacheTypeK default → q8_0$/],
      [withSettings({ cacheTypeV: "q4_0" }), /^cacheTypeV default → q4_0$/],
      [withSettings({ flashAttention: "on" }), /^flashAttention default → on$/],
      [withSettings({ extraArgs: ["--swa-full"] }), /^extraArgs none → --swa-full$/],
      [{ ...base, files: [{ ...base.files[0]!, size: 1001 }] }, /model file changed/],
      [{ ...base, files: [{ ...base.files[0]!, mtimeMs: 1700000009999 }] }, /model file changed/],
      [{ ...base, files: [{ ...base.files[0]!, path: "/m/b.gguf" }] }, /path changed/],
      [{ ...base, build: { ...base.build, version: "0.5.0", commit: "abcdef0" } }, /build changed .*→ 0\.5\.0/],
      [{ ...base, build: { ...base.build, binarySize: 124 } }, /binary changed/],
    ];
    for (const [changed, re] of changes) {
      assert.notEqual(identityKey(changed), identityKey(base), re.source);
      const diff = identityDifferences(base, changed);
      assert.equal(diff.length, 1, `${re.source}: ${diff.join("; ")}`);
      assert.match(diff[0]!, re);
    }
    assert.deepEqual(identityDifferences(base, structuredClone(base)), []);
  });

  test("cacheSettingsOf keeps the settings that shape the cache and drops logging flags", () => {
    const s = cacheSettingsOf({
      modelPath: "/m/a.gguf",
      contextSize: 2048,
      parallel: 1,
      cacheTypeK: "q8_0",
      flashAttention: "on",
      jinja: true,
      reasoningFormat: "deepseek",
      port: 9001,
      extraArgs: ["-lv", "4", "--swa-full", "--metrics", "--mmproj", "/m/p.gguf"],
    });
    assert.deepEqual(s, {
      ctx: 2048,
      parallel: 1,
      cacheTypeK: "q8_0",
      flashAttention: "on",
      extraArgs: ["--swa-full", "--mmproj", "/m/p.gguf"],
    });
  });

  test("args: --slot-save-path and the idle-slot flag reach llama-server's command line", () => {
    const flags = new Set([
      "-m",
      "--host",
      "--port",
      "--alias",
      "--metrics",
      "--slot-save-path",
      "--no-cache-idle-slots",
    ]);
    const args = buildServerArgs({ modelPath: "/m/a.gguf", slotSavePath: "/c/a", cacheIdleSlots: false }, 9000, {
      flags,
    });
    assert.deepEqual(args.slice(args.indexOf("--slot-save-path")), [
      "--slot-save-path",
      "/c/a",
      "--no-cache-idle-slots",
    ]);
    const plain = buildServerArgs({ modelPath: "/m/a.gguf" }, 9000, { flags });
    assert.ok(!plain.includes("--slot-save-path") && !plain.some((a) => a.includes("idle")));
    assert.throws(
      () => buildServerArgs({ modelPath: "/m/a.gguf", cacheIdleSlots: false }, 9000, { flags: new Set(["-m"]) }),
      /does not support/,
    );
  });
});

describe("context cache: disk budget", () => {
  const f = (key: string, bytes: number, lastUsedAt: number): StoredFile => ({ key, bytes, lastUsedAt });

  test("least recently used first, until the rest fits", () => {
    const files = [f("a", 100, 3), f("b", 100, 1), f("c", 100, 2)];
    assert.deepEqual(planEviction(files, 300), []);
    assert.deepEqual(planEviction(files, 250), ["b"]);
    assert.deepEqual(planEviction(files, 150), ["b", "c"]);
    assert.deepEqual(planEviction(files, 0), ["b", "c", "a"]);
  });

  test("property: what is kept fits, and every kept file is newer than every removed one", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ bytes: fc.nat(10_000), lastUsedAt: fc.nat(1_000) }), { maxLength: 30 }),
        fc.nat(100_000),
        (raw, budget) => {
          const files = raw.map((r, i) => f(`k${i}`, r.bytes, r.lastUsedAt));
          const removed = new Set(planEviction(files, budget));
          const kept = files.filter((x) => !removed.has(x.key));
          assert.ok(kept.reduce((a, x) => a + x.bytes, 0) <= budget);
          const newestRemoved = Math.max(-1, ...files.filter((x) => removed.has(x.key)).map((x) => x.lastUsedAt));
          for (const k of kept) assert.ok(k.lastUsedAt >= newestRemoved);
        },
      ),
    );
  });

  test("default budget: a quarter of the free disk, at most 32 GiB; a save must leave 1 GiB free", () => {
    const GiB = 1024 ** 3;
    assert.equal(defaultBudgetBytes(40 * GiB), 10 * GiB);
    assert.equal(defaultBudgetBytes(1000 * GiB), 32 * GiB);
    assert.equal(defaultBudgetBytes(0), 0);
    assert.equal(fitsOnDisk(3 * GiB, GiB), true);
    assert.equal(fitsOnDisk(1.5 * GiB, GiB), false);
  });
});

describe("context cache: eligibility from GGUF metadata", () => {
  const llama = { architecture: "llama", isMmproj: false };
  test("a plain decoder takes part", () => assert.deepEqual(contextEligibility(llama), { eligible: true }));
  test("sliding window without --swa-full, mmproj and embedding models are skipped with a reason", () => {
    const cases: [Parameters<typeof contextEligibility>, RegExp][] = [
      [[{ ...llama, architecture: "gemma3", slidingWindow: 1024 }], /sliding-window.*1024.*without --swa-full/],
      [
        [
          { ...llama, architecture: "gemma3", slidingWindow: 1024 },
          { swaFullReason: "the memory budget does not allow it" },
        ],
        /without --swa-full.*memory budget does not allow it/,
      ],
      [[llama, { mmproj: "/m/mmproj.gguf" }], /multimodal.*#21133/],
      [[{ ...llama, isMmproj: true }], /projector/],
      [[{ ...llama, poolingType: 1 }], /embedding/],
      [[llama, { embeddings: true }], /embedding/],
    ];
    for (const [args, re] of cases) {
      const r = contextEligibility(...args);
      assert.equal(r.eligible, false, re.source);
      if (!r.eligible) assert.match(r.reason, re);
    }
  });
  test("a sliding-window model with --swa-full takes part; hybrid and recurrent ones take part with a caveat", () => {
    assert.deepEqual(contextEligibility({ ...llama, architecture: "gemma3", slidingWindow: 1024 }, { swaFull: true }), {
      eligible: true,
    });
    for (const meta of [
      { ...llama, architecture: "mamba2" },
      { ...llama, architecture: "rwkv7" },
      { ...llama, architecture: "granitehybrid" },
      { ...llama, architecture: "qwen35" },
      { ...llama, architecture: "lfm2", headCountKvPerLayer: [0, 0, 8, 0, 0, 8] },
      { ...llama, architecture: "newhybrid", headCountKvPerLayer: [8, 0, 8, 0] },
    ]) {
      const r = contextEligibility(meta);
      assert.equal(r.eligible, true, meta.architecture);
      if (r.eligible) assert.match(r.caveat ?? "", /extends every saved token.*#20819/, meta.architecture);
      // a llama-server whose slot files keep the context checkpoints (our patch) rolls back after a restore
      assert.deepEqual(contextEligibility(meta, { slotCheckpoints: true }), { eligible: true }, meta.architecture);
    }
    // and so does a sliding-window model's window cache: no --swa-full needed
    assert.deepEqual(
      contextEligibility({ ...llama, architecture: "gemma3", slidingWindow: 1024 }, { slotCheckpoints: true }),
      { eligible: true },
    );
    // a multimodal hybrid stays off: the caveat never hides a reason
    assert.equal(
      contextEligibility({ ...llama, architecture: "qwen35" }, { mmproj: "/m/mmproj.gguf" }).eligible,
      false,
    );
  });
});

describe("context cache: reuse verdict", () => {
  test("cache_n > 0 is a reuse; 0 on a prompt at least as long as the restore is a miss; else unknown", () => {
    assert.deepEqual(judgeReuse(1000, 990, 1010), { kind: "reused", tokens: 990 });
    assert.deepEqual(judgeReuse(1000, 0, 1200), { kind: "missed", promptTokens: 1200 });
    assert.deepEqual(judgeReuse(1000, 0, 40), { kind: "unknown" });
    assert.deepEqual(judgeReuse(1000, undefined, 1200), { kind: "unknown" });
  });
});

describe("context cache: slot file store", () => {
  function store(t: TestContext): SlotStore {
    const root = mkdtempSync(join(tmpdir(), "ctx-store-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    return new SlotStore(root);
  }
  const manifest = (modelPath: string, slots: Manifest["slots"] = {}): Manifest => ({
    version: 1,
    model: "a",
    modelPath,
    key: "k1",
    identity: base,
    slots,
  });

  test("a model's folder is stable, file-safe and distinct per path", (t) => {
    const s = store(t);
    assert.equal(s.modelDir("a/b c", "/m/x.gguf"), s.modelDir("a/b c", "/m/x.gguf"));
    assert.notEqual(s.modelDir("a", "/m/x.gguf"), s.modelDir("a", "/n/x.gguf"));
    assert.match(s.modelDir("a/b c", "/m/x.gguf"), /a_b_c-[0-9a-f]{8}$/);
  });

  test("seal hashes the temp file and renames it into place; the manifest is written atomically; LRU removal by key", async (t) => {
    const s = store(t);
    const dir = s.modelDir("a", "/m/a.gguf");
    s.ensureDir(dir);
    const tmp = s.tempName(0);
    writeFileSync(join(dir, tmp), Buffer.alloc(500));
    const sealed = await s.seal(dir, tmp, 0, "k1", 500);
    assert.equal(sealed.bytes, 500);
    assert.equal(sealed.sha256, slotDigest("k1", 0).update(Buffer.alloc(500)).digest("hex"));
    s.write(
      dir,
      manifest("/m/a.gguf", {
        "0": { file: "slot-0.bin", tokens: 9, bytes: 500, sha256: sealed.sha256, savedAt: 1, lastUsedAt: 1 },
      }),
    );
    assert.deepEqual(readdirSync(dir).sort(), ["slot-0.bin", "state.json"]);
    assert.equal(s.read(dir)?.slots["0"]?.tokens, 9);
    assert.deepEqual(s.files(), [{ key: `${dir}\n0`, bytes: 500, lastUsedAt: 1 }]);
    assert.equal(s.removeKeys([`${dir}\n0`]), 500);
    assert.deepEqual(readdirSync(dir), ["state.json"]);
    assert.deepEqual(s.read(dir)?.slots, {});
  });

  test("sweep removes old temp files and unlisted files, and folders whose model is gone or that have no manifest", (t) => {
    const s = store(t);
    const live = s.modelDir("live", "/m/live.gguf");
    const gone = s.modelDir("gone", "/m/gone.gguf");
    const stray = join(s.root, "stray");
    for (const d of [live, gone, stray]) mkdirSync(d, { recursive: true });
    writeFileSync(join(live, "slot-0.bin"), "x");
    writeFileSync(join(live, "slot-1.123.ab.tmp"), "x");
    utimesSync(join(live, "slot-1.123.ab.tmp"), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    writeFileSync(join(live, "slot-2.123.cd.tmp"), "a save in progress");
    writeFileSync(join(live, "old.bin"), "x");
    s.write(
      live,
      manifest("/m/live.gguf", {
        "0": { file: "slot-0.bin", tokens: 1, bytes: 1, sha256: HASH, savedAt: 1, lastUsedAt: 1 },
      }),
    );
    s.write(gone, manifest("/m/gone.gguf"));
    s.sweep((p) => p === "/m/live.gguf");
    assert.deepEqual(readdirSync(live).sort(), ["slot-0.bin", "slot-2.123.cd.tmp", "state.json"]);
    assert.equal(existsSync(gone), false);
    assert.equal(existsSync(stray), false);
  });

  test("an unreadable or foreign manifest reads as none", (t) => {
    const s = store(t);
    const dir = s.modelDir("a", "/m/a.gguf");
    s.ensureDir(dir);
    writeFileSync(join(dir, "state.json"), "{not json");
    assert.equal(s.read(dir), undefined);
    writeFileSync(join(dir, "state.json"), JSON.stringify({ version: 2 }));
    assert.equal(s.read(dir), undefined);
  });
});

describe("whether a slot is worth saving (worth.ts)", () => {
  test("unknown prompt speed: always kept (a model never timed may be slow to prefill)", () => {
    assert.equal(slotWorthKeeping(10, {}).keep, true);
    assert.equal(slotWorthKeeping(10, { promptTokensPerS: 0 }).keep, true);
    assert.equal(slotWorthKeeping(10, { promptTokensPerS: Number.NaN }).keep, true);
  });

  test("kept exactly when prefilling again takes longer than a save now and a restore later", () => {
    // 2 fixed costs of 2 ms: 4 ms to keep a slot of any size when the time per token is unknown
    assert.equal(slotWorthKeeping(10, { promptTokensPerS: 5_000 }).keep, false, "10 tokens at 5k t/s: 2 ms");
    assert.equal(slotWorthKeeping(100, { promptTokensPerS: 5_000 }).keep, true, "100 tokens: 20 ms");
    assert.equal(slotWorthKeeping(10, { promptTokensPerS: 50 }).keep, true, "a slow CPU model: 200 ms");
    // the measured costs count twice (a save and a restore)
    const v = slotWorthKeeping(1_000, { promptTokensPerS: 20_000, actionMsPerToken: 0.05 });
    assert.equal(v.recomputeMs, 50);
    assert.equal(v.keepMs, 2 * (SLOT_ACTION_FIXED_MS + 50));
    assert.equal(v.keep, false);
    // a machine where one slot action costs 11 ms: 20 tokens at 2,000 t/s (10 ms) are not worth 22 ms
    assert.equal(slotWorthKeeping(20, { promptTokensPerS: 2_000 }).keep, true, "with the default fixed cost");
    assert.equal(slotWorthKeeping(20, { promptTokensPerS: 2_000, actionFixedMs: 11 }).keep, false, "measured");
  });

  test("timed actions: small ones measure the fixed cost, large ones the time per token beyond it", () => {
    let c: SlotCosts = {};
    c = timedAction(c, 20, 11);
    assert.equal(c.actionFixedMs, 11);
    assert.equal(c.actionMsPerToken, undefined);
    c = timedAction(c, 1_011, 21);
    assert.equal(c.actionFixedMs, 11);
    assert.ok(Math.abs(c.actionMsPerToken! - 10 / 1_011) < 1e-12);
    assert.deepEqual(timedAction(c, 10, Number.NaN), c, "a bad sample changes nothing");
  });

  test("running estimates: the first sample as it is, then a step towards each new one", () => {
    assert.equal(runningEstimate(undefined, 100), 100);
    assert.equal(runningEstimate(100, 200), 130);
    assert.equal(runningEstimate(100, 200, 1), 200);
  });
});

describe("context cache: slot file integrity (integrity.ts, pure)", () => {
  test("names: only the store's own (slot-<id>.bin, slot-<id>.<pid>.<hex>.tmp) are slot files", () => {
    assert.equal(slotFileName(0), "slot-0.bin");
    assert.equal(slotFileName(12), "slot-12.bin");
    assert.throws(() => slotFileName(-1), RangeError);
    assert.throws(() => slotFileName(1.5), RangeError);
    for (const ok of ["slot-0.bin", "slot-4095.bin", "slot-3.123.ab.tmp", "slot-0.9.deadbeef.tmp"])
      assert.equal(isSlotFileName(ok), true, ok);
    for (const bad of [
      "state.json",
      "../../../../x",
      "slot-0.bin/../../x",
      "/etc/passwd",
      "slot-01.bin",
      "slot--1.bin",
      "slot-99999.bin",
      "slot-0.bin.bak",
      "slot-0.x.ab.tmp",
      "slot-0.1.XY.tmp",
      ".slot-0.bin",
      "",
    ])
      assert.equal(isSlotFileName(bad), false, bad);
  });

  test("manifest keys: canonical slot ids only", () => {
    assert.equal(slotIdOfKey("0"), 0);
    assert.equal(slotIdOfKey("7"), 7);
    for (const bad of ["01", "-1", "1e3", "1.0", " 1", "99999", "", "__proto__"])
      assert.equal(slotIdOfKey(bad), undefined, bad);
  });

  test("path containment: a plain name stays inside the folder; separators, .. and absolute paths do not", () => {
    assert.equal(pathInside("/c/m", "slot-0.bin"), "/c/m/slot-0.bin");
    assert.equal(pathInside("/c/m/", "slot-0.bin"), "/c/m/slot-0.bin");
    for (const bad of ["../../../../x", "..", ".", "", "/etc/passwd", "a/b", "a\\b", "x\0y", "../m/slot-0.bin"])
      assert.equal(pathInside("/c/m", bad), undefined, JSON.stringify(bad));
  });

  test("a manifest entry is kept only as the store writes it: own file name, sizes, a hash", () => {
    const good = { file: "slot-0.bin", tokens: 9, bytes: 500, sha256: HASH, savedAt: 1, lastUsedAt: 2 };
    assert.deepEqual(checkEntry("0", good), { ok: true, slot: good });
    const bad: [string, unknown, RegExp][] = [
      ["0", { ...good, file: "../../../../x" }, /is not slot-0\.bin/],
      ["0", { ...good, file: "state.json" }, /is not slot-0\.bin/],
      ["0", { ...good, file: "slot-1.bin" }, /is not slot-0\.bin/],
      ["01", good, /not a slot id/],
      ["99999", { ...good, file: "slot-99999.bin" }, /not a slot id/],
      ["0", { ...good, bytes: 0 }, /no valid size/],
      ["0", { ...good, bytes: -5 }, /no valid size/],
      ["0", { ...good, tokens: "9" }, /no valid size/],
      ["0", { file: "slot-0.bin", tokens: 9, bytes: 500, savedAt: 1, lastUsedAt: 1 }, /no content hash/],
      ["0", { ...good, sha256: "xyz" }, /no content hash/],
      ["0", null, /not an entry/],
    ];
    for (const [k, v, why] of bad) {
      const c = checkEntry(k, v);
      assert.equal(c.ok, false, JSON.stringify(v));
      assert.match(c.ok ? "" : c.reason, why);
    }
  });

  test("a file is restored only when it is a regular file of the saved size and hash", () => {
    const saved = { bytes: 100, sha256: HASH };
    assert.equal(slotFileProblem(saved, { kind: "file", size: 100, sha256: HASH }), undefined);
    assert.match(slotFileProblem(saved, { kind: "file", size: 50, sha256: HASH }) ?? "", /50 bytes, 100 were saved/);
    assert.match(
      slotFileProblem(saved, { kind: "file", size: 100, sha256: "cd".repeat(32) }) ?? "",
      /does not match what was saved/,
    );
    assert.match(slotFileProblem(saved, { kind: "file", size: 100 }) ?? "", /could not be checked/);
    assert.match(slotFileProblem(saved, { kind: "fifo" }) ?? "", /FIFO/);
    assert.match(slotFileProblem(saved, { kind: "symlink" }) ?? "", /symbolic link/);
    assert.match(slotFileProblem(saved, { kind: "directory" }) ?? "", /folder/);
    assert.match(slotFileProblem(saved, { kind: "missing" }) ?? "", /missing/);
  });

  test("the hash binds the bytes to the identity and the slot: the same bytes under another key or slot differ", () => {
    const bytes = Buffer.from("kv data");
    const h = (key: string, id: number) => slotDigest(key, id).update(bytes).digest("hex");
    assert.equal(h("k1", 0), h("k1", 0));
    assert.notEqual(h("k1", 0), h("k2", 0));
    assert.notEqual(h("k1", 0), h("k1", 1));
  });

  test("each restore is bounded: at least 5 s, plus the time to read the file at 50 MiB/s, within what is left", () => {
    assert.equal(restoreBoundMs(0, 30_000), RESTORE_MIN_MS);
    assert.equal(restoreBoundMs(500 * 1024 * 1024, 60_000), RESTORE_MIN_MS + 10_000);
    assert.equal(restoreBoundMs(500 * 1024 * 1024, 3_000), 3_000);
    assert.equal(restoreBoundMs(10, -5), 0);
  });
});

describe("context cache: the store trusts no file", () => {
  function setup(t: TestContext) {
    const root = mkdtempSync(join(tmpdir(), "ctx-trust-"));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const s = new SlotStore(root);
    const dir = s.modelDir("a", "/m/a.gguf");
    s.ensureDir(dir);
    return { root, s, dir };
  }
  async function saved(s: SlotStore, dir: string, id: number, data: Buffer, key = "k1") {
    const tmp = s.tempName(id);
    writeFileSync(join(dir, tmp), data);
    const { bytes, sha256 } = await s.seal(dir, tmp, id, key, data.length);
    return { file: s.finalName(id), tokens: 10, bytes, sha256, savedAt: 1, lastUsedAt: 1 };
  }
  const data = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 31) & 0xff));

  test("the file as saved passes; truncated, flipped, another model's or another slot's file fails", async (t) => {
    const { s, dir } = setup(t);
    const e = await saved(s, dir, 0, data);
    assert.equal(await s.check(dir, "k1", 0, e), undefined);
    assert.match((await s.check(dir, "k2", 0, e)) ?? "", /does not match/, "same bytes, another identity");
    const path = join(dir, "slot-0.bin");
    const flipped = Buffer.from(data);
    for (let i = 1024; i < 1024 + 4096; i++) flipped[i] = flipped[i]! ^ 0xff;
    writeFileSync(path, flipped);
    assert.match((await s.check(dir, "k1", 0, e)) ?? "", /does not match/);
    // another model's slot file of the same shape (same size), with its own valid entry in its own folder
    const other = s.modelDir("b", "/m/b.gguf");
    s.ensureDir(other);
    const eb = await saved(s, other, 0, Buffer.from(data).reverse(), "kb");
    writeFileSync(path, readFileSync(join(other, eb.file)));
    assert.match((await s.check(dir, "k1", 0, e)) ?? "", /does not match/);
    assert.match((await s.check(dir, "k1", 0, { ...eb })) ?? "", /does not match/, "even with its manifest entry");
    writeFileSync(path, data);
    truncateSync(path, data.length / 2);
    assert.match((await s.check(dir, "k1", 0, e)) ?? "", /32768 bytes, 65536 were saved/);
  });

  test("a FIFO or a symbolic link in place of a slot file is refused without being opened", async (t) => {
    const { s, dir } = setup(t);
    const e = await saved(s, dir, 0, data);
    const path = join(dir, "slot-0.bin");
    rmSync(path);
    execFileSync("mkfifo", [path]);
    const t0 = Date.now();
    assert.match((await s.check(dir, "k1", 0, e)) ?? "", /FIFO/);
    assert.ok(Date.now() - t0 < 1_000, "no wait on the FIFO");
    rmSync(path);
    const target = join(dir, "..", "elsewhere.bin");
    writeFileSync(target, data);
    symlinkSync(target, path);
    assert.match((await s.check(dir, "k1", 0, e)) ?? "", /symbolic link/);
    // seal refuses a temp file that is not a regular file either
    const tmp = s.tempName(1);
    execFileSync("mkfifo", [join(dir, tmp)]);
    await assert.rejects(s.seal(dir, tmp, 1, "k1"), /not a regular file \(fifo\)/);
  });

  test("a manifest entry naming a file outside the folder is dropped, and that file is never removed", (t) => {
    const { s, dir } = setup(t);
    const outside = mkdtempSync(join(tmpdir(), "ctx-outside-"));
    t.after(() => rmSync(outside, { recursive: true, force: true }));
    const victim = join(outside, "victim.txt");
    writeFileSync(victim, "keep me");
    const m = manifestFor(dir, {
      "0": { file: relative(dir, victim), tokens: 1, bytes: 7, sha256: HASH, savedAt: 1, lastUsedAt: 1 },
      "1": { file: victim, tokens: 1, bytes: 7, sha256: HASH, savedAt: 1, lastUsedAt: 1 },
      "2": { file: "slot-2.bin", tokens: 1, bytes: 7, sha256: HASH, savedAt: 1, lastUsedAt: 1 },
    });
    writeFileSync(join(dir, "state.json"), JSON.stringify(m));
    const read = s.readChecked(dir);
    assert.deepEqual(Object.keys(read.manifest?.slots ?? {}), ["2"]);
    assert.equal(read.rejected.length, 2);
    // every way the store removes files
    s.removeFile(dir, relative(dir, victim));
    s.removeFile(dir, victim);
    s.removeKeys([`${dir}\n0`, `${dir}\n1`, `${dir}\n2`]);
    s.sweep(() => true);
    assert.equal(readFileSync(victim, "utf8"), "keep me");
  });

  test("a model folder that is a symbolic link is refused, and its target is never emptied", (t) => {
    const { root, s } = setup(t);
    const outside = mkdtempSync(join(tmpdir(), "ctx-outside-"));
    t.after(() => rmSync(outside, { recursive: true, force: true }));
    writeFileSync(join(outside, "precious.txt"), "x");
    writeFileSync(join(outside, "state.json"), JSON.stringify(manifestFor(outside, {})));
    const linked = s.modelDir("l", "/m/l.gguf");
    symlinkSync(outside, linked);
    assert.throws(() => s.ensureDir(linked), /not a folder \(a symbolic link or a file\)/);
    s.discard(linked);
    s.sweep(() => true);
    assert.deepEqual(readdirSync(outside).sort(), ["precious.txt", "state.json"]);
    assert.equal(existsSync(linked), false, "the link itself is swept");
    assert.ok(existsSync(root));
  });

  function manifestFor(dir: string, slots: Record<string, unknown>) {
    return { version: 1, model: "a", modelPath: "/m/a.gguf", key: "k1", identity: base, slots, dir };
  }
});
