// src/hub: reference parsing, quantization labels, grouping a repo's files into models, the tag → file pick, the
// local names and places, and the default choice against a memory budget.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isGglibError } from "../../../src/core/errors.js";
import { parsePullRef, hubUrlFrom, tokenFrom } from "../../../src/hub/ref.js";
import { quantOf } from "../../../src/gguf/names.js";
import { quantRank } from "../../../src/hub/quant.js";
import {
  findMmproj,
  findVariant,
  localName,
  mmprojFor,
  planFiles,
  refAlias,
  repoModels,
  assertPullName,
  type RepoFile,
} from "../../../src/hub/files.js";
import { chooseDefault, CHOICE_CTX } from "../../../src/hub/choose.js";
import type { EstimatorModel, FitBudget } from "../../../src/models/estimator.js";

const GIB = 2 ** 30;
const f = (path: string, size = 1000): RepoFile => ({ path, size, sha256: "0".repeat(64) });

describe("parsePullRef", () => {
  test("user/repo, with a quant, a file, a revision, hf.co and URL forms", () => {
    assert.deepEqual(parsePullRef("bartowski/Qwen3-4B-GGUF"), {
      repo: "bartowski/Qwen3-4B-GGUF",
      user: "bartowski",
      name: "Qwen3-4B-GGUF",
    });
    assert.equal(parsePullRef("bartowski/Qwen3-4B-GGUF:Q4_K_M").tag, "Q4_K_M");
    assert.equal(parsePullRef("hf.co/unsloth/gemma-3-4b-it-GGUF:q8_0").repo, "unsloth/gemma-3-4b-it-GGUF");
    assert.equal(parsePullRef("https://huggingface.co/a/b").repo, "a/b");
    assert.equal(parsePullRef("a/b:sub/dir/x-f16.gguf").tag, "sub/dir/x-f16.gguf");
    assert.equal(parsePullRef("a/b:latest").tag, undefined);
    const r = parsePullRef("a/b@dev:Q8_0");
    assert.equal(r.revision, "dev");
    assert.equal(r.tag, "Q8_0");
    const page = parsePullRef("https://huggingface.co/a/b/blob/main/dir/m-Q4_0.gguf");
    assert.deepEqual([page.repo, page.revision, page.tag], ["a/b", "main", "dir/m-Q4_0.gguf"]);
  });

  test("bad references say what is wrong", () => {
    for (const bad of ["", "justone", "a/b/c", "a--x/b", "a/b..c", "-a/b", "a/b:../../etc/passwd", "a/b@:Q4"]) {
      assert.throws(
        () => parsePullRef(bad),
        (e: unknown) => isGglibError(e, "invalid_config") && /not a Hugging Face model reference/.test(e.message),
        bad,
      );
    }
  });

  test("hub URL and token from options, then the environment", () => {
    assert.equal(hubUrlFrom(undefined, {}), "https://huggingface.co");
    assert.equal(hubUrlFrom(undefined, { HF_ENDPOINT: "http://127.0.0.1:1/" }), "http://127.0.0.1:1");
    assert.equal(hubUrlFrom("http://x/", { HF_ENDPOINT: "http://y" }), "http://x");
    assert.equal(tokenFrom(undefined, { HF_TOKEN: " hf_a " }), "hf_a");
    assert.equal(tokenFrom(undefined, { HUGGING_FACE_HUB_TOKEN: "hf_b" }), "hf_b");
    assert.equal(tokenFrom("hf_c", { HF_TOKEN: "hf_a" }), "hf_c");
    assert.equal(tokenFrom(undefined, { HF_TOKEN: "" }), undefined);
  });
});

describe("quantOf", () => {
  test("labels as the big GGUF publishers write them", () => {
    const cases: Record<string, string | undefined> = {
      "Qwen3-4B-Q4_K_M.gguf": "Q4_K_M",
      "qwen2.5-0.5b-instruct-q4_k_m.gguf": "Q4_K_M",
      "gemma-3-4b-it-UD-Q4_K_XL.gguf": "UD-Q4_K_XL",
      "Meta-Llama-3.1-8B-Instruct-IQ3_XXS.gguf": "IQ3_XXS",
      "phi-2.Q8_0.gguf": "Q8_0",
      "model-Q4_0_4_4.gguf": "Q4_0_4_4",
      "Llama-3.2-1B-Instruct-f16.gguf": "F16",
      "x-BF16-00001-of-00003.gguf": "BF16",
      "gpt-oss-20b-MXFP4.gguf": "MXFP4",
      "Qwen2-VL-7B.gguf": undefined,
      "tiny.gguf": undefined,
    };
    for (const [name, q] of Object.entries(cases)) assert.equal(quantOf(name), q, name);
  });

  test("Q4_K_M ranks first, F32 last, unknown after everything", () => {
    assert.ok(quantRank("Q4_K_M") < quantRank("Q3_K_M"));
    assert.ok(quantRank("Q3_K_M") < quantRank("Q8_0"));
    assert.ok(quantRank("Q8_0") < quantRank("F32"));
    assert.ok(quantRank("Q4_K_XL") < quantRank("UD-Q4_K_XL"));
    assert.ok(quantRank("F32") < quantRank(undefined));
  });
});

describe("repoModels", () => {
  const listing = [
    f("README.md"),
    f("M-Q8_0.gguf", 8000),
    f("M-Q4_K_M.gguf", 4000),
    f("M-Q2_K.gguf", 2000),
    f("mmproj-M-f32.gguf", 300),
    f("mmproj-M-f16.gguf", 150),
    f("BF16/M-BF16-00002-of-00002.gguf", 9000),
    f("BF16/M-BF16-00001-of-00002.gguf", 9000),
    f("Q6_K/M-Q6_K-00001-of-00003.gguf"),
    f("Q6_K/M-Q6_K-00003-of-00003.gguf"),
    f("imatrix_unsloth.gguf"),
  ];

  test("single files and shard sets, in preference order; projectors apart; incomplete sets left out", () => {
    const m = repoModels(listing);
    assert.deepEqual(
      m.variants.map((v) => [v.id, v.quant, v.files.length, v.totalBytes]),
      [
        ["M-Q4_K_M", "Q4_K_M", 1, 4000],
        ["M-Q2_K", "Q2_K", 1, 2000],
        ["M-Q8_0", "Q8_0", 1, 8000],
        ["BF16/M-BF16", "BF16", 2, 18000],
      ],
    );
    assert.deepEqual(
      m.variants[3]!.files.map((x) => x.path),
      ["BF16/M-BF16-00001-of-00002.gguf", "BF16/M-BF16-00002-of-00002.gguf"],
    );
    assert.deepEqual(
      m.mmproj.map((x) => x.path),
      ["mmproj-M-f16.gguf", "mmproj-M-f32.gguf"],
    );
    assert.equal(m.warnings.length, 1);
    assert.match(m.warnings[0]!, /Q6_K\/M-Q6_K: the repo has 2 of its 3 shards/);
  });

  test("a tag picks by quantization (any case), file name, path or stem; misses list what exists", () => {
    const m = repoModels(listing);
    assert.equal(findVariant(m, "q4_k_m", "u/M").id, "M-Q4_K_M");
    assert.equal(findVariant(m, "M-Q8_0.gguf", "u/M").id, "M-Q8_0");
    assert.equal(findVariant(m, "BF16/M-BF16-00002-of-00002.gguf", "u/M").id, "BF16/M-BF16");
    assert.equal(findVariant(m, "M-Q2_K", "u/M").id, "M-Q2_K");
    assert.throws(
      () => findVariant(m, "Q5_K_M", "u/M"),
      (e: unknown) =>
        isGglibError(e, "hub_not_found") &&
        /has no GGUF model "Q5_K_M"/.test(e.message) &&
        /Q4_K_M, Q2_K, Q8_0, BF16/.test(e.details.hint ?? ""),
    );
    assert.throws(() => findVariant(m, "mmproj-M-f16.gguf", "u/M"), /projector, not a model/);
  });

  test("UD- twins: the exact label wins, the bare one finds the UD- file when alone", () => {
    const m = repoModels([f("g-UD-Q4_K_XL.gguf"), f("g-Q4_K_M.gguf")]);
    assert.equal(findVariant(m, "Q4_K_XL", "u/g").id, "g-UD-Q4_K_XL");
    assert.equal(findVariant(m, "ud-q4_k_xl", "u/g").id, "g-UD-Q4_K_XL");
  });

  test("projector: the variant's folder first, then the top; by preference; by tag", () => {
    const m = repoModels([...listing, f("BF16/mmproj-BF16.gguf")]);
    assert.equal(mmprojFor(m, findVariant(m, "Q4_K_M", "u/M"))?.path, "mmproj-M-f16.gguf");
    assert.equal(mmprojFor(m, findVariant(m, "BF16", "u/M"))?.path, "BF16/mmproj-BF16.gguf");
    assert.equal(findMmproj(m, "f32", "u/M").path, "mmproj-M-f32.gguf");
    assert.throws(
      () => findMmproj(m, "Q2", "u/M"),
      (e: unknown) => isGglibError(e, "hub_not_found"),
    );
    assert.equal(mmprojFor(repoModels([f("a-Q4_0.gguf")]), repoModels([f("a-Q4_0.gguf")]).variants[0]!), undefined);
  });
});

describe("names and places", () => {
  test("the name is the stem, made folder- and registry-safe", () => {
    assert.equal(localName("Qwen3-4B-Q4_K_M"), "Qwen3-4B-Q4_K_M");
    assert.equal(localName("my model (v2) Q4"), "my-model-v2-Q4");
    assert.equal(localName("__x"), "x");
    assert.equal(localName("!!!"), "model");
    assert.throws(() => assertPullName("a/b"), /cannot name a pulled model/);
    assert.throws(() => assertPullName("a:b"), /cannot name a pulled model/);
    assertPullName("ok-name_1.2");
  });

  test("layout: <user>/<repo>/<name>/, a single file renamed to <name>.gguf, shards kept, projector prefixed", () => {
    const m = repoModels([
      f("M-Q4_K_M.gguf"),
      f("BF16/M-BF16-00001-of-00002.gguf"),
      f("BF16/M-BF16-00002-of-00002.gguf"),
    ]);
    const single = findVariant(m, "Q4_K_M", "u/M");
    assert.deepEqual(
      planFiles("u/M", "mine", single, f("vision/M.mmproj-f16.gguf")).map((p) => [p.local, p.role]),
      [
        ["u/M/mine/mine.gguf", "model"],
        ["u/M/mine/mmproj-M.mmproj-f16.gguf", "mmproj"],
      ],
    );
    assert.deepEqual(
      planFiles("u/M", "M-BF16", findVariant(m, "BF16", "u/M"), undefined).map((p) => p.local),
      ["u/M/M-BF16/M-BF16-00001-of-00002.gguf", "u/M/M-BF16/M-BF16-00002-of-00002.gguf"],
    );
    assert.equal(refAlias("u/M", single), "u/M:Q4_K_M");
  });
});

describe("chooseDefault", () => {
  // a 32-layer, 4096-wide model; only file sizes differ between the variants
  const arch: EstimatorModel = {
    contextLength: 32768,
    blockCount: 32,
    embeddingLength: 4096,
    feedForwardLength: 14336,
    headCount: 32,
    headCountKv: 8,
    vocabSize: 128256,
  };
  const m = repoModels([
    f("L-Q8_0.gguf", 8.5 * GIB),
    f("L-Q4_K_M.gguf", 4.9 * GIB),
    f("L-Q2_K.gguf", 3.2 * GIB),
    f("L-F16.gguf", 16 * GIB),
  ]);
  const ram = (gib: number): FitBudget => ({ hostBytes: gib * GIB });

  test("Q4_K_M when it fits", () => {
    const c = chooseDefault(m.variants, arch, ram(16));
    assert.equal(c.variant.quant, "Q4_K_M");
    assert.equal(c.fits, true);
    assert.match(c.reason, new RegExp(`fits this machine .* at ${CHOICE_CTX} tokens`));
  });

  test("a smaller one when Q4_K_M does not fit, saying so", () => {
    const c = chooseDefault(m.variants, arch, ram(4.5));
    assert.equal(c.variant.quant, "Q2_K");
    assert.match(c.reason, /Q4_K_M would not fit/);
  });

  test("on a GPU machine the GPU budget counts too", () => {
    const c = chooseDefault(m.variants, arch, { hostBytes: 2 * GIB, gpuBytes: 12 * GIB, gpuName: "GPU" });
    assert.equal(c.variant.quant, "Q4_K_M");
    assert.equal(c.considered[0]!.offload, "full");
  });

  test("nothing fits: the smallest, flagged", () => {
    const c = chooseDefault(m.variants, arch, ram(1));
    assert.equal(c.variant.quant, "Q2_K");
    assert.equal(c.fits, false);
    assert.match(c.reason, /no quantization fits/);
  });

  test("no memory reading or no header: the first in preference order, unchecked", () => {
    assert.equal(chooseDefault(m.variants, undefined, ram(1)).variant.quant, "Q4_K_M");
    assert.match(chooseDefault(m.variants, arch, undefined).reason, /fit not checked/);
  });
});
