// The proxy's own slot actions stay off the public routes (routes/slots.ts): every spelling of a path under
// /slots/ is refused with a 403 in OpenAI's error shape; the listing GET /slots and everything else passes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { HttpError } from "../../../src/core/errors.js";
import { isSlotActionPath, refuseSlotAction } from "../../../src/proxy/routes/slots.js";

describe("slot actions on public routes (routes/slots.ts)", () => {
  test("every spelling of /slots/{id} is a slot action", () => {
    for (const p of [
      "/slots/0",
      "/slots/0/",
      "/slots/",
      "//slots/0",
      "/./slots/0",
      "/v1/../slots/0",
      "/SLOTS/0",
      "/%73lots/0",
      "/slots%2F0",
      "/slots%252F0",
      "%2Fslots/0",
      "\\slots\\0",
      "http://127.0.0.1:8080/slots/0",
      "/api-prefix/slots/0",
    ])
      assert.equal(isSlotActionPath(p), true, p);
  });

  test("the listing and every other path pass", () => {
    for (const p of ["/slots", "/slots%3Faction=save", "/v1/chat/completions", "/props", "/slotsx/0", "/", "*"])
      assert.equal(isSlotActionPath(p), false, p);
  });

  test("refused with a 403 that says the proxy manages slots itself", () => {
    assert.doesNotThrow(() => refuseSlotAction("/slots"));
    assert.throws(
      () => refuseSlotAction("/slots/0"),
      (e: unknown) =>
        e instanceof HttpError &&
        e.status === 403 &&
        e.code === "slot_actions_reserved" &&
        /saves and restores each model's slots itself/.test(e.message),
    );
  });
});
