// The dashboard's playground in a real Chromium against the proxy on the REAL llama-server with tiny models: an
// answer streams in (the page shows it growing, then its stats), and the think model's thinking is shown apart
// from its answer, foldable.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { dashboardEnv } from "../support/dashboard.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";

/** Sends `text` in the playground and records the answer's text lengths as the page renders them mid-stream. */
async function ask(page: Page, model: string, text: string): Promise<{ lengths: number[] }> {
  await page.locator(".toolbar select").selectOption(model);
  // in the page (a string: the test's TypeScript has no DOM types): record the answer's length at each render
  await page.evaluate(`(() => {
    window.__lengths = [];
    const chat = document.querySelector("[data-testid=chat]");
    new MutationObserver(() => {
      const turns = chat.querySelectorAll(".turn.assistant");
      const last = turns[turns.length - 1];
      const a = last?.querySelector("[data-testid=answer]")?.textContent ?? "";
      const th = last?.querySelector("[data-testid=thinking] .text")?.textContent ?? "";
      const n = a.length + th.length;
      // only while the answer is still streaming (the Stop button is shown until the stream ends)
      const running = document.querySelector("button.stop") !== null;
      if (running && n > 0 && window.__lengths[window.__lengths.length - 1] !== n) window.__lengths.push(n);
    }).observe(chat, { subtree: true, childList: true, characterData: true });
  })()`);
  await page.getByLabel("Message").fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator(".turn.assistant [data-testid=stats]").last().waitFor({ timeout: 60_000 });
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: 60_000 });
  const lengths = await page.evaluate<number[]>("window.__lengths");
  return { lengths };
}

describe("dashboard playground on the real llama-server", { timeout: 240_000 }, () => {
  test("an answer streams in with its stats; the think model's thinking is shown apart and folds", async (t) => {
    const bin = await ensureLlamaServer();
    const env = await dashboardEnv(t, {
      binary: bin,
      config: {
        maxModels: 1,
        models: {
          "tiny-chat": { path: "./models/tiny-chat.gguf" },
          "tiny-think": { path: "./models/tiny-think.gguf" },
        },
      },
      prepare: async (dir) => {
        await writeTinyModel(join(dir, "models"), { name: "tiny-chat", kind: "chat" });
        await writeTinyModel(join(dir, "models"), { name: "tiny-think", kind: "think" });
      },
    });
    const page = await env.page();
    await page.goto(`${env.proxy.url}/ui/#/playground`);
    // long enough to arrive in many chunks even at thousands of tokens/s (the tiny model never stops on its own)
    await page.getByLabel("max tokens").fill("600");

    const chat = await ask(page, "tiny-chat", "Hello there");
    const answer = (await page.locator(".turn.assistant [data-testid=answer]").last().textContent()) ?? "";
    assert.ok(answer.length > 0, "an answer");
    assert.ok(chat.lengths.length >= 2, `shown growing while streaming (saw lengths ${JSON.stringify(chat.lengths)})`);
    assert.ok(
      chat.lengths.every((n, i) => i === 0 || n > chat.lengths[i - 1]!),
      JSON.stringify(chat.lengths),
    );
    const stats = (await page.locator(".turn.assistant [data-testid=stats]").last().textContent()) ?? "";
    assert.match(stats, /\d+ tokens · [\d.]+ tokens\/s · prompt \d+/);

    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByLabel("max tokens").fill("64");
    await ask(page, "tiny-think", "Think first");
    const turn = page.locator(".turn.assistant").last();
    const thinking = turn.getByTestId("thinking");
    await thinking.waitFor();
    const thought = (await thinking.locator(".text").textContent()) ?? "";
    assert.ok(thought.trim().length > 0, "thinking shown");
    // the answer may be empty (the model may think until max_tokens): then there is no answer element
    const answerEl = turn.getByTestId("answer");
    const answerText = (await answerEl.count()) > 0 ? ((await answerEl.textContent()) ?? "") : "";
    // apart: the thought is not repeated in the answer, checked only when it is long enough that the random-weight
    // model cannot produce it inside its gibberish answer by chance (a thought such as "h" often is a substring;
    // stray "</think>" tokens after the reasoning ended are content the model generated, so they prove nothing)
    const t0 = thought.trim();
    assert.ok(t0.length < 8 || !answerText.includes(t0), "the thinking is not inside the answer");
    // folded once the answer is done; opens on click
    assert.equal(await thinking.evaluate((el) => (el as unknown as { open: boolean }).open), false);
    await thinking.locator("summary").click();
    assert.equal(await thinking.evaluate((el) => (el as unknown as { open: boolean }).open), true);
  });
});
