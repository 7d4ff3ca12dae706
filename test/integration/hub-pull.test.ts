// pullModel against the local fake hub (test/support/fake-hub.ts): @huggingface/hub's calls on the fake's API
// shapes, shards + projector placed where the models-folder scan names them like the registry, resume after a cut
// (in one run and across runs), checksum refusal, 401/403/404 messages, abort, stall, re-pull, and the default
// choice against a memory budget.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listFiles, modelInfo, pathsInfo } from "@huggingface/hub";
import { isGglibError } from "../../src/core/errors.js";
import { encodeGguf, GgufValue } from "../support/gguf-writer.js";
import { pullModel, type PullOptions, type PullProgress } from "../../src/hub/pull.js";
import { partPaths } from "../../src/hub/download.js";
import { Registry } from "../../src/models/registry.js";
import { scanModelsDir } from "../../src/models/sources.js";
import type { MemorySnapshot, SystemProbe } from "../../src/system/types.js";
import { startFakeHub, type FakeHub } from "../support/fake-hub.js";
import { tinyModelDocument } from "../support/tiny-models.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let hub: FakeHub;
let tiny: Uint8Array;
let tinyB: Uint8Array;
let mmproj: Uint8Array;
let big: Uint8Array;
const dirs: string[] = [];

async function waitUntil(ok: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "gglib-pull-"));
  dirs.push(d);
  return d;
}

/** Fast retries for tests. */
const quick: PullOptions["download"] = { retryDelayMs: 5, stallMs: 300, progressIntervalMs: 0 };

function opts(modelsDir: string, extra: Partial<PullOptions> = {}): PullOptions {
  return { modelsDir, hubUrl: hub.url, env: {}, download: quick, ...extra };
}

before(async () => {
  tiny = await encodeGguf(tinyModelDocument({ name: "tiny-chat", kind: "chat" }));
  tinyB = await encodeGguf(tinyModelDocument({ name: "tiny-b", kind: "chat", seed: 7 }));
  mmproj = await encodeGguf({
    metadata: {
      "general.architecture": GgufValue.string("clip"),
      "general.type": GgufValue.string("mmproj"),
      "clip.has_vision_encoder": GgufValue.bool(true),
    },
  });
  // a bigger "Q4_K_M": the tiny model plus 3 MiB of padding after its tensors (the header reads the same)
  big = new Uint8Array(tiny.length + 3 * 2 ** 20);
  big.set(tiny);
  hub = await startFakeHub({
    pageSize: 2,
    repos: [
      {
        id: "test-user/tiny-GGUF",
        files: [
          { path: "README.md", content: Buffer.from("# tiny\n") },
          { path: "tiny-chat-F16.gguf", content: tiny },
        ],
      },
      {
        id: "test-user/vision-GGUF",
        files: [
          { path: "vis-Q8_0-00001-of-00002.gguf", content: tiny },
          { path: "vis-Q8_0-00002-of-00002.gguf", content: tinyB },
          { path: "mmproj-vis-f16.gguf", content: mmproj },
          { path: "config.json", content: Buffer.from("{}") },
        ],
      },
      {
        id: "test-user/multi-GGUF",
        files: [
          { path: "multi-Q4_K_M.gguf", content: big },
          { path: "multi-Q2_K.gguf", content: tiny },
        ],
      },
      {
        id: "test-user/private-GGUF",
        private: true,
        allowedTokens: ["hf_owner"],
        files: [{ path: "p-F16.gguf", content: tiny }],
      },
      {
        id: "test-org/gated-GGUF",
        gated: "manual",
        allowedTokens: ["hf_granted"],
        files: [{ path: "g-F16.gguf", content: tiny }],
      },
      { id: "test-user/empty", files: [{ path: "README.md", content: Buffer.from("nothing") }] },
      { id: "test-user/in-git", files: [{ path: "small-Q8_0.gguf", content: tinyB, git: true }] },
      { id: "test-user/huge-GGUF", files: [{ path: "huge-F16.gguf", content: tiny, listedSize: 2 ** 50 }] },
      { id: "test-user/shrunk-GGUF", files: [{ path: "shrunk-F16.gguf", content: tiny, listedSize: 100_000 }] },
    ],
    validTokens: ["hf_valid", "hf_owner", "hf_granted"],
  });
});

after(async () => {
  await hub?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("the fake hub speaks what @huggingface/hub expects", () => {
  test("listFiles (recursive, paged by Link), modelInfo, pathsInfo", async () => {
    const all = [];
    for await (const e of listFiles({ repo: "test-user/vision-GGUF", recursive: true, hubUrl: hub.url })) all.push(e);
    assert.equal(all.length, 4, "4 entries over 2 pages");
    const shard = all.find((e) => e.path === "vis-Q8_0-00001-of-00002.gguf")!;
    assert.equal(shard.lfs?.oid, sha256(tiny));
    assert.equal(shard.lfs?.size, tiny.length);
    const info = await modelInfo({ name: "test-org/gated-GGUF", hubUrl: hub.url, additionalFields: ["sha"] });
    assert.equal(info.gated, "manual");
    assert.match(String(info.sha), /^[0-9a-f]{40}$/);
    const p = await pathsInfo({ repo: "test-user/tiny-GGUF", paths: ["tiny-chat-F16.gguf"], hubUrl: hub.url });
    assert.equal(p[0]?.lfs?.oid, sha256(tiny));
  });
});

describe("pullModel", () => {
  test("a single-file model: placed, verified, registered under the name the folder scan gives it", async () => {
    const dir = tmp();
    const registry = Registry.open({ dbPath: ":memory:" });
    const events: PullProgress[] = [];
    hub.requests.length = 0;
    const r = await pullModel("test-user/tiny-GGUF", {
      ...opts(dir, { registry, token: "hf_valid" }),
      onProgress: (p) => events.push(p),
    });
    assert.equal(r.name, "tiny-chat-F16");
    assert.deepEqual(r.aliases, ["test-user/tiny-GGUF:F16", "test-user/tiny-GGUF"]);
    assert.equal(r.quant, "F16");
    assert.equal(r.modelPath, join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16", "tiny-chat-F16.gguf"));
    assert.equal(sha256(readFileSync(r.modelPath)), sha256(tiny));
    assert.equal(r.transferredBytes, tiny.length);
    assert.equal(r.registered, true);
    const m = registry.require("test-user/tiny-GGUF:F16");
    assert.equal(m.name, "tiny-chat-F16");
    assert.equal(m.path, r.modelPath);
    // the folder scan sees the same model under the same name, and nothing else (no part/lock files)
    assert.deepEqual(
      scanModelsDir(dir).models.map((x) => [x.name, x.path]),
      [["tiny-chat-F16", r.modelPath]],
    );
    assert.deepEqual(readdirSync(join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16")).sort(), [
      ".gglib-pull.json",
      "tiny-chat-F16.gguf",
    ]);
    // progress in order, Ollama-like texts
    const phases = [...new Set(events.map((e) => e.phase))];
    assert.deepEqual(phases, ["manifest", "choose", "download", "verify", "register", "done"]);
    assert.equal(events[0]!.status, "pulling manifest");
    assert.equal(events.at(-1)!.status, "success");
    const dl = events.filter((e) => e.phase === "download");
    assert.equal(dl.at(-1)!.completed, tiny.length);
    assert.equal(dl[0]!.digest, `sha256:${sha256(tiny)}`);
    // the token went to the hub, never to the file server the hub redirects to
    assert.ok(hub.requests.some((q) => q.server === "hub" && q.token === "hf_valid"));
    const fileReqs = hub.requests.filter((q) => q.server === "files");
    assert.ok(fileReqs.length >= 1);
    assert.ok(
      fileReqs.every((q) => q.token === undefined),
      "no Authorization header on the file server",
    );
    registry.close();
  });

  test("shards and the projector: every file, the scan and the registry agree on the model and its mmproj", async () => {
    const dir = tmp();
    const registry = Registry.open({ dbPath: ":memory:" });
    const r = await pullModel("test-user/vision-GGUF:Q8_0", opts(dir, { registry }));
    assert.equal(r.name, "vis-Q8_0");
    assert.deepEqual(r.aliases, ["test-user/vision-GGUF:Q8_0"]);
    assert.deepEqual(
      r.files.map((f) => [f.repoPath, f.role]),
      [
        ["vis-Q8_0-00001-of-00002.gguf", "model"],
        ["vis-Q8_0-00002-of-00002.gguf", "model"],
        ["mmproj-vis-f16.gguf", "mmproj"],
      ],
    );
    const m = registry.require("vis-Q8_0");
    assert.equal(m.shards.length, 2);
    assert.equal(m.mmproj, r.mmproj);
    assert.equal(sha256(readFileSync(m.shards[1]!)), sha256(tinyB));
    const scanned = scanModelsDir(dir).models;
    assert.equal(scanned.length, 1);
    assert.equal(scanned[0]!.name, "vis-Q8_0");
    assert.equal(scanned[0]!.mmproj, r.mmproj);
    registry.close();
  });

  test("--no-mmproj leaves the projector out; an unknown projector tag is refused", async () => {
    const dir = tmp();
    const r = await pullModel("test-user/vision-GGUF", opts(dir, { mmproj: false }));
    assert.equal(r.mmproj, undefined);
    assert.equal(r.files.length, 2);
    await assert.rejects(
      pullModel("test-user/vision-GGUF", opts(tmp(), { mmproj: "Q4_0" })),
      /has no projector "Q4_0"/,
    );
  });

  test("a connection cut mid-file is picked up with a Range request, in the same pull", async () => {
    const dir = tmp();
    hub.requests.length = 0;
    hub.faults = { cut: { path: "tiny-chat-F16.gguf", afterBytes: 50_000, times: 2 } };
    const r = await pullModel("test-user/tiny-GGUF:F16", opts(dir));
    hub.faults = {};
    assert.equal(sha256(readFileSync(r.modelPath)), sha256(tiny));
    const ranges = hub.requests.filter((q) => q.server === "files").map((q) => q.range);
    assert.deepEqual(ranges, [undefined, "bytes=50000-", "bytes=100000-"]);
    assert.equal(r.transferredBytes, tiny.length, "no byte fetched twice");
  });

  test("a pull that gave up resumes in the next run from the partial file", async () => {
    const dir = tmp();
    hub.faults = { cut: { path: "tiny-chat-F16.gguf", afterBytes: 70_000, times: 5 } };
    await assert.rejects(
      pullModel("test-user/tiny-GGUF", opts(dir, { download: { ...quick, maxAttempts: 1 } })),
      (e: unknown) => isGglibError(e, "download_failed") && /resumes from byte 70000/.test(e.details.hint ?? ""),
    );
    const dest = join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16", "tiny-chat-F16.gguf");
    assert.equal(readFileSync(partPaths(dest).part).length, 70_000, "the part file is kept");
    assert.equal(existsSync(dest), false);
    hub.faults = {};
    hub.requests.length = 0;
    const r = await pullModel("test-user/tiny-GGUF", opts(dir));
    assert.equal(r.files[0]!.resumedFrom, 70_000);
    assert.equal(r.transferredBytes, tiny.length - 70_000);
    assert.deepEqual(
      hub.requests.filter((q) => q.server === "files").map((q) => q.range),
      ["bytes=70000-"],
    );
    assert.equal(sha256(readFileSync(dest)), sha256(tiny));
    assert.equal(existsSync(partPaths(dest).part), false);
    assert.equal(existsSync(partPaths(dest).meta), false);
  });

  test("a server that ignores Range on resume: the file restarts from byte 0 and still verifies", async () => {
    const dir = tmp();
    hub.faults = { cut: { path: "tiny-chat-F16.gguf", afterBytes: 40_000, times: 1 }, ignoreRanges: true };
    const r = await pullModel("test-user/tiny-GGUF", opts(dir));
    hub.faults = {};
    assert.equal(sha256(readFileSync(r.modelPath)), sha256(tiny));
    assert.equal(r.transferredBytes, 40_000 + tiny.length);
  });

  test("a stalled connection is given up after stallMs and retried", async () => {
    const dir = tmp();
    hub.faults = { stall: { path: "tiny-chat-F16.gguf", afterBytes: 10_000, times: 1 } };
    const r = await pullModel("test-user/tiny-GGUF", opts(dir));
    hub.faults = {};
    assert.equal(sha256(readFileSync(r.modelPath)), sha256(tiny));
  });

  test("a wrong checksum is refused and the download removed (after one fresh retry)", async () => {
    const dir = tmp();
    const registry = Registry.open({ dbPath: ":memory:" });
    hub.requests.length = 0;
    hub.faults = { corrupt: { path: "tiny-chat-F16.gguf" } };
    await assert.rejects(
      pullModel("test-user/tiny-GGUF", opts(dir, { registry })),
      (e: unknown) =>
        isGglibError(e, "checksum_mismatch") &&
        /does not match the hub's checksum \(SHA-256 [0-9a-f]{64} instead of [0-9a-f]{64}\); the download was removed/.test(
          e.message,
        ),
    );
    hub.faults = {};
    assert.equal(hub.requests.filter((q) => q.server === "files").length, 2, "tried twice");
    const folder = join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16");
    assert.deepEqual(readdirSync(folder), [], "no model, no part file, no lock left");
    assert.equal(registry.list().length, 0);
    registry.close();
  });

  test("a .gguf kept in git (no LFS oid) is served by the hub itself and checked by its git blob id", async () => {
    hub.requests.length = 0;
    const r = await pullModel("test-user/in-git", opts(tmp()));
    assert.equal(sha256(readFileSync(r.modelPath)), sha256(tinyB));
    assert.equal(r.files[0]!.sha256, undefined);
    assert.equal(hub.requests.filter((q) => q.server === "files").length, 0, "no redirect for a git file");
    hub.faults = { corrupt: { path: "small-Q8_0.gguf" } };
    await assert.rejects(pullModel("test-user/in-git", opts(tmp())), /git SHA-1 [0-9a-f]{40} instead of/);
    hub.faults = {};
  });

  test("a checksum failure once: the fresh retry succeeds", async () => {
    hub.faults = { corrupt: { path: "tiny-chat-F16.gguf", times: 1 } };
    const r = await pullModel("test-user/tiny-GGUF", opts(tmp()));
    hub.faults = {};
    assert.equal(sha256(readFileSync(r.modelPath)), sha256(tiny));
  });

  test("pulling again reuses the verified files", async () => {
    const dir = tmp();
    const registry = Registry.open({ dbPath: ":memory:" });
    await pullModel("test-user/vision-GGUF", opts(dir, { registry }));
    hub.requests.length = 0;
    const r = await pullModel("test-user/vision-GGUF", opts(dir, { registry }));
    assert.equal(r.transferredBytes, 0);
    assert.ok(r.files.every((f) => f.reused));
    assert.equal(hub.requests.filter((q) => q.server === "files").length, 0);
    assert.equal(registry.list().length, 1);
    registry.close();
  });

  test("a file already there without the manifest is re-hashed: kept when right, fetched again when not", async () => {
    const dir = tmp();
    const first = await pullModel("test-user/tiny-GGUF", opts(dir));
    const folder = join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16");
    rmSync(join(folder, ".gglib-pull.json"));
    const kept = await pullModel("test-user/tiny-GGUF", opts(dir));
    assert.equal(kept.transferredBytes, 0);
    assert.ok(existsSync(join(folder, ".gglib-pull.json")), "the manifest is written again");
    const bytes = readFileSync(first.modelPath);
    bytes[1000] = bytes[1000]! ^ 1; // same size, other content
    writeFileSync(first.modelPath, bytes);
    const fixed = await pullModel("test-user/tiny-GGUF", opts(dir));
    assert.equal(fixed.transferredBytes, tiny.length);
    assert.equal(sha256(readFileSync(first.modelPath)), sha256(tiny));
  });

  test("one pull per model folder: a second one at the same time is refused; a dead pull's lock is taken over", async () => {
    const dir = tmp();
    hub.faults = { throttle: 400_000 };
    hub.requests.length = 0;
    const first = pullModel("test-user/tiny-GGUF", opts(dir));
    await waitUntil(() => hub.fileRequests("tiny-chat-F16.gguf").some((q) => q.server === "files"));
    await assert.rejects(pullModel("test-user/tiny-GGUF", opts(dir)), /A pull into .* is already running/);
    await first;
    hub.faults = {};
    const folder = join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16");
    writeFileSync(join(folder, ".gglib-pull.lock"), "4194000"); // no such process
    rmSync(join(folder, "tiny-chat-F16.gguf"));
    const again = await pullModel("test-user/tiny-GGUF", opts(dir));
    assert.equal(again.transferredBytes, tiny.length);
    assert.equal(existsSync(join(folder, ".gglib-pull.lock")), false);
  });

  test("abort: the pull rejects, the partial file stays for the next run", async () => {
    const dir = tmp();
    const ac = new AbortController();
    hub.faults = { stall: { path: "tiny-chat-F16.gguf", afterBytes: 20_000, times: 1 } };
    const p = pullModel("test-user/tiny-GGUF", {
      ...opts(dir, { signal: ac.signal, download: { ...quick, stallMs: 30_000 } }),
      onProgress: (e) => {
        if (e.phase === "download" && (e.completed ?? 0) >= 20_000) ac.abort(new Error("stopped by the test"));
      },
    });
    await assert.rejects(p, /stopped by the test/);
    hub.faults = {};
    const dest = join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16", "tiny-chat-F16.gguf");
    assert.equal(readFileSync(partPaths(dest).part).length, 20_000);
    assert.equal(existsSync(join(dir, "test-user", "tiny-GGUF", "tiny-chat-F16", ".gglib-pull.lock")), false);
  });
});

describe("errors a user sees", () => {
  const fails = async (ref: string, extra: Partial<PullOptions>, kind: string, re: RegExp, hint?: RegExp) => {
    await assert.rejects(pullModel(ref, opts(tmp(), extra)), (e: unknown) => {
      assert.ok(isGglibError(e), String(e));
      assert.equal(e.kind, kind, e.message);
      assert.match(e.message, re);
      if (hint) assert.match(e.details.hint ?? "", hint);
      return true;
    });
  };

  test("private repo: 401 without a token, works with the owner's", async () => {
    await fails(
      "test-user/private-GGUF",
      {},
      "hub_auth",
      /does not exist, or it is private and needs a token \(401\)/,
      /HF_TOKEN=hf_/,
    );
    const r = await pullModel("test-user/private-GGUF", opts(tmp(), { env: { HF_TOKEN: "hf_owner" } }));
    assert.equal(r.name, "p-F16");
  });

  test("gated repo: no token, a token without access (403), a granted token", async () => {
    await fails("test-org/gated-GGUF", {}, "hub_auth", /is gated: it needs a token/, /accept its terms/);
    await fails(
      "test-org/gated-GGUF",
      { token: "hf_valid" },
      "hub_auth",
      /has not been granted access \(403\).*not in the authorized list/,
      /Ask for access/,
    );
    const r = await pullModel("test-org/gated-GGUF", opts(tmp(), { token: "hf_granted" }));
    assert.equal(r.name, "g-F16");
  });

  test("a token the hub does not know", async () => {
    await fails("test-user/tiny-GGUF", { token: "hf_bogus" }, "hub_auth", /refused the token/, /Check HF_TOKEN/);
  });

  test("404s: no such repo (with a token), no such quantization, no such revision, no GGUF at all", async () => {
    await fails("test-user/nope", { token: "hf_valid" }, "hub_not_found", /no model repo test-user\/nope/);
    await fails("test-user/nope", {}, "hub_auth", /does not exist, or it is private/);
    await fails(
      "test-user/tiny-GGUF:Q4_K_M",
      {},
      "hub_not_found",
      /has no GGUF model "Q4_K_M"/,
      /Available in .*: F16/,
    );
    await fails("test-user/tiny-GGUF@nobranch", {}, "hub_not_found", /has no revision "nobranch"/);
    await fails("test-user/empty", {}, "hub_not_found", /holds no GGUF model/);
  });

  test("a file that vanished from the storage answers 404: a clear message, no retry loop", async () => {
    hub.faults = { status: { path: "tiny-chat-F16.gguf", code: 404, times: 1 } };
    hub.requests.length = 0;
    await fails(
      "test-user/tiny-GGUF",
      {},
      "hub_not_found",
      /tiny-chat-F16.gguf in test-user\/tiny-GGUF does not exist \(404\)/,
    );
    assert.equal(hub.fileRequests("tiny-chat-F16.gguf").filter((q) => q.server === "files").length, 1);
    hub.faults = { status: { path: "tiny-chat-F16.gguf", code: 503, times: 2 } };
    const r = await pullModel("test-user/tiny-GGUF", opts(tmp()));
    assert.equal(r.files[0]!.transferred, tiny.length, "a 503 is retried");
    hub.faults = {};
  });

  test("not enough disk space: refused before any byte is fetched", async () => {
    hub.requests.length = 0;
    await fails(
      "test-user/huge-GGUF",
      {},
      "download_failed",
      /Not enough disk space in .*: the pull needs 1024 TiB, [\d.]+ [KMGT]?i?B is free\./,
    );
    assert.equal(hub.requests.filter((q) => q.server === "files").length, 0);
  });

  test("a server sending more than the listing says: refused, not written past the size", async () => {
    await fails("test-user/shrunk-GGUF", {}, "download_failed", /sent more than the 100000 bytes the hub lists/);
  });

  test("a name taken by another registered model is refused before downloading", async () => {
    const registry = Registry.open({ dbPath: ":memory:" });
    const first = await pullModel("test-user/tiny-GGUF", opts(tmp(), { registry }));
    hub.requests.length = 0;
    await assert.rejects(
      pullModel("test-user/tiny-GGUF", opts(tmp(), { registry })),
      /"tiny-chat-F16" is already the name of a registered model/,
    );
    assert.equal(hub.requests.filter((q) => q.server === "files").length, 0);
    const other = await pullModel("test-user/tiny-GGUF", opts(tmp(), { registry, name: "tiny-two" }));
    assert.equal(other.name, "tiny-two");
    assert.deepEqual(other.aliases, [], "the aliases stay with the first");
    assert.equal(registry.require("test-user/tiny-GGUF").name, first.name);
    registry.close();
  });
});

describe("the default quantization", () => {
  const probe = (availableBytes: number): SystemProbe => {
    const snap: MemorySnapshot = {
      ram: { totalBytes: availableBytes, availableBytes, source: "os" },
      gpus: [],
      takenAt: 0,
    };
    return {
      memory: () => Promise.resolve(snap),
      probe: () => Promise.reject(new Error("not used")),
    };
  };

  test("Q4_K_M when it fits, the smaller Q2_K when it does not (estimator on the header read from the hub)", async () => {
    const GIB = 2 ** 30;
    // headroom is 1 GiB; the Q4_K_M file is 3 MiB bigger than the Q2_K one
    const roomy = await pullModel(
      "test-user/multi-GGUF",
      opts(tmp(), { probe: probe(GIB + 64 * 2 ** 20), dryRun: true }),
    );
    assert.equal(roomy.quant, "Q4_K_M");
    assert.match(roomy.reason, /fits this machine/);
    const tight = await pullModel(
      "test-user/multi-GGUF",
      opts(tmp(), { probe: probe(GIB + 3.5 * 2 ** 20), dryRun: true }),
    );
    assert.equal(tight.quant, "Q2_K", tight.reason);
    assert.match(tight.reason, /Q4_K_M would not fit/);
    const headerReads = hub.requests.filter((q) => q.server === "files" && q.range?.startsWith("bytes=0-"));
    assert.ok(headerReads.length > 0, "the header was read with a range");
  });
});
