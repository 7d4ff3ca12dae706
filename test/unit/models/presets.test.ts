// Presets: the pure body rewrite (src/models/presets.ts), the catalog's attachment rules (src/proxy/catalog.ts), the
// lookup on the request path (src/proxy/presets.ts), and the registry's store of presets (migration 2).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { applyPreset, presetProblems, promptShapeOf, type Preset } from "../../../src/models/presets.js";
import { attachPresets, type ProxyModel } from "../../../src/proxy/catalog.js";
import { findPreset, presetRequest } from "../../../src/proxy/presets.js";
import { parseConfig, configPresetsOf } from "../../../src/models/config-file.js";
import { Registry } from "../../../src/models/registry.js";

const chat = (messages: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: "p",
  messages,
  ...extra,
});

describe("applyPreset", () => {
  test("set replaces the client's fields, strip removes fields, model becomes the base model's", () => {
    const body = chat([{ role: "user", content: "hi" }], { temperature: 1.5, tools: [{}], logit_bias: { 1: 2 } });
    const out = applyPreset(
      body,
      {
        model: "m",
        set: { temperature: 0.2, max_tokens: 64, reasoning_effort: "low" },
        strip: ["tools", "logit_bias"],
      },
      "base",
      "chat",
    );
    assert.deepEqual(out, {
      model: "base",
      messages: [{ role: "user", content: "hi" }],
      temperature: 0.2,
      max_tokens: 64,
      reasoning_effort: "low",
    });
    assert.equal(body.temperature, 1.5, "the input is not changed");
    assert.ok("tools" in body);
  });

  test("chat_template_kwargs is merged key by key over the client's", () => {
    const out = applyPreset(
      chat([], { chat_template_kwargs: { enable_thinking: true, foo: 1 } }),
      { model: "m", set: { chat_template_kwargs: { enable_thinking: false } } },
      "base",
      "chat",
    );
    assert.deepEqual(out.chat_template_kwargs, { enable_thinking: false, foo: 1 });
    const fresh = applyPreset(
      chat([]),
      { model: "m", set: { chat_template_kwargs: { enable_thinking: false } } },
      "b",
      "chat",
    );
    assert.deepEqual(fresh.chat_template_kwargs, { enable_thinking: false });
  });

  test("system prompt: prepended into the client's system message, put first when there is none", () => {
    const p = { model: "m", system: "Be terse." };
    assert.deepEqual(applyPreset(chat([{ role: "user", content: "q" }]), p, "b", "chat").messages, [
      { role: "system", content: "Be terse." },
      { role: "user", content: "q" },
    ]);
    assert.deepEqual(
      applyPreset(
        chat([
          { role: "system", content: "You code." },
          { role: "user", content: "q" },
        ]),
        p,
        "b",
        "chat",
      ).messages,
      [
        { role: "system", content: "Be terse.\n\nYou code." },
        { role: "user", content: "q" },
      ],
    );
    // content parts: a text part goes first
    const parts = applyPreset(chat([{ role: "system", content: [{ type: "text", text: "x" }] }]), p, "b", "chat");
    assert.deepEqual((parts.messages as { content: unknown }[])[0]!.content, [
      { type: "text", text: "Be terse." },
      { type: "text", text: "x" },
    ]);
  });

  test("system prompt: replace drops the client's; default keeps the client's when it sends one", () => {
    const msgs = [
      { role: "system", content: "A" },
      { role: "user", content: "q" },
      { role: "developer", content: "B" },
    ];
    assert.deepEqual(
      applyPreset(chat(msgs), { model: "m", system: "S", systemMode: "replace" }, "b", "chat").messages,
      [
        { role: "system", content: "S" },
        { role: "user", content: "q" },
      ],
    );
    assert.deepEqual(
      applyPreset(chat(msgs), { model: "m", system: "S", systemMode: "default" }, "b", "chat").messages,
      msgs,
    );
    assert.deepEqual(
      applyPreset(
        chat([{ role: "user", content: "q" }]),
        { model: "m", system: "S", systemMode: "default" },
        "b",
        "chat",
      ).messages,
      [
        { role: "system", content: "S" },
        { role: "user", content: "q" },
      ],
    );
  });

  test("example messages go after the system message and before the conversation", () => {
    const p = {
      model: "m",
      system: "S",
      messages: [
        { role: "user" as const, content: "2+2?" },
        { role: "assistant" as const, content: "4" },
      ],
    };
    assert.deepEqual(applyPreset(chat([{ role: "user", content: "3+3?" }]), p, "b", "chat").messages, [
      { role: "system", content: "S" },
      { role: "user", content: "2+2?" },
      { role: "assistant", content: "4" },
      { role: "user", content: "3+3?" },
    ]);
  });

  test("Anthropic messages get `system`, Responses get `instructions`, a completion no system prompt", () => {
    assert.equal(applyPreset({ model: "p", messages: [] }, { model: "m", system: "S" }, "b", "anthropic").system, "S");
    assert.equal(
      applyPreset({ model: "p", messages: [], system: "C" }, { model: "m", system: "S" }, "b", "anthropic").system,
      "S\n\nC",
    );
    assert.deepEqual(
      applyPreset({ system: [{ type: "text", text: "C" }] }, { model: "m", system: "S" }, "b", "anthropic").system,
      [
        { type: "text", text: "S" },
        { type: "text", text: "C" },
      ],
    );
    assert.equal(applyPreset({ input: "x" }, { model: "m", system: "S" }, "b", "responses").instructions, "S");
    assert.deepEqual(applyPreset({ prompt: "x" }, { model: "m", system: "S", set: { top_k: 5 } }, "b", "none"), {
      prompt: "x",
      top_k: 5,
      model: "b",
    });
    assert.equal(promptShapeOf("/v1/chat/completions"), "chat");
    assert.equal(promptShapeOf("/v1/messages"), "anthropic");
    assert.equal(promptShapeOf("/v1/responses"), "responses");
    assert.equal(promptShapeOf("/completion"), "none");
  });

  test("a preset may not set or strip the request's own fields", () => {
    assert.deepEqual(presetProblems({ model: "m", set: { temperature: 1 } }), []);
    assert.equal(presetProblems({ model: "m", set: { stream: true }, strip: ["messages"] }).length, 2);
  });
});

const pm = (name: string, aliases: string[] = []) => ({ name, aliases }) as unknown as ProxyModel;
const preset = (name: string, model: string, source: Preset["source"] = "config"): Preset => ({ name, model, source });

describe("presets in the catalog", () => {
  test("attached to their model (by name or alias); clashes and unknown models are warnings", () => {
    const models = [pm("qwen", ["q"]), pm("llama")];
    const warnings: string[] = [];
    attachPresets(
      models,
      [
        preset("qwen-fast", "q"),
        preset("qwen-code", "qwen"),
        preset("LLAMA", "qwen"), // a model's name
        preset("qwen-fast", "llama", "registry"), // the config's wins
        preset("ghost", "nope"),
      ],
      warnings,
    );
    assert.deepEqual(
      models[0]!.presets?.map((p) => [p.name, p.model]),
      [
        ["qwen-fast", "qwen"],
        ["qwen-code", "qwen"],
      ],
    );
    assert.equal(models[1]!.presets, undefined);
    assert.equal(warnings.length, 3, warnings.join("\n"));
    assert.match(warnings.join("\n"), /LLAMA.*a model has that name/);
    assert.match(warnings.join("\n"), /qwen-fast \(registry\).*config file has a preset of that name/);
    assert.match(warnings.join("\n"), /ghost.*"nope" is not in the catalog/);
  });

  test("findPreset: exact, case-insensitive and :latest; none for a model name", () => {
    const models = [{ presets: [preset("Fast", "qwen")] }, {}];
    assert.equal(findPreset(models, "Fast")?.name, "Fast");
    assert.equal(findPreset(models, "fast")?.name, "Fast");
    assert.equal(findPreset(models, "fast:latest")?.name, "Fast");
    assert.equal(findPreset(models, "qwen"), undefined);
    assert.equal(findPreset([{}], "fast"), undefined);
  });

  test("presetRequest: the bytes are the rewritten JSON", () => {
    const r = presetRequest(
      { model: "fast", messages: [{ role: "user", content: "hi" }] },
      { ...preset("fast", "qwen"), set: { temperature: 0 } },
      "/v1/chat/completions",
    );
    assert.deepEqual(JSON.parse(r.body.toString("utf8")), r.json);
    assert.equal(r.json.model, "qwen");
    assert.equal(r.json.temperature, 0);
  });

  test("the config file's presets section: read, and a preset setting the request's own fields refused", () => {
    const loaded = parseConfig(
      "models:\n  qwen: {path: ./q.gguf}\npresets:\n  qwen-nothink:\n    model: qwen\n    set: {chat_template_kwargs: {enable_thinking: false}}\n    system: Be brief.\n    systemMode: replace\n",
      "/tmp/x.yaml",
    );
    assert.deepEqual(configPresetsOf(loaded), [
      {
        name: "qwen-nothink",
        source: "config",
        model: "qwen",
        set: { chat_template_kwargs: { enable_thinking: false } },
        system: "Be brief.",
        systemMode: "replace",
      },
    ]);
    assert.throws(
      () => parseConfig("presets:\n  p: {model: qwen, set: {stream: true}}\n", "/tmp/x.yaml"),
      /presets\.p: set\.stream: a preset cannot set "stream"/,
    );
    assert.throws(() => parseConfig("presets:\n  p: {model: qwen, tempreature: 1}\n", "/tmp/x.yaml"), /presets\.p/);
  });
});

describe("the registry's presets", () => {
  test("saved, listed, replaced, removed; names are case-insensitive", () => {
    const r = Registry.open({ dbPath: ":memory:" });
    try {
      r.presets.save("Coder", { model: "qwen", system: "You write code.", set: { temperature: 0.1 } });
      assert.deepEqual(r.listPresets(), [
        { name: "Coder", source: "registry", model: "qwen", system: "You write code.", set: { temperature: 0.1 } },
      ]);
      r.presets.save("coder", { model: "llama" });
      assert.equal(r.listPresets().length, 1);
      assert.equal(r.presets.get("CODER")?.model, "llama");
      assert.equal(r.presets.remove("Coder"), true);
      assert.equal(r.presets.remove("Coder"), false);
      assert.deepEqual(r.listPresets(), []);
    } finally {
      r.close();
    }
  });
});
