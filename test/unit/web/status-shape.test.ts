// The dashboard reads /api/status with its own types (web/src/types.ts). Here they are held to what the server
// writes: at compile time (tsc in npm test) every field the page reads is one the server writes, with the same
// states; at run time the model card's "saved context" row shows the context cache's state.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelStatusReport, ProxyEvent as ServerEvent } from "../../../src/proxy/controller.js";
import type { ContextStatus as CacheContextStatus } from "../../../src/proxy/context/context-cache.js";
import type { ModelStatus as SchedulerState } from "../../../src/proxy/scheduler.js";
import { contextFacts } from "../../../web/src/context.js";
import type { ContextStatus, ModelState, ModelStatus, ProxyEvent } from "../../../web/src/types.js";

type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** The page's fields that the server never writes (a renamed field lands here): must be none. */
type UnwrittenFields = Exclude<keyof ModelStatus, keyof ModelStatusReport>;
/** Events the page handles that the server never sends ("hello" is the event stream's first, routes/events.ts). */
type UnsentEvents = Exclude<ProxyEvent["type"], ServerEvent["type"] | "hello">;

test("every field of a model and every event the dashboard reads is one the server writes; the same states", () => {
  const unwritten: Equal<UnwrittenFields, never> = true;
  const states: Equal<ModelState, SchedulerState> = true;
  const events: Equal<UnsentEvents, never> = true;
  // the context cache writes at least what the card reads
  const context: CacheContextStatus extends ContextStatus ? true : false = true;
  assert.deepEqual([unwritten, states, events, context], [true, true, true, true]);
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
