// The dashboard reads the management API with the server's own types (src/proxy/api-types.ts), so the web typecheck
// (tsc -p web/tsconfig.json in npm test) fails when the page reads a field the server does not write. Here: that
// file stays importable by the browser build (no imports), web/ keeps no copies of its shapes, and the model card's
// "saved context" row says what the context cache's state holds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ContextStatus } from "../../../src/proxy/api-types.js";
import { contextFacts } from "../../../web/src/context.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const apiTypes = readFileSync(join(root, "src/proxy/api-types.ts"), "utf8");

test("api-types.ts imports nothing: the browser build takes it as it is", () => {
  assert.deepEqual(apiTypes.match(/^\s*(import|export .* from)\b.*$/gm) ?? [], []);
});

test("web/ declares none of the API's shapes again: it imports them from api-types.ts", () => {
  const exported = new Set([...apiTypes.matchAll(/^export (?:interface|type) (\w+)/gm)].map((m) => m[1]!));
  assert.ok(exported.has("ModelStatusReport") && exported.has("ProxyEvent") && exported.has("ModelListEntry"));
  // the names the server uses and the ones the page's copies had (ModelState, StatusResponse, ConfigResponse)
  const copied = new Set([...exported, "ModelState", "StatusResponse", "ConfigResponse"]);
  const files = readdirSync(join(root, "web/src"), { recursive: true, encoding: "utf8" }).filter((f) =>
    /\.tsx?$/.test(f),
  );
  const copies = files.flatMap((f) =>
    [...readFileSync(join(root, "web/src", f), "utf8").matchAll(/^\s*(?:export )?(?:interface|type) (\w+)/gm)]
      .map((m) => m[1]!)
      .filter((name) => copied.has(name))
      .map((name) => `${f}: ${name}`),
  );
  assert.deepEqual(copies, []);
});

const base: ContextStatus = { enabled: true, savedSlots: 0, savedTokens: 0, bytesOnDisk: 0 };

test("saved context: what is on disk, the last save, restore and discard", () => {
  assert.deepEqual(contextFacts(base), ["nothing saved"]);
  const status = {
    ...base,
    savedSlots: 2,
    savedTokens: 4316,
    bytesOnDisk: 26 * 1024 * 1024,
    lastSave: { at: "2026-12-07T18:00:00Z", slots: 2, tokens: 4316, bytes: 1, ms: 87, failures: 1, skipped: 1 },
    lastRestore: { at: "2026-12-07T18:00:01Z", slots: 1, tokens: 4316, ms: 9.4, reusedTokens: 4321 },
    lastDiscard: { at: "2026-12-07T17:00:00Z", reason: "ctx 4096 → 8192" },
  } satisfies ContextStatus;
  assert.deepEqual(contextFacts(status), [
    "2 slots, 4,316 tokens, 26.0 MiB on disk",
    "last save: 4,316 tokens in 87 ms, 1 slot not worth saving, 1 failure",
    "last restore: 4,316 tokens in 9 ms, 4,321 reused",
    "discarded: ctx 4096 → 8192",
  ]);
  const cheap = { ...base, lastSave: { ...status.lastSave, cheap: true } };
  assert.deepEqual(contextFacts(cheap), ["nothing saved", "last stop: nothing worth saving"]);
});

test("saved context: off for this model, and why", () => {
  assert.deepEqual(contextFacts({ ...base, enabled: false, reason: "sliding-window attention (llama.cpp #25913)" }), [
    "off: sliding-window attention (llama.cpp #25913)",
  ]);
  assert.deepEqual(contextFacts({ ...base, enabled: false }), ["off"]);
});
