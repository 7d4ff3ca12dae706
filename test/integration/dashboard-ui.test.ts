// The dashboard (/ui) in a real Chromium (Debian's chromium, driven by playwright-core) against the proxy on the
// fake llama-server: the models and their states, a load's progress, the saved-context row, a sliding-window
// model's --swa-full choice and a hybrid model's context caveat, unload, a failed load's reason, a crash, the
// activity and log views following live, the static shell's Content-Security-Policy, and with an API key set,
// nothing but the shell before the key is given.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { join } from "node:path";
import { contextFacts, swaFullFact } from "../../web/src/context.js";
import type { StatusReport } from "../../src/proxy/api-types.js";
import { dashboardEnv } from "../support/dashboard.js";
import { writeArchModel } from "../support/archs/index.js";

const BROKEN_REASON = "llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' has wrong shape";

const config = {
  maxModels: 3,
  models: {
    alpha: { path: "./models/alpha.gguf", aliases: ["first"] },
    slow: { path: "./models/slow.gguf", env: { FAKE_LLAMA_LOAD_MS: "2500" } },
    broken: { path: "./models/broken.gguf", env: { FAKE_LLAMA_FAIL_LOAD: `1:${BROKEN_REASON}` } },
    crashy: {
      path: "./models/crashy.gguf",
      env: { FAKE_LLAMA_CRASH_AFTER_CHUNKS: "1", FAKE_LLAMA_CRASH_SIGNAL: "SIGSEGV" },
    },
  },
};
const fakeModels = ["alpha", "slow", "broken", "crashy"];

const card = (page: Page, name: string) => page.locator(`article[data-model="${name}"]`);
const stateOf = (page: Page, name: string) => card(page, name).getByTestId("state");

async function expectText(fn: () => Promise<string | null>, want: RegExp | string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last: string | null = null;
  for (;;) {
    last = await fn();
    if (last !== null && (typeof want === "string" ? last.includes(want) : want.test(last))) return last;
    if (Date.now() > deadline) assert.fail(`expected ${String(want)}, last saw ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("dashboard in Chromium, proxy on the fake llama-server", { timeout: 120_000 }, () => {
  test("models listed; load shows progress then ready; unload; failed load shows llama-server's reason; crash", async (t) => {
    const env = await dashboardEnv(t, { config, fakeModels });
    const page = await env.page();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // network answers (the broken model's 502) are logged by Chromium too: only script errors count
    page.on(
      "console",
      (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()),
    );
    const resp = await page.goto(`${env.proxy.url}/ui/`);
    assert.equal(resp?.status(), 200);
    const csp = resp?.headers()["content-security-policy"] ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);

    for (const m of fakeModels) await expectText(() => stateOf(page, m).textContent(), "unloaded");
    assert.match((await card(page, "alpha").textContent()) ?? "", /aka first/);
    assert.match((await card(page, "alpha").textContent()) ?? "", /config/);

    // load with progress
    await card(page, "slow").getByRole("button", { name: "Load", exact: true }).click();
    await expectText(() => stateOf(page, "slow").textContent(), "loading");
    const seen = new Set<number>();
    await expectText(async () => {
      const v = await card(page, "slow")
        .getByRole("progressbar")
        .getAttribute("aria-valuenow")
        .catch(() => null);
      if (v !== null) seen.add(Number(v));
      return [...seen].some((x) => x > 0 && x < 100) ? "partial" : null;
    }, "partial");
    await expectText(() => stateOf(page, "slow").textContent(), "ready");
    assert.match((await card(page, "slow").textContent()) ?? "", /pid \/ port\d+ \/ \d+/);
    // the context cache's state, from the field /api/status writes (models[].context)
    const status = (await (await fetch(`${env.proxy.url}/api/status`)).json()) as StatusReport;
    const context = status.models.find((m) => m.name === "slow")?.context;
    assert.ok(context, "the context cache reports on the loaded model");
    const savedContext = () =>
      card(page, "slow")
        .getByTestId("saved-context")
        .textContent({ timeout: 200 })
        .catch(() => null);
    await expectText(savedContext, contextFacts(context)[0]!);

    // unload
    await card(page, "slow").getByRole("button", { name: "Unload", exact: true }).click();
    await expectText(() => stateOf(page, "slow").textContent(), "unloaded");
    assert.equal(env.proxy.controller.state("slow")?.status, "unloaded");

    // a failed load: state and llama-server's own reason
    await card(page, "broken").getByRole("button", { name: "Load", exact: true }).click();
    await expectText(() => stateOf(page, "broken").textContent(), "failed");
    await expectText(() => card(page, "broken").getByTestId("reason").textContent(), "has wrong shape");

    // a crash while generating: shown with its reason
    const r = await fetch(`${env.proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "crashy", messages: [{ role: "user", content: "hi" }], stream: true }),
    });
    await r.text();
    await expectText(() => card(page, "crashy").getByTestId("reason").textContent(), /crashed: .*SIGSEGV/);

    // pin / unpin
    await card(page, "alpha").getByRole("button", { name: "Pin", exact: true }).click();
    await expectText(() => card(page, "alpha").textContent(), /pinned/);
    assert.equal(env.proxy.controller.state("alpha")?.spec.pinned, true);
    await card(page, "alpha").getByRole("button", { name: "Unpin", exact: true }).click();
    await expectText(async () => String(env.proxy.controller.state("alpha")?.spec.pinned), "false");
    assert.deepEqual(errors, []);
  });

  test("model cards: a sliding-window model's --swa-full choice and cost, a hybrid model's context caveat", async (t) => {
    // the rig's real GGUF layouts (the proxy reads their headers); the fake llama-server runs them
    const env = await dashboardEnv(t, {
      config: { maxModels: 2, models: { g3: { path: "./models/g3.gguf" }, gh: { path: "./models/gh.gguf" } } },
      prepare: async (dir) => {
        await writeArchModel(join(dir, "models"), { family: "gemma3", name: "g3" });
        await writeArchModel(join(dir, "models"), { family: "granitehybrid", name: "gh" });
      },
    });
    const page = await env.page();
    await page.goto(`${env.proxy.url}/ui/`);
    const r = await fetch(`${env.proxy.url}/models/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gh" }),
    });
    assert.equal(r.status, 200, await r.text());
    const status = (await (await fetch(`${env.proxy.url}/api/status`)).json()) as StatusReport;
    const g3 = status.models.find((m) => m.name === "g3");
    assert.ok(g3?.swaFull, "a sliding-window model reports its --swa-full choice");
    assert.equal(g3.swaFull.on, true, g3.swaFull.reason);
    assert.ok(g3.swaFull.extraBytes > 0);
    const shown = await expectText(
      () =>
        card(page, "g3")
          .getByTestId("swa-full")
          .textContent({ timeout: 200 })
          .catch(() => null),
      swaFullFact(g3.swaFull),
    );
    assert.match(shown, /^on \(\+[\d.]+ [KM]iB\): fits the memory budget/);
    assert.equal(await card(page, "gh").getByTestId("swa-full").count(), 0, "no --swa-full row without SWA layers");
    const caveat = status.models.find((m) => m.name === "gh")?.context?.caveat;
    assert.match(caveat ?? "", /extends every saved token/);
    await expectText(
      () =>
        card(page, "gh")
          .getByTestId("context-caveat")
          .textContent({ timeout: 200 })
          .catch(() => null),
      caveat!,
    );
  });

  test("activity and logs follow live; machine and config views read the API", async (t) => {
    const env = await dashboardEnv(t, { config, fakeModels });
    const page = await env.page();
    await page.goto(`${env.proxy.url}/ui/#/activity`);
    await expectText(() => page.locator("main").textContent(), "No requests yet");
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${env.proxy.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "alpha", messages: [{ role: "user", content: `hello ${i}` }] }),
      });
      assert.equal(r.status, 200);
      await r.text();
    }
    await expectText(async () => String(await page.locator("[data-testid=activity] tbody tr").count()), "3");
    const row = (await page.locator("[data-testid=activity] tbody tr").first().textContent()) ?? "";
    assert.match(row, /alpha.*POST \/v1\/chat\/completions.*200/);

    // logs: the model's llama-server log follows as lines arrive
    await page.goto(`${env.proxy.url}/ui/#/logs`);
    await page.locator("select").selectOption("alpha");
    await expectText(() => page.getByTestId("log").textContent(), "listening on");
    const before = await page.locator("[data-testid=log] .line").count();
    const r = await fetch(`${env.proxy.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "alpha", messages: [{ role: "user", content: "more" }] }),
    });
    await r.text();
    await expectText(
      async () => ((await page.locator("[data-testid=log] .line").count()) > before ? "more" : null),
      "more",
    );
    // the box is scrolled to the end (follow)
    const atEnd = await page.getByTestId("log").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 30);
    assert.equal(atEnd, true);
    // search filters
    await page.getByPlaceholder("search").fill("listening on");
    await expectText(async () => String(await page.locator("[data-testid=log] .line").count()), /^[1-9]\d*$/);
    for (const l of await page.locator("[data-testid=log] .line").allTextContents()) assert.match(l, /listening on/);

    // the proxy's own log has the state changes
    await page.getByPlaceholder("search").fill("");
    await page.locator("select").selectOption("");
    await expectText(() => page.getByTestId("log").textContent(), "alpha: loading → ready");

    await page.goto(`${env.proxy.url}/ui/#/machine`);
    await expectText(() => page.getByTestId("machine").textContent(), /RAM.*available of/);
    await page.goto(`${env.proxy.url}/ui/#/config`);
    await expectText(() => page.getByTestId("config").textContent(), "maxModels3");
    await page.getByRole("button", { name: "Reload config" }).click();
    await expectText(() => page.getByTestId("last-reload").textContent(), /Last reload.*api/);
  });

  test("with an API key: only the shell before the key; nothing leaks; then the models", async (t) => {
    const env = await dashboardEnv(t, { config, fakeModels, proxy: { apiKeys: ["sk-ui-secret"] } });
    const page = await env.page();
    const answered: Array<{ url: string; status: number; body: string }> = [];
    page.on("response", (r) => {
      void r.text().then(
        (body) => answered.push({ url: r.url(), status: r.status(), body }),
        () => answered.push({ url: r.url(), status: r.status(), body: "" }),
      );
    });
    await page.goto(`${env.proxy.url}/ui/`);
    await page.getByRole("heading", { name: "API key" }).waitFor();
    await new Promise((r) => setTimeout(r, 300));
    const text = (await page.locator("body").textContent()) ?? "";
    for (const m of fakeModels) assert.ok(!text.includes(m), `model name '${m}' shown before the key`);
    const api = answered.filter((a) => !new URL(a.url).pathname.startsWith("/ui/"));
    assert.ok(api.length > 0, "the page asked the API (and was refused)");
    for (const a of api) {
      assert.equal(a.status, 401, `${a.url} answered ${a.status} before the key`);
      for (const m of fakeModels) assert.ok(!a.body.includes(m), `${a.url} leaked '${m}'`);
    }
    // a wrong key is refused
    await page.getByLabel("Key").fill("sk-wrong");
    await page.getByRole("button", { name: "Open the dashboard" }).click();
    await expectText(() => page.locator("main").textContent(), "That key was not accepted");
    await page.getByLabel("Key").fill("sk-ui-secret");
    await page.getByRole("button", { name: "Open the dashboard" }).click();
    for (const m of fakeModels) await expectText(() => stateOf(page, m).textContent(), "unloaded");
    // the config view never shows the key
    await page.goto(`${env.proxy.url}/ui/#/config`);
    await expectText(() => page.getByTestId("config").textContent(), "apiKeys1 key(s) (not shown)");
    assert.ok(!((await page.content()) ?? "").includes("sk-ui-secret"));
  });
});
