import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectCapabilities, detectReasoning, detectTools } from "../../../src/models/capabilities.js";
import { launchDefaults, type LaunchDefaultsInput } from "../../../src/models/launch-defaults.js";
import { readModelMetadata } from "../../../src/gguf/reader.js";
import { isGglibError } from "../../../src/core/errors.js";
import { tinyChatTemplate, writeTinyModel } from "../../support/tiny-models.js";

const GIB = 1024 ** 3;

// Short templates in the style of real ones (the constructs the detector keys on).
const QWEN3_LIKE = `{%- if tools %}<|im_start|>system\n# Tools\n{%- for tool in tools %}{{ tool | tojson }}{%- endfor %}<|im_end|>\n{%- endif %}
{%- for message in messages %}{%- if message.role == "assistant" and message.reasoning_content %}<think>\n{{ message.reasoning_content }}\n</think>{%- endif %}{{ message.content }}{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant\n{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{%- endif %}{%- endif %}`;
const LLAMA31_LIKE = `{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}{{- bos_token }}
{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}`;
const GEMMA2_LIKE = `{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}`;
const TOOLS_IN_TEXT_ONLY = `You can use tools when asked. {% for m in messages %}{{ m.content }}{% endfor %}`;
const DEEPSEEK_R1_LIKE = `{% for message in messages %}{% if message['role'] == 'assistant' %}{{'<｜Assistant｜><｜tool▁calls▁begin｜>'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}`;

void describe("capability detection", () => {
  void test("reasoning: an opened think block or a thinking switch", () => {
    assert.equal(detectReasoning(QWEN3_LIKE).present, true);
    assert.equal(detectReasoning(DEEPSEEK_R1_LIKE).evidence, "chat template contains <think>");
    assert.equal(detectReasoning("{{ '<|START_THINKING|>' }}").present, true);
    assert.equal(detectReasoning("{% if enable_thinking %}x{% endif %}").present, true);
    assert.equal(detectReasoning(LLAMA31_LIKE).present, false);
    assert.equal(detectReasoning(GEMMA2_LIKE).present, false);
    assert.equal(detectReasoning(undefined, "QwQ-32B").present, true, "no template: the name is a hint");
    assert.equal(detectReasoning(undefined, "llama-3-8b").present, false);
  });

  void test("tools: the template reads `tools` inside a Jinja tag, or emits a tool-call marker", () => {
    assert.equal(detectTools(QWEN3_LIKE).present, true);
    assert.equal(detectTools(LLAMA31_LIKE).present, true);
    assert.equal(detectTools(DEEPSEEK_R1_LIKE).present, true);
    assert.equal(detectTools("{%- if xml_tools %}{{ xml_tools }}{% endif %}").present, true);
    assert.equal(detectTools(GEMMA2_LIKE).present, false);
    assert.equal(detectTools(TOOLS_IN_TEXT_ONLY).present, false, "the word in plain text is not tool handling");
    assert.equal(detectTools(GEMMA2_LIKE, { tool_use: "{{ tools }}" }).present, true, "a named tool_use template");
  });

  void test("embedding: pooling type or encoder architecture; reranker: rank pooling; projector: vision", () => {
    const base = { architecture: "llama", isMmproj: false };
    assert.equal(detectCapabilities({ ...base, poolingType: 1 }).embedding.present, true);
    assert.equal(detectCapabilities({ ...base, poolingType: 0 }).embedding.present, false);
    assert.equal(detectCapabilities({ ...base, architecture: "nomic-bert" }).embedding.present, true);
    const rr = detectCapabilities({ ...base, architecture: "bert", poolingType: 4, chatTemplate: QWEN3_LIKE });
    assert.deepEqual(rr.tags, ["embedding", "reranker"], "an encoder's template says nothing about chat abilities");
    assert.deepEqual(
      detectCapabilities({ ...base, architecture: "clip", isMmproj: true, hasVisionEncoder: true }).tags,
      ["vision"],
    );
    assert.deepEqual(detectCapabilities({ ...base, chatTemplate: QWEN3_LIKE }).tags, ["reasoning", "tools", "agent"]);
  });

  void test("the tiny models' own templates, read back from real GGUF files", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-caps-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const chat = detectCapabilities(await readModelMetadata(await writeTinyModel(dir, { name: "c", kind: "chat" })));
    const think = detectCapabilities(await readModelMetadata(await writeTinyModel(dir, { name: "t", kind: "think" })));
    assert.deepEqual(chat.tags, []);
    assert.deepEqual(think.tags, ["reasoning"]);
    assert.ok(tinyChatTemplate("think").includes("<think>"));
  });
});

const CHAT_META: LaunchDefaultsInput["metadata"] = {
  architecture: "qwen3",
  isMmproj: false,
  chatTemplate: QWEN3_LIKE,
  contextLength: 40960,
  blockCount: 28,
  embeddingLength: 1024,
  feedForwardLength: 3072,
  headCount: 16,
  headCountKv: 8,
  keyLength: 128,
  valueLength: 128,
  vocabSize: 151936,
  totalBytes: 600 * 1024 * 1024,
};

void describe("launchDefaults", () => {
  void test("a reasoning + tools model: deepseek format and jinja detected, the rest left to llama-server", () => {
    const d = launchDefaults({ metadata: CHAT_META });
    assert.deepEqual(d.config, { reasoningFormat: "deepseek", jinja: true });
    const src = Object.fromEntries(d.choices.map((c) => [c.setting, c.source]));
    assert.deepEqual(src, {
      reasoningFormat: "detected",
      jinja: "detected",
      embeddings: "default",
      contextSize: "default",
      gpuLayers: "default",
    });
    assert.match(d.choices.find((c) => c.setting === "jinja")!.reason, /^tool use: chat template reads tools/);
  });

  void test("explicit settings win over detection", () => {
    const d = launchDefaults({
      metadata: CHAT_META,
      explicit: { reasoningFormat: "none", jinja: false, contextSize: 4096, gpuLayers: 10 },
    });
    assert.deepEqual(d.config, { reasoningFormat: "none", jinja: false, contextSize: 4096, gpuLayers: 10 });
    assert.ok(d.choices.every((c) => c.source === "explicit" || c.setting === "embeddings"));
  });

  void test("an embedding model gets --embeddings and no chat settings", () => {
    const d = launchDefaults({
      metadata: {
        architecture: "bert",
        isMmproj: false,
        poolingType: 2,
        contextLength: 512,
        blockCount: 12,
        embeddingLength: 384,
        headCount: 12,
        vocabSize: 30522,
        totalBytes: 45e6,
      },
    });
    assert.deepEqual(d.config, { embeddings: true });
    assert.match(d.choices.find((c) => c.setting === "embeddings")!.reason, /pooling type 2 \(cls\)/);
  });

  void test("a reranker (rank pooling) gets --reranking as well: /v1/rerank refuses a server without it", () => {
    const meta = {
      architecture: "bert",
      isMmproj: false,
      poolingType: 4,
      contextLength: 512,
      blockCount: 12,
      embeddingLength: 384,
      headCount: 12,
      vocabSize: 30522,
      totalBytes: 45e6,
    };
    const d = launchDefaults({ metadata: meta });
    assert.deepEqual(d.config, { embeddings: true, reranking: true });
    assert.match(d.choices.find((c) => c.setting === "reranking")!.reason, /pooling type 4 \(rank\)/);
    const off = launchDefaults({ metadata: meta, explicit: { reranking: false } });
    assert.equal(off.config.reranking, false, "an explicit setting wins");
  });

  void test("context defaults to what fits, capped by the trained context", () => {
    const plenty = launchDefaults({ metadata: CHAT_META, budget: { hostBytes: 64 * GIB } });
    assert.equal(plenty.config.contextSize, 40960);
    assert.equal(plenty.choices.find((c) => c.setting === "contextSize")!.source, "detected");
    const tight = launchDefaults({ metadata: CHAT_META, budget: { hostBytes: 1.5 * GIB } });
    assert.ok(tight.config.contextSize! < 40960 && tight.config.contextSize! >= 256);
    assert.equal(tight.fit?.fits, true, "the chosen context fits");
    const none = launchDefaults({ metadata: CHAT_META, budget: { hostBytes: 100 * 1024 * 1024 } });
    assert.equal(none.config.contextSize, undefined);
    assert.equal(none.choices.find((c) => c.setting === "contextSize")!.source, "default");
  });

  void test("a GPU too small for every layer: GPU layers detected; explicit 0 context means the trained one", () => {
    const d = launchDefaults({
      metadata: CHAT_META,
      explicit: { contextSize: 0 },
      budget: { hostBytes: 16 * GIB, gpuBytes: 0.5 * GIB, gpuName: "GT 1030" },
    });
    assert.equal(d.config.contextSize, 0);
    const g = d.choices.find((c) => c.setting === "gpuLayers")!;
    assert.equal(g.source, "detected");
    assert.ok(typeof g.value === "number" && g.value > 0 && g.value < 28);
    assert.equal(d.fit?.offload, "partial");
  });

  void test("a projector file is refused with a clear error", () => {
    assert.throws(
      () => launchDefaults({ metadata: { architecture: "clip", isMmproj: true, path: "/m/mmproj-f16.gguf" } }),
      (e: unknown) => isGglibError(e, "invalid_config") && /multimodal projector/.test(e.message),
    );
  });
});
