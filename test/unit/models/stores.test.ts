/**
 * Zero-copy discovery (src/models/stores): each store's layout written by the test as its tool writes it
 * (test/support/tool-stores.ts) with tiny GGUFs; names, projectors, dedupe by file identity, the selection of
 * stores (config, flag, GGLIB_STORES, a home-less environment), warnings for broken entries, and that nothing in
 * a store is ever written.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  linkSync,
  mkdirSync,
  readFileSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModelSources, type ModelEntry } from "../../../src/models/sources.js";
import {
  notOursMessage,
  parseStoreList,
  scanStores,
  selectStores,
  foldSameFiles,
} from "../../../src/models/stores/index.js";
import { storeRoots, type LocationContext } from "../../../src/models/stores/locations.js";
import { ollamaModelName, parseOllamaManifest, scanOllama } from "../../../src/models/stores/ollama.js";
import { repoOfCacheFolder, scanHfCache } from "../../../src/models/stores/hf-cache.js";
import { nameRepoModels } from "../../../src/models/stores/repo-names.js";
import { parseHfRef, resolveHfRef } from "../../../src/models/stores/hf-ref.js";
import { configModelsOf, parseConfig } from "../../../src/models/config-file.js";
import { resolveModelRef } from "../../../src/models/resolve.js";
import { scanLmStudio } from "../../../src/models/stores/lmstudio.js";
import { scanLlamaCache } from "../../../src/models/stores/llama-cache.js";
import { isRelevantChange, watchStores } from "../../../src/models/stores/watch.js";
import { writeHfCacheRepo, writeLmStudioModel, writeOllamaModel } from "../../support/tool-stores.js";
import { writeTinyModel } from "../../support/tiny-models.js";

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), "gglib-stores-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Every file and folder under `dir` with its size and mtime: a store's state, to prove nothing was written. */
function treeState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = statSync(p, { throwIfNoEntry: false });
      out.push(`${p} ${e.isSymbolicLink() ? "link" : ""} ${st?.size ?? "dangling"} ${st?.mtimeMs ?? ""}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

async function tinies(dir: string): Promise<{ a: string; b: string; think: string; proj: string }> {
  mkdirSync(dir, { recursive: true });
  return {
    a: await writeTinyModel(dir, { name: "tiny-a", kind: "chat", seed: 1 }),
    b: await writeTinyModel(dir, { name: "tiny-b", kind: "chat", seed: 2 }),
    think: await writeTinyModel(dir, { name: "tiny-think", kind: "think", seed: 3 }),
    // any GGUF stands in for a projector: discovery goes by media type or file name, not content
    proj: await writeTinyModel(dir, { name: "mmproj-tiny-f16", kind: "chat", seed: 4 }),
  };
}

const ctx = (over: Partial<LocationContext>): LocationContext => ({
  env: {},
  home: "/home/u",
  platform: "linux",
  readText: () => undefined,
  exists: () => false,
  ...over,
});

describe("store locations", () => {
  test("each tool's environment variables first, then its default places", () => {
    assert.deepEqual(storeRoots(ctx({})), {
      ollama: ["/home/u/.ollama/models", "/usr/share/ollama/.ollama/models"],
      lmstudio: ["/home/u/.lmstudio/models"],
      "hf-cache": ["/home/u/.cache/huggingface/hub"],
      "llama-cache": ["/home/u/.cache/llama.cpp"],
    });
    const env = { OLLAMA_MODELS: "/o", HF_HOME: "/hf", LLAMA_CACHE: "/lc" };
    assert.deepEqual(storeRoots(ctx({ env })).ollama, ["/o"]);
    assert.deepEqual(storeRoots(ctx({ env }))["hf-cache"], ["/hf/hub"]);
    assert.deepEqual(storeRoots(ctx({ env: { ...env, HF_HUB_CACHE: "/hub" } }))["hf-cache"], ["/hub"]);
    assert.deepEqual(storeRoots(ctx({ env: { XDG_CACHE_HOME: "/x" } }))["hf-cache"], ["/x/huggingface/hub"]);
    assert.deepEqual(storeRoots(ctx({ env: { XDG_CACHE_HOME: "/x" } }))["llama-cache"], ["/x/llama.cpp"]);
    assert.deepEqual(storeRoots(ctx({ env }))["llama-cache"], ["/lc"]);
    assert.deepEqual(storeRoots(ctx({ platform: "darwin" }))["llama-cache"], ["/home/u/Library/Caches/llama.cpp"]);
    assert.deepEqual(storeRoots(ctx({ platform: "darwin" })).ollama, ["/home/u/.ollama/models"]);
  });

  test("LM Studio: the home pointer, the older ~/.cache/lm-studio, settings.json's downloadsFolder", () => {
    const files: Record<string, string> = {};
    const c = ctx({ readText: (p) => files[p], exists: (p) => p === "/home/u/.cache/lm-studio" });
    assert.deepEqual(storeRoots(c).lmstudio, ["/home/u/.cache/lm-studio/models"]);
    files["/home/u/.lmstudio-home-pointer"] = "/data/lms\n";
    assert.deepEqual(storeRoots(c).lmstudio, ["/data/lms/models"]);
    files["/data/lms/settings.json"] = JSON.stringify({ downloadsFolder: "/big/models", other: 1 });
    assert.deepEqual(storeRoots(c).lmstudio, ["/big/models"]);
    files["/data/lms/settings.json"] = "{ not json";
    assert.deepEqual(storeRoots(c).lmstudio, ["/data/lms/models"]);
  });

  test("an environment without HOME reads no default place, only the folders it names", () => {
    assert.deepEqual(storeRoots(ctx({ home: undefined })), {
      ollama: [],
      lmstudio: [],
      "hf-cache": [],
      "llama-cache": [],
    });
    assert.deepEqual(selectStores({ env: { GGLIB_DATA_DIR: "/d" } }), {
      ollama: [],
      lmstudio: [],
      "hf-cache": [],
      "llama-cache": [],
    });
  });

  test("selection: config false / per store / a folder, --skip-store, GGLIB_STORES", () => {
    const env = { HOME: "/h", OLLAMA_MODELS: "/o" };
    assert.deepEqual(Object.keys(selectStores({ env })), ["ollama", "lmstudio", "hf-cache", "llama-cache"]);
    assert.deepEqual(selectStores({ env, config: false }), {});
    assert.deepEqual(selectStores({ env, skip: "all" }), {});
    assert.deepEqual(Object.keys(selectStores({ env, config: { lmstudio: false, hfCache: false } })), [
      "ollama",
      "llama-cache",
    ]);
    assert.deepEqual(selectStores({ env, config: { ollama: "rel" }, resolvePath: (p) => `/cfg/${p}` }).ollama, [
      "/cfg/rel",
    ]);
    assert.deepEqual(Object.keys(selectStores({ env, skip: ["ollama", "llama-cache"] })), ["lmstudio", "hf-cache"]);
    assert.deepEqual(selectStores({ env: { ...env, GGLIB_STORES: "none" } }), {});
    assert.deepEqual(Object.keys(selectStores({ env: { ...env, GGLIB_STORES: "ollama" } })), ["ollama"]);
    assert.deepEqual(parseStoreList(["ollama,hf-cache", "ollama"]), ["ollama", "hf-cache"]);
    assert.equal(parseStoreList(["all"]), "all");
    assert.throws(() => parseStoreList(["olama"]), /"olama" is not a store; the stores are ollama, lmstudio/);
  });
});

describe("Ollama", () => {
  test("manifest parsing and Ollama's short names", () => {
    const d = (c: string) => `sha256:${c.repeat(64)}`;
    const ok = parseOllamaManifest(
      JSON.stringify({
        schemaVersion: 2,
        layers: [
          { mediaType: "application/vnd.ollama.image.model", digest: d("a"), size: 1 },
          { mediaType: "application/vnd.ollama.image.projector", digest: d("b"), size: 1 },
          { mediaType: "application/vnd.ollama.image.template", digest: d("c"), size: 1 },
          { mediaType: "application/vnd.ollama.image.params", digest: d("e"), size: 1 },
          { mediaType: "application/vnd.ollama.image.adapter", digest: d("f"), size: 1 },
        ],
      }),
    );
    assert.deepEqual(ok, {
      ok: true,
      manifest: { model: d("a"), projector: d("b"), template: d("c"), params: d("e"), adapters: 1 },
    });
    assert.match(String((parseOllamaManifest("{") as { reason: string }).reason), /not JSON/);
    assert.match(
      String((parseOllamaManifest('{"layers":[]}') as { reason: string }).reason),
      /no .*image\.model layer/,
    );
    const bad = parseOllamaManifest(
      JSON.stringify({ layers: [{ mediaType: "application/vnd.ollama.image.model", digest: "sha256:xyz" }] }),
    );
    assert.match(String((bad as { reason: string }).reason), /malformed digest "sha256:xyz"/);
    assert.equal(ollamaModelName("registry.ollama.ai", "library", "qwen3", "8b"), "qwen3:8b");
    assert.equal(ollamaModelName("registry.ollama.ai", "library", "qwen3", "latest"), "qwen3");
    assert.equal(ollamaModelName("registry.ollama.ai", "me", "agent", "v1"), "me/agent:v1");
    assert.equal(ollamaModelName("hf.co", "org", "Repo-GGUF", "Q4_K_M"), "hf.co/org/Repo-GGUF:Q4_K_M");
  });

  test("a store as Ollama writes it: names, projector, params and template shown; two tags of one blob are one model", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const root = join(d, "ollama");
    writeOllamaModel(root, {
      model: "qwen3",
      tag: "8b",
      gguf: m.a,
      params: { temperature: 0.6, stop: ["<|im_end|>"] },
      template: "{{ .Prompt }}",
    });
    writeOllamaModel(root, { model: "qwen3", tag: "latest", gguf: m.a });
    writeOllamaModel(root, { model: "me/vision", tag: "v1", gguf: m.b, projector: m.proj, system: "be brief" });
    writeOllamaModel(root, { model: "hf.co/org/Think-GGUF", tag: "Q4_K_M", gguf: m.think });
    const before = treeState(root);
    const scan = scanOllama(root);
    assert.deepEqual(scan.warnings, []);
    assert.deepEqual(scan.watch, [join(root, "manifests")]);
    assert.deepEqual(
      scan.models.map((x) => x.name),
      ["hf.co/org/Think-GGUF:Q4_K_M", "qwen3:8b", "qwen3", "me/vision:v1"],
    );
    const q = scan.models.find((x) => x.name === "qwen3:8b")!;
    assert.match(q.path, /blobs\/sha256-[0-9a-f]{64}$/);
    assert.deepEqual(q.info.params, { temperature: 0.6, stop: ["<|im_end|>"] });
    assert.equal(q.info.template, "{{ .Prompt }}");
    const v = scan.models.find((x) => x.name === "me/vision:v1")!;
    assert.match(v.mmproj ?? "", /blobs\/sha256-/);
    assert.equal(v.info.system, "be brief");
    // through the sources: the two tags of one blob are one model, the other name its alias
    const s = loadModelSources({ stores: { ollama: [root] } });
    const names = s.models.map((x) => [x.name, x.aliases, x.source]);
    assert.deepEqual(names, [
      ["hf.co/org/Think-GGUF:Q4_K_M", [], "ollama"],
      ["qwen3:8b", ["qwen3"], "ollama"],
      ["me/vision:v1", [], "ollama"],
    ]);
    assert.equal(s.clashes.length, 1);
    assert.equal(s.clashes[0]!.samePath, true);
    assert.match(s.clashes[0]!.message, /"qwen3" \(ollama\) is the same file as "qwen3:8b" \(ollama\)/);
    assert.deepEqual(treeState(root), before, "reading the store wrote nothing");
  });

  test("a broken manifest, a missing blob, a model-less manifest: a clear warning each, the rest still served", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const root = join(d, "ollama");
    writeOllamaModel(root, { model: "good", tag: "latest", gguf: m.a });
    const lib = join(root, "manifests", "registry.ollama.ai", "library");
    mkdirSync(join(lib, "broken"), { recursive: true });
    writeFileSync(join(lib, "broken", "latest"), '{"schemaVersion": 2, "layers": [');
    const gone = writeOllamaModel(root, { model: "gone", tag: "1b", gguf: Buffer.from("GGUF-not-really") });
    void gone;
    unlinkSync(
      join(
        root,
        "blobs",
        readdirSync(join(root, "blobs")).find((f) => statSync(join(root, "blobs", f)).size === 15)!,
      ),
    );
    mkdirSync(join(lib, "embed-only"), { recursive: true });
    writeFileSync(
      join(lib, "embed-only", "latest"),
      JSON.stringify({
        layers: [{ mediaType: "application/vnd.ollama.image.license", digest: `sha256:${"1".repeat(64)}` }],
      }),
    );
    const scan = scanOllama(root);
    assert.deepEqual(
      scan.models.map((x) => x.name),
      ["good"],
    );
    assert.equal(scan.warnings.length, 3, scan.warnings.join("\n"));
    assert.match(scan.warnings.join("\n"), /the manifest of broken \(.*broken\/latest\) is unusable: not JSON/);
    assert.match(
      scan.warnings.join("\n"),
      /gone:1b's model blob .* is missing \(an interrupted pull or a prune\?\); skipped/,
    );
    assert.match(scan.warnings.join("\n"), /embed-only.*no application\/vnd\.ollama\.image\.model layer/);
    assert.deepEqual(scanOllama(join(d, "nowhere")), { models: [], watch: [], warnings: [] });
  });
});

describe("Hugging Face cache, LM Studio, llama.cpp's cache", () => {
  test("repo names: org/repo:QUANT, the repo alone for a one-model repo, projectors beside or repo-wide", () => {
    assert.equal(repoOfCacheFolder("models--org--Repo-GGUF"), "org/Repo-GGUF");
    assert.equal(repoOfCacheFolder("datasets--org--x"), undefined);
    assert.deepEqual(nameRepoModels("o/r", ["M-Q4_K_M.gguf", "mmproj-F16.gguf"]).models, [
      { name: "o/r:Q4_K_M", aliases: ["o/r"], shards: ["M-Q4_K_M.gguf"], mmproj: "mmproj-F16.gguf" },
    ]);
    const two = nameRepoModels("o/r", [
      "BF16/M-BF16-00001-of-00002.gguf",
      "BF16/M-BF16-00002-of-00002.gguf",
      "M-Q8_0.gguf",
      "other-Q8_0.gguf",
      "README.md",
    ]);
    assert.deepEqual(
      two.models.map((x) => [x.name, x.aliases, x.shards.length]),
      [
        ["o/r:M-Q8_0", [], 1],
        ["o/r:other-Q8_0", [], 1],
        ["o/r:BF16", [], 2],
      ],
    );
    assert.match(nameRepoModels("o/r", ["S-00001-of-00003.gguf"]).incomplete[0]!, /only 1 of 3 shards/);
  });

  test("the hub cache as huggingface_hub writes it: snapshot symlinks into blobs, refs/main first; a dangling link warns", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const hub = join(d, "hub");
    const snap = writeHfCacheRepo(hub, "org/Tiny-GGUF", { "Tiny-Q4_K_M.gguf": m.a, "mmproj-Tiny-F16.gguf": m.proj });
    writeHfCacheRepo(hub, "org/Two-GGUF", { "Two-Q8_0.gguf": m.b, "sub/Two-Q4_0.gguf": m.think });
    // an old revision, and a file whose blob was deleted
    writeHfCacheRepo(hub, "org/Tiny-GGUF", { "Tiny-Q4_K_M.gguf": m.b }, "0".repeat(40));
    writeFileSync(join(hub, "models--org--Tiny-GGUF", "refs", "main"), snap.split("/").pop()!);
    symlinkSync("../../blobs/deadbeef", join(snap, "Gone-Q2_K.gguf"));
    mkdirSync(join(hub, "datasets--org--data", "snapshots"), { recursive: true });
    const before = treeState(hub);
    const scan = scanHfCache(hub);
    assert.deepEqual(
      scan.models.map((x) => [x.name, x.aliases]),
      [
        ["org/Tiny-GGUF:Q4_K_M", ["org/Tiny-GGUF"]],
        ["org/Two-GGUF:Q8_0", []],
        ["org/Two-GGUF:Q4_0", []],
      ],
    );
    const tiny = scan.models[0]!;
    assert.equal(tiny.path, join(snap, "Tiny-Q4_K_M.gguf"), "the snapshot path, from refs/main's revision");
    assert.equal(tiny.mmproj, join(snap, "mmproj-Tiny-F16.gguf"));
    assert.equal(tiny.info.ref, `org/Tiny-GGUF@${snap.split("/").pop()}`);
    assert.equal(scan.warnings.length, 1);
    assert.match(
      scan.warnings[0]!,
      /hf-cache: org\/Tiny-GGUF: .*Gone-Q2_K\.gguf is a dangling symlink \(its blob is gone\); skipped/,
    );
    assert.deepEqual(treeState(hub), before);
  });

  test("LM Studio's publisher/repo folders; llama.cpp's cache flat files and hub layout", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const lms = join(d, "lmstudio");
    writeLmStudioModel(lms, "lmstudio-community/Tiny-GGUF", {
      "Tiny-Q4_K_M.gguf": m.a,
      "Tiny-Q8_0.gguf": m.b,
      "mmproj-Tiny-F16.gguf": m.proj,
    });
    writeFileSync(join(lms, "stray.gguf"), "x"); // LM Studio ignores files outside publisher/repo: so do we
    const l = scanLmStudio(lms);
    assert.deepEqual(
      l.models.map((x) => [x.name, x.aliases, x.mmproj?.endsWith("mmproj-Tiny-F16.gguf")]),
      [
        ["lmstudio-community/Tiny-GGUF:Q4_K_M", [], true],
        ["lmstudio-community/Tiny-GGUF:Q8_0", [], true],
      ],
    );
    const lc = join(d, "llama.cpp");
    mkdirSync(lc);
    writeFileSync(join(lc, "org_Repo-GGUF_repo-q4_k_m.gguf"), readFileSync(m.a));
    writeHfCacheRepo(lc, "ggml-org/Think-GGUF", { "think-Q8_0.gguf": m.think });
    const c = scanLlamaCache(lc);
    assert.deepEqual(
      c.models.map((x) => [x.name, x.store]),
      [
        ["ggml-org/Think-GGUF:Q8_0", "llama-cache"],
        ["org_Repo-GGUF_repo-q4_k_m", "llama-cache"],
      ],
    );
  });

  test("dedupe by file identity: a models-dir link to a blob, a hard link across stores, LLAMA_CACHE = the hub cache", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const ollama = join(d, "ollama");
    writeOllamaModel(ollama, { model: "qwen3", tag: "8b", gguf: m.a });
    const blob = scanOllama(ollama).models[0]!.path;
    const dir = join(d, "models");
    mkdirSync(dir);
    symlinkSync(blob, join(dir, "mine.gguf"));
    const hub = join(d, "hub");
    writeHfCacheRepo(hub, "org/B-GGUF", { "B-Q4_0.gguf": m.b });
    const lms = join(d, "lms");
    mkdirSync(join(lms, "org", "B-GGUF"), { recursive: true });
    linkSync(
      join(hub, "models--org--B-GGUF", "blobs", readdirSync(join(hub, "models--org--B-GGUF", "blobs"))[0]!),
      join(lms, "org", "B-GGUF", "B-Q4_0.gguf"),
    );
    const s = loadModelSources({
      modelsDir: dir,
      stores: { ollama: [ollama], lmstudio: [lms], "hf-cache": [hub], "llama-cache": [hub] },
    });
    assert.deepEqual(
      s.models.map((x) => [x.name, x.source, x.aliases]),
      [
        ["mine", "models-dir", ["qwen3:8b"]],
        ["org/B-GGUF:Q4_0", "lmstudio", ["org/B-GGUF"]],
      ],
    );
    assert.deepEqual(
      s.stores?.found.map((f) => f.store),
      ["ollama", "lmstudio", "hf-cache"],
      "the hub read once",
    );
    assert.deepEqual(
      s.clashes.map((c) => [c.name, c.samePath]),
      [
        ["qwen3:8b", true],
        ["org/B-GGUF:Q4_0", true],
      ],
    );
    // the rule alone: config entries with their own settings are never folded, even on one file
    const e = (name: string, source: ModelEntry["source"], path: string): ModelEntry => ({
      name,
      aliases: [],
      path,
      shards: [path],
      source,
      settings: {},
    });
    const f = foldSameFiles(
      [e("a", "config", "/x"), e("b", "config", "/x"), e("c", "ollama", "/x")],
      (x) => x.source === "ollama",
      () => "1:1",
    );
    assert.deepEqual(
      f.entries.map((x) => [x.name, x.aliases]),
      [
        ["a", ["c"]],
        ["b", []],
      ],
    );
  });

  test("a command's model argument: a store's name with a slash is a name, not a path", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const hub = join(d, "hub");
    const snap = writeHfCacheRepo(hub, "org/Tiny-GGUF", { "Tiny-Q4_K_M.gguf": m.a });
    const env = { GGLIB_DATA_DIR: join(d, "data"), HF_HUB_CACHE: hub };
    const r = resolveModelRef("org/Tiny-GGUF:Q4_K_M", { env, cwd: d });
    assert.equal(r.source, "hf-cache");
    assert.equal(r.entry.path, join(snap, "Tiny-Q4_K_M.gguf"));
    assert.equal(resolveModelRef("org/tiny-gguf:q4_k_m", { env, cwd: d }).source, "hf-cache", "any case");
    assert.equal(resolveModelRef(m.b, { env, cwd: d }).source, "path", "a real path stays a path");
  });

  test("what gglib says of removing another tool's model", () => {
    assert.match(
      notOursMessage({ name: "qwen3:8b", source: "ollama", path: "/b", store: { root: "/o", ref: "m" } })!,
      /"qwen3:8b" belongs to Ollama \(\/o\); .*never changes them: remove it with `ollama rm qwen3:8b`/,
    );
    assert.match(notOursMessage({ name: "o/r:Q4", source: "lmstudio", path: "/p" })!, /belongs to LM Studio/);
    assert.equal(notOursMessage({ name: "x", source: "registry", path: "/p" }), undefined);
  });
});

describe("hf: models in the config file", () => {
  test("hf:org/repo[:tag] names a model of the hub cache, used in place with the entry's own settings", async (t) => {
    assert.deepEqual(parseHfRef("hf:org/Repo-GGUF:q4_k_m"), { repo: "org/Repo-GGUF", tag: "q4_k_m" });
    assert.deepEqual(parseHfRef("hf:hf.co/org/Repo-GGUF"), { repo: "org/Repo-GGUF" });
    assert.equal(parseHfRef("hf:nothing"), undefined);
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const hub = join(d, "hub");
    const lc = join(d, "llama.cpp");
    const snap = writeHfCacheRepo(hub, "org/Two-GGUF", { "Two-Q4_K_M.gguf": m.a, "Two-Q8_0.gguf": m.b });
    writeHfCacheRepo(lc, "org/One-GGUF", { "One-F16.gguf": m.think });
    const ok = resolveHfRef("hf:org/Two-GGUF:q8_0", [hub, lc]);
    assert.equal(ok.ok && ok.model.path, join(snap, "Two-Q8_0.gguf"));
    const one = resolveHfRef("hf:org/One-GGUF", [hub, lc]);
    assert.equal(one.ok && one.model.name, "org/One-GGUF:F16");
    const which = resolveHfRef("hf:org/Two-GGUF", [hub]);
    assert.match(
      !which.ok ? which.reason : "",
      /holds 2 models .*; name one: hf:org\/Two-GGUF:Q4_K_M, hf:org\/Two-GGUF:Q8_0/,
    );
    const noTag = resolveHfRef("hf:org/Two-GGUF:IQ2_XS", [hub]);
    assert.match(
      !noTag.ok ? noTag.reason : "",
      /has no "IQ2_XS" \(it has Q4_K_M, Q8_0\); gglib proxy fetches it into the cache on first use, or run `gglib pull --hf-cache org\/Two-GGUF:IQ2_XS`/,
    );
    const missing = resolveHfRef("hf:org/Absent-GGUF:Q4_K_M", [hub]);
    assert.match(
      !missing.ok ? missing.reason : "",
      /org\/Absent-GGUF is not in the Hugging Face cache \(.*hub\); gglib proxy fetches it/,
    );

    // through the config file: the path stays a reference, the settings apply, the store's own entry is its alias
    const cfg = parseConfig(
      [
        "models:",
        "  two:",
        "    path: hf:org/Two-GGUF:Q8_0",
        "    ctx: 4096",
        "  gone:",
        "    path: hf:org/Absent-GGUF",
        "",
      ].join("\n"),
      join(d, "config.yaml"),
    );
    const models = configModelsOf(cfg);
    assert.equal(models[0]!.path, "hf:org/Two-GGUF:Q8_0");
    const s = loadModelSources({ config: { models, baseDir: d }, stores: { "hf-cache": [hub], "llama-cache": [lc] } });
    const two = s.models.find((x) => x.name === "two")!;
    assert.equal(two.path, join(snap, "Two-Q8_0.gguf"));
    assert.deepEqual(two.settings, { ctx: 4096 });
    assert.deepEqual(two.aliases, ["org/Two-GGUF:Q8_0"]);
    assert.match(
      s.warnings.join("\n"),
      /config model "gone": hf:org\/Absent-GGUF: org\/Absent-GGUF is not in the Hugging Face cache/,
    );
  });
});

describe("the stores' watch", () => {
  test("blob writes and partial downloads are not changes; manifests and snapshot links are", () => {
    assert.equal(isRelevantChange("registry.ollama.ai/library/qwen3/8b"), true);
    assert.equal(isRelevantChange("models--o--r/snapshots/abc/M-Q4_K_M.gguf"), true);
    assert.equal(isRelevantChange("models--o--r/blobs/0123.incomplete"), false);
    assert.equal(isRelevantChange("models--o--r/blobs/0123"), false);
    assert.equal(isRelevantChange("pub/repo/M-Q4_K_M.gguf.download"), false);
    assert.equal(isRelevantChange(null), true);
  });

  test("a folder that cannot be watched is logged once and not retried (no reload loop)", async (t) => {
    const d = tmp(t);
    const logs: string[] = [];
    const calls: string[][] = [];
    const w = watchStores((s) => calls.push(s), { debounceMs: 20, log: (l) => logs.push(l) });
    t.after(() => w.close());
    const gone = [{ store: "ollama" as const, dir: join(d, "not-there") }];
    w.update(gone);
    w.update(gone);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /cannot watch ollama folder .*not-there .*; it is read at each reload/);
    assert.deepEqual(calls, []);
  });

  test("a pull into a watched store: one debounced call naming the store", async (t) => {
    const d = tmp(t);
    const m = await tinies(join(d, "src"));
    const root = join(d, "ollama");
    mkdirSync(join(root, "manifests"), { recursive: true });
    const calls: string[][] = [];
    const w = watchStores((s) => calls.push(s), { debounceMs: 150 });
    t.after(() => w.close());
    w.update(scanStores({ ollama: [root] }).watch);
    writeOllamaModel(root, { model: "new", tag: "1b", gguf: m.a });
    writeOllamaModel(root, { model: "new", tag: "2b", gguf: m.b });
    const deadline = Date.now() + 5000;
    while (calls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(calls, [["ollama"]]);
  });
});
