import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configJsonSchema } from "../../../src/models/settings.js";
import { parseConfig } from "../../../src/models/config-file.js";
import { buildCatalog, resolveModelName } from "../../../src/proxy/catalog.js";
import { parseUsage } from "../../../src/proxy/forward.js";
import { errorBody } from "../../../src/proxy/http/errors.js";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "../../../src/proxy/http/headers.js";
import { sseErrorEvent } from "../../../src/proxy/http/sse.js";
import { autoBudget, estimateModel, parseComputeApps, parseMemoryLog } from "../../../src/proxy/memory.js";
import { parseSize } from "../../../src/core/units.js";
import { budgetFromSnapshot, estimateMemory } from "../../../src/models/estimator.js";
import { readModelMetadata } from "../../../src/gguf/reader.js";
import type { MemorySnapshot } from "../../../src/system/types.js";
import { parseJsonBody } from "../../../src/proxy/http/json.js";
import { diffCatalogs } from "../../../src/proxy/index.js";
import { GglibError } from "../../../src/core/errors.js";
import { Registry } from "../../../src/models/registry.js";
import { writeTinyModel } from "../../support/tiny-models.js";

const FIXTURES = new URL("../../fixtures/llama-server/", import.meta.url);

describe("proxy config", () => {
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

describe("proxy memory", () => {
  test("sizes", () => {
    assert.equal(parseSize("24GiB"), 24 * 1024 ** 3);
    assert.equal(parseSize("512 MiB"), 512 * 1024 ** 2);
    assert.equal(parseSize("8G"), 8 * 1024 ** 3);
    assert.equal(parseSize("1.5g"), 1.5 * 1024 ** 3);
    assert.equal(parseSize("1000"), 1000);
    assert.equal(parseSize(42), 42);
    assert.throws(() => parseSize("lots"), /Invalid size/);
  });

  test("a model's estimate is the one estimator's (src/models/estimator.ts); an unreadable file counts by its size", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-proxy-est-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = await writeTinyModel(dir, { name: "est", kind: "chat" });
    const meta = await readModelMetadata(path);
    const e = await estimateModel({ files: [path], ctx: 1024, cacheTypeK: "q8_0" });
    const one = estimateMemory({ metadata: meta, fileBytes: meta.totalBytes, ctx: 1024, cacheTypeK: "q8_0" });
    assert.equal(e.bytes, one.totalBytes);
    assert.equal(e.kvBytes, one.kvBytes);
    assert.equal(e.ctx, 1024);
    const junk = join(dir, "junk.gguf");
    writeFileSync(junk, Buffer.alloc(10 * 1024 * 1024));
    const j = await estimateModel({ files: [junk] });
    assert.equal(j.bytes, estimateMemory({ metadata: {}, fileBytes: 10 * 1024 * 1024 }).totalBytes);
    assert.ok(j.weightsBytes === 10 * 1024 * 1024 && j.bytes > j.weightsBytes);
  });

  test("the auto budget is the budget `gglib models fit` reports for the same machine (one headroom policy)", async () => {
    const GiB = 1024 ** 3;
    const probe = (snap: MemorySnapshot) => ({ memory: async () => snap });
    const cpu: MemorySnapshot = {
      ram: { totalBytes: 16 * GiB, availableBytes: 8 * GiB, source: "proc-meminfo" },
      gpus: [],
      takenAt: 0,
    };
    assert.equal((await autoBudget(probe(cpu))).bytes, budgetFromSnapshot(cpu).hostBytes);
    const gpu: MemorySnapshot = {
      ...cpu,
      gpus: [
        { index: 0, vendor: "nvidia", name: "A", totalBytes: 24 * GiB, freeBytes: 20 * GiB, unifiedMemory: false },
        { index: 1, vendor: "nvidia", name: "B", totalBytes: 24 * GiB, freeBytes: 22 * GiB, unifiedMemory: false },
      ],
    };
    const g = await autoBudget(probe(gpu));
    assert.equal(g.bytes, budgetFromSnapshot(gpu).gpuBytes);
    assert.equal(g.gpu, true);
    // Apple Silicon: the GPU's share of unified memory, as `models fit` counts it (not all of the RAM)
    const mac: MemorySnapshot = {
      ram: { totalBytes: 32 * GiB, availableBytes: 24 * GiB, source: "sysctl" },
      gpus: [
        { index: 0, vendor: "apple", name: "Apple M2", totalBytes: 21 * GiB, freeBytes: 21 * GiB, unifiedMemory: true },
      ],
      takenAt: 0,
    };
    const m = await autoBudget(probe(mac));
    assert.equal(m.bytes, budgetFromSnapshot(mac).gpuBytes);
    assert.equal(m.gpu, false);
  });

  test("measured buffers from llama-server's -lv 4 log (fixture 09)", () => {
    const lines = [
      "+262ms E| 0.00.210.331 I load_tensors:   CPU_Mapped model buffer size =     7.97 MiB",
      "+270ms E| 0.00.218.002 I llama_context:        CPU  output buffer size =     0.49 MiB",
      "+271ms E| 0.00.219.120 I llama_kv_cache:        CPU KV buffer size =     1.00 MiB",
      "+272ms E| 0.00.219.410 I llama_kv_cache: size =    1.00 MiB (  2048 cells,   2 layers,  4/1 seqs), K (f16):    0.50 MiB, V (f16):    0.50 MiB",
      "+280ms E| 0.00.228.771 I sched_reserve:        CPU compute buffer size =     3.01 MiB",
    ];
    const bytes = parseMemoryLog(lines)!;
    // 7.97 model + 0.49 output + 1.00 KV + 3.01 compute MiB
    assert.ok(Math.abs(bytes / 1024 ** 2 - (7.97 + 0.49 + 1.0 + 3.01)) < 0.05, `${bytes / 1024 ** 2} MiB`);
    assert.equal(parseMemoryLog(["nothing here"]), undefined);
  });

  test("GPU memory of a process from nvidia-smi --query-compute-apps", () => {
    const text = "4242, 5120\n777, 100\n4242, 1024\n";
    assert.equal(parseComputeApps(text, 4242), 6144 * 1024 * 1024, "summed over GPUs");
    assert.equal(parseComputeApps(text, 1), undefined);
  });
});

describe("proxy HTTP helpers", () => {
  test("usage and timings are read from the tail of a stream and of a JSON body (fixtures)", () => {
    const stream = readFileSync(new URL("03-chat-stream-include-usage.raw", FIXTURES), "utf8");
    assert.deepEqual(parseUsage(stream.slice(-4000)), {
      promptTokens: 50,
      completionTokens: 16,
      predictedPerSecond: 1572.3270440251574,
      promptPerSecond: 1222.4938875305625,
      // the recorded timings' cache_n: the prompt's tokens reused from the slot's cache
      cachedTokens: 49,
    });
    const plain = readFileSync(new URL("03-chat-stream.raw", FIXTURES), "utf8");
    const u = parseUsage(plain.slice(-4000))!;
    assert.ok(u.completionTokens! > 0 && u.predictedPerSecond! > 0, "timings only (no usage) still count");
    assert.equal(parseUsage("data: [DONE]"), undefined);
  });

  test("credentials and hop-by-hop headers never go upstream; llama-server's CORS never comes back", () => {
    const h = upstreamRequestHeaders(
      {
        authorization: "Bearer secret",
        "x-api-key": "secret",
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        host: "proxy:8080",
        "content-length": "999",
        "accept-encoding": "gzip",
        "content-type": "application/json",
        "x-request-id": "r1",
        origin: "http://127.0.0.1:8080",
        "sec-fetch-site": "same-origin",
        "sec-fetch-mode": "cors",
        "sec-fetch-dest": "empty",
      },
      12,
    );
    assert.deepEqual(h, { "content-type": "application/json", "x-request-id": "r1", "content-length": "12" });
    const d = downstreamResponseHeaders({
      "access-control-allow-origin": "",
      "keep-alive": "timeout=5",
      "content-type": "text/event-stream",
      server: "llama.cpp",
    });
    assert.deepEqual(d, { "content-type": "text/event-stream", server: "llama.cpp" });
  });

  test("errors in OpenAI's shape; SSE error events in the endpoint's dialect", () => {
    assert.deepEqual(JSON.parse(errorBody(404, "model_not_found", "no")), {
      error: { message: "no", type: "not_found_error", code: "model_not_found" },
    });
    assert.match(
      sseErrorEvent("/v1/chat/completions", 502, "x", "boom"),
      /^data: \{"error":\{"message":"boom".*\n\ndata: \[DONE\]\n\n$/s,
    );
    assert.match(sseErrorEvent("/v1/messages", 502, "x", "boom"), /^event: error\ndata: \{"type":"error"/);
  });

  test("malformed JSON is a 400 (llama-server would answer 500)", () => {
    assert.throws(
      () => parseJsonBody(Buffer.from('{"model": "a",')),
      (e: unknown) => (e as { status: number }).status === 400,
    );
    assert.throws(
      () => parseJsonBody(Buffer.alloc(0)),
      (e: unknown) => (e as { status: number }).status === 400,
    );
    assert.throws(
      () => parseJsonBody(Buffer.from("[1]")),
      (e: unknown) => (e as { status: number }).status === 400,
    );
    assert.deepEqual(parseJsonBody(Buffer.from('{"model":"a","stream":true,"messages":[]}')), {
      model: "a",
      stream: true,
      messages: [],
    });
  });
});
