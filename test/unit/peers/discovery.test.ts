/** Discovery bodies: a gglib proxy's /api/status, an OpenAI-compatible /v1/models; anything else is not one. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseGglibStatus, parseOpenAiModels } from "../../../src/peers/discovery.js";

test("a gglib status: models with states and files, free budget", () => {
  const s = parseGglibStatus({
    uptimeS: 3,
    budget: { bytes: 10_000, source: "configured", usedBytes: 4_000 },
    models: [
      { name: "a", aliases: ["x"], path: "/m/a-q4.gguf", state: "ready", estimatedBytes: 900, measuredBytes: 1000 },
      { name: "b", aliases: [], path: "C:\\models\\b.gguf", state: "pending", estimatedBytes: 10 },
      { name: "c", aliases: [], path: "/m/c.gguf", state: "stuck" },
      { name: "", state: "ready" },
      "junk",
    ],
  });
  assert.deepEqual(s, {
    kind: "gglib",
    budgetBytes: 10_000,
    freeBytes: 6_000,
    models: [
      { name: "a", aliases: ["x"], state: "ready", file: "a-q4.gguf", estimatedBytes: 1000 },
      { name: "b", aliases: [], state: "loading", file: "b.gguf", estimatedBytes: 10 },
      { name: "c", aliases: [], state: "failed", file: "c.gguf" },
    ],
  });
  assert.equal(parseGglibStatus({ budget: { bytes: null }, models: [] })?.freeBytes, undefined);
});

test("not a gglib status: undefined", () => {
  assert.equal(parseGglibStatus({ object: "list", data: [] }), undefined);
  assert.equal(parseGglibStatus([]), undefined);
  assert.equal(parseGglibStatus(null), undefined);
  assert.equal(parseGglibStatus({ models: [] }), undefined);
});

test("an OpenAI model list: ids, router-mode states when given, duplicates once", () => {
  assert.deepEqual(
    parseOpenAiModels({
      object: "list",
      data: [{ id: "gpt-x" }, { id: "m2", status: { value: "loaded" } }, { id: "gpt-x" }, { id: 3 }],
    }),
    {
      kind: "openai",
      freeBytes: undefined,
      budgetBytes: undefined,
      models: [
        { name: "gpt-x", aliases: [], state: "unknown" },
        { name: "m2", aliases: [], state: "ready" },
      ],
    },
  );
  assert.equal(parseOpenAiModels({ models: [] }), undefined);
});
