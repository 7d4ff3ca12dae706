/**
 * A kept-alive connection to llama-server closed just as the proxy reuses it (cpp-httplib's keep-alive wait
 * ending as the request arrives): the request, which got no answer, is sent once more on a fresh connection, so
 * the client never sees "other side closed". Real `gglib proxy` on the fake llama-server (FAKE_LLAMA_CLOSE_ON_REUSE).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { postJson, sseData, startProxyProcess } from "../support/proxy-harness.js";

const msgs = [{ role: "user", content: "hi" }];

describe("resend on a kept-alive connection closed as it was reused", { timeout: 60_000 }, () => {
  test("OpenAI chat (plain and streamed) and completions answer 200 though each reuse is met by a close", async (t) => {
    const p = await startProxyProcess(t, { models: ["a"], knobs: { closeOnReuse: 3 } });
    for (let i = 0; i < 4; i++) {
      const stream = i % 2 === 1;
      const r = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, stream });
      const text = await r.text();
      assert.equal(r.status, 200, `request ${i}: ${text}`);
      if (stream) assert.equal(sseData(text).at(-1), "[DONE]", `request ${i}: ${text}`);
      else assert.equal((JSON.parse(text) as { object: string }).object, "chat.completion");
    }
    const c = await postJson(p.url, "/v1/completions", { model: "a", prompt: "hi" });
    assert.equal(c.status, 200, await c.text());
    // every chat request reached llama-server once it was answered (a dropped one is not in the stats)
    const chats = p.stats().filter((s) => s.path === "/v1/chat/completions");
    assert.equal(chats.length, 4);
  });

  test("Ollama /api/chat answers 200 though the reuse is met by a close", async (t) => {
    const p = await startProxyProcess(t, { models: ["a"], knobs: { closeOnReuse: 2 } });
    for (let i = 0; i < 3; i++) {
      const r = await postJson(p.url, "/api/chat", { model: "a", messages: msgs, stream: false });
      const text = await r.text();
      assert.equal(r.status, 200, `request ${i}: ${text}`);
    }
  });
});
