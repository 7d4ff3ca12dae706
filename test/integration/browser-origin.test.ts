// Web pages against the proxy, in a real Chromium (playwright-core) on the fake llama-server: a page of another
// origin that fires no-cors POSTs (no preflight) at the default proxy changes nothing; a page whose DNS name
// points at 127.0.0.1 (DNS rebinding, simulated with Chromium's --host-resolver-rules) reads nothing and loads
// nothing; a page of an origin given with --cors works. The dashboard itself is covered by dashboard-ui.test.ts.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM, dashboardProxy } from "../support/dashboard.js";
import type { ProxyOptions } from "../../src/proxy/index.js";

/** A page of its own origin (http://attacker.test:<port>/, which Chromium resolves to 127.0.0.1). */
async function attackerSite(t: TestContext): Promise<number> {
  const site = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>a web page</title>");
  });
  await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => site.close(() => r())));
  return (site.address() as AddressInfo).port;
}

async function browserPage(t: TestContext): Promise<(url: string) => Promise<Page>> {
  const b = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--host-resolver-rules=MAP attacker.test 127.0.0.1, MAP rebind.test 127.0.0.1"],
  });
  t.after(() => b.close().catch(() => {}));
  return async (url) => {
    const page = await (await b.newContext()).newPage();
    await page.goto(url);
    return page;
  };
}

async function setup(t: TestContext, proxy: Partial<ProxyOptions> = {}) {
  const env = await dashboardProxy(t, { fakeModels: ["alpha"], proxy });
  const port = Number(new URL(env.proxy.url).port);
  return { ...env, port, site: await attackerSite(t), open: await browserPage(t) };
}

describe("web pages against the proxy (real Chromium)", { skip: !existsSync(CHROMIUM), timeout: 90_000 }, () => {
  test("another site's no-cors POSTs load, pin and reload nothing", async (t) => {
    const { proxy, port, site, open } = await setup(t);
    const page = await open(`http://attacker.test:${site}/`);
    const target = `http://127.0.0.1:${port}`;
    // what any page can do without the user's consent: opaque requests, no preflight, answers unreadable
    const shots: [string, string][] = [
      ["/models/load", JSON.stringify({ model: "alpha" })],
      ["/models/pin", JSON.stringify({ model: "alpha", pinned: true })],
      ["/v1/chat/completions", JSON.stringify({ model: "alpha", messages: [{ role: "user", content: "x" }] })],
      ["/api/chat", JSON.stringify({ model: "alpha", messages: [{ role: "user", content: "x" }] })],
    ];
    // (no named functions inside evaluate: the test's transpiler would wrap them in a helper the page lacks)
    await page.evaluate(
      async ([base, list]) => {
        for (const [path, body] of list)
          await fetch(base + path, { method: "POST", mode: "no-cors", body }).catch(() => undefined);
      },
      [target, shots] as const,
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(proxy.controller.state("alpha")?.status ?? "unloaded", "unloaded", "nothing was loaded");
    assert.equal(proxy.controller.getModel("alpha")?.spec.pinned, false, "nothing was pinned");
  });

  test("DNS rebinding: a page at rebind.test (→ 127.0.0.1) on the proxy's port gets 403s, reads and loads nothing", async (t) => {
    const { proxy, port, open } = await setup(t);
    const page = await open(`http://rebind.test:${port}/api/status`).catch(() => undefined);
    assert.ok(page, "the page opened");
    const seen = await page.evaluate(async () => {
      const status = await fetch("/api/status");
      const load = await fetch("/models/load", { method: "POST", body: JSON.stringify({ model: "alpha" }) });
      return { status: status.status, load: load.status, text: await status.text() };
    });
    assert.equal(seen.status, 403);
    assert.equal(seen.load, 403);
    assert.doesNotMatch(seen.text, /alpha/, "no model names leak");
    assert.equal(proxy.controller.state("alpha")?.status ?? "unloaded", "unloaded");
    // the same proxy by its own names serves the page's requests
    const own = await open(`http://localhost:${port}/ui/`);
    const ok = await own.evaluate(
      async () => (await fetch("/models/load", { method: "POST", body: '{"model":"alpha"}' })).status,
    );
    assert.equal(ok, 200);
  });

  test("an origin given with --cors may call the proxy from its pages", async (t) => {
    const siteFirst = await attackerSite(t);
    const origin = `http://attacker.test:${siteFirst}`;
    const { proxy, port, open } = await setup(t, { corsOrigins: [origin] });
    const page = await open(`${origin}/`);
    const r = await page.evaluate(async (base) => {
      const res = await fetch(`${base}/models/load`, { method: "POST", body: JSON.stringify({ model: "alpha" }) });
      return { status: res.status, body: await res.text() };
    }, `http://127.0.0.1:${port}`);
    assert.equal(r.status, 200, r.body);
    assert.equal(proxy.controller.state("alpha")?.status, "ready");
  });
});
