// The dashboard (/ui) with peers, in a real Chromium: each peer's card (up, kind, its models by their ids here,
// their states), "this host" on the local cards, and a peer that dies shown down with why, live (the front's
// `peer` event on /api/events, no reload of the page).
import { test } from "node:test";
import assert from "node:assert/strict";
import { dashboardEnv } from "../support/dashboard.js";
import { postJson, startProxyProcess } from "../support/proxy-harness.js";

const KEY = "sk-dash-peer";

async function expectText(fn: () => Promise<string | null>, want: RegExp, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | null = null;
  for (;;) {
    last = await fn().catch(() => null);
    if (last !== null && want.test(last)) return;
    if (Date.now() > deadline) assert.fail(`expected ${String(want)}, last saw ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("dashboard: peers and where each model lives; a dead peer shown down, live", { timeout: 120_000 }, async (t) => {
  const peer = await startProxyProcess(t, { models: ["m", "n"], args: ["--api-key", KEY] });
  const load = await postJson(peer.url, "/models/load", { model: "m" }, { authorization: `Bearer ${KEY}` });
  assert.equal(load.status, 200, await load.text());
  const env = await dashboardEnv(t, {
    config: { models: { here: { path: "./models/here.gguf" } } },
    fakeModels: ["here"],
    proxy: { peers: { gpu2: { url: peer.url, apiKey: KEY, pollInterval: 0.2 } } },
  });
  const page = await env.page();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${env.proxy.url}/ui/`);
  const local = page.locator('article[data-model="here"]');
  await expectText(() => local.textContent(), /this host/);
  const card = page.locator('article[data-peer="gpu2"]');
  await expectText(() => card.getByTestId("peer-state").textContent(), /^up$/);
  await expectText(() => card.textContent(), /gglib/);
  await expectText(() => card.locator('li[data-model="gpu2/m"]').textContent(), /gpu2\/m\s*ready/);
  await expectText(() => card.locator('li[data-model="gpu2/n"]').textContent(), /gpu2\/n\s*idle/);
  assert.ok((await card.textContent())?.includes(peer.url));

  peer.kill("SIGKILL");
  await expectText(() => card.getByTestId("peer-state").textContent(), /^down$/);
  await expectText(() => card.getByRole("alert").textContent(), /refused the connection|closed the connection/);
  assert.deepEqual(errors, []);
});
