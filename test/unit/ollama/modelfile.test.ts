// The Modelfile parser and writer, and /api/create's body as a preset (src/ollama/modelfile.ts).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ModelfileError,
  parseModelfile,
  presetFromCreate,
  presetModelfile,
  presetParametersText,
} from "../../../src/ollama/modelfile.js";

describe("parseModelfile", () => {
  test("FROM, PARAMETER (typed, stop collected), SYSTEM (quoted, multi-line), MESSAGE, comments", () => {
    const mf = parseModelfile(
      [
        "# a coding assistant",
        "from qwen3:8b",
        "PARAMETER temperature 0.2",
        "PARAMETER num_predict 256",
        'PARAMETER stop "<|im_end|>"',
        "PARAMETER stop ###",
        'SYSTEM """You write code.',
        'Answer with "code" only."""',
        "MESSAGE user 2+2?",
        'MESSAGE assistant "4"',
        "LICENSE MIT",
        "",
      ].join("\r\n"),
    );
    assert.deepEqual(mf, {
      from: "qwen3:8b",
      parameters: { temperature: 0.2, num_predict: 256, stop: ["<|im_end|>", "###"] },
      system: 'You write code.\r\nAnswer with "code" only.'.replace("\r", ""),
      messages: [
        { role: "user", content: "2+2?" },
        { role: "assistant", content: "4" },
      ],
      adapters: [],
      license: ["MIT"],
    });
  });

  test("TEMPLATE and ADAPTER are read (create refuses them); a GGUF path in FROM is kept as written", () => {
    const mf = parseModelfile('FROM ./models/my model.gguf\nTEMPLATE """{{ .Prompt }}"""\nADAPTER ./lora.gguf\n');
    assert.equal(mf.from, "./models/my model.gguf");
    assert.equal(mf.template, "{{ .Prompt }}");
    assert.deepEqual(mf.adapters, ["./lora.gguf"]);
  });

  test('errors name the line: unknown instruction, unclosed """, bad role, missing value', () => {
    assert.throws(() => parseModelfile("FROM a\nPARAMS x 1"), /line 2: unknown instruction "PARAMS"/);
    assert.throws(() => parseModelfile('SYSTEM """never closed\nmore'), /line 1: a """ is never closed/);
    assert.throws(() => parseModelfile("MESSAGE tool hi"), /line 1: MESSAGE role "tool"/);
    assert.throws(() => parseModelfile("FROM"), /line 1: FROM needs a value/);
    assert.throws(() => parseModelfile("PARAMETER"), ModelfileError);
  });
});

describe("presetFromCreate", () => {
  test("the structured fields of today's clients: from, system, parameters (mapped), messages", () => {
    const plan = presetFromCreate({
      model: "coder",
      from: "qwen",
      system: "You write code.",
      parameters: { temperature: 0.1, num_predict: 100, stop: ["END"], top_k: 20 },
      messages: [{ role: "user", content: "hi" }],
      stream: false,
    });
    assert.deepEqual(plan, {
      from: "qwen",
      def: {
        system: "You write code.",
        systemMode: "default",
        set: { temperature: 0.1, max_tokens: 100, stop: ["END"], top_k: 20 },
        messages: [{ role: "user", content: "hi" }],
      },
    });
  });

  test("the older Modelfile text; structured fields win over it", () => {
    const plan = presetFromCreate({
      model: "x",
      modelfile: "FROM qwen\nPARAMETER temperature 0.9\nSYSTEM old\n",
      parameters: { temperature: 0.3 },
    });
    assert.deepEqual(plan, { from: "qwen", def: { system: "old", systemMode: "default", set: { temperature: 0.3 } } });
  });

  test("a template, an adapter, a quantization, blobs, load-time or unknown parameters: the reason why not", () => {
    assert.throws(
      () => presetFromCreate({ from: "q", template: "{{ .Prompt }}" }),
      /TEMPLATE cannot be set.*chat template is fixed/,
    );
    assert.throws(() => presetFromCreate({ modelfile: "FROM q\nADAPTER ./l.gguf" }), /ADAPTER cannot be applied/);
    assert.throws(() => presetFromCreate({ from: "q", adapters: { "l.gguf": "sha256:1" } }), /ADAPTER/);
    assert.throws(() => presetFromCreate({ from: "q", quantize: "q4_K_M" }), /quantizing is not supported/);
    assert.throws(() => presetFromCreate({ files: { "m.gguf": "sha256:ab" } }), /uploaded blobs/);
    assert.throws(
      () => presetFromCreate({ from: "q", parameters: { num_ctx: 8192 } }),
      /num_ctx is fixed when the model loads/,
    );
    assert.throws(() => presetFromCreate({ from: "q", parameters: { bogus: 1 } }), /unknown PARAMETER bogus/);
    assert.throws(() => presetFromCreate({ from: "q", parameters: { temperature: "hot" } }), /temperature.*float/);
    assert.throws(() => presetFromCreate({ model: "x" }), /needs a base model/);
    assert.throws(() => presetFromCreate({ from: "q", messages: [{ role: "tool", content: "x" }] }), /messages\[0\]/);
  });
});

describe("presetModelfile", () => {
  test("a preset as a Modelfile that parses back to the same preset", () => {
    const def = {
      model: "qwen",
      set: { temperature: 0.2, max_tokens: 50, stop: ["a", 'b"c'] },
      system: "Line one\nLine two",
      systemMode: "default" as const,
      messages: [{ role: "user" as const, content: "hi" }],
    };
    const text = presetModelfile("coder", def);
    assert.match(text, /^FROM qwen$/m);
    assert.match(text, /^PARAMETER num_predict 50$/m);
    const back = presetFromCreate({ modelfile: text });
    assert.deepEqual(back, {
      from: "qwen",
      def: { system: def.system, systemMode: "default", set: def.set, messages: def.messages },
    });
    assert.match(presetParametersText(def), /^num_predict\s+50$/m);
  });
});
