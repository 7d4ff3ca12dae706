/**
 * Screenshots of the dashboard for the README, from a real run: `gglib proxy` (in process) on the real
 * llama-server of the test rig with tiny models (a chat model, a think model, a broken file), some requests
 * through it, then each view in Debian's Chromium (playwright-core) at desktop width in dark and light, and the
 * models view at phone width. Writes docs/dashboard-*.png, and prints the page's time to first render.
 *
 *   npx tsx scripts/screenshots.ts [--out docs]
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Page } from "playwright-core";
import { startProxy } from "../src/proxy/index.js";
import { LlamaServerRunner } from "../src/runner/llama-server-runner.js";
import { ensureLlamaServer } from "../test/support/llama-server.js";
import { writeTinyModel, writeTruncatedGguf } from "../test/support/tiny-models.js";
import { buildUi } from "./build-ui.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outArg = process.argv.indexOf("--out");
const out = outArg > 0 ? process.argv[outArg + 1]! : join(root, "docs");
mkdirSync(out, { recursive: true });

await buildUi();
const bin = await ensureLlamaServer();
const dir = mkdtempSync(join(tmpdir(), "gglib-shots-"));
const models = join(dir, "models");
mkdirSync(models);
const chatPath = await writeTinyModel(models, { name: "qwen-tiny-chat", kind: "chat" });
await writeTinyModel(models, { name: "deepthink-tiny", kind: "think" });
await writeTinyModel(models, { name: "helper-tiny", kind: "chat", seed: 7 });
await writeTruncatedGguf(chatPath, join(models, "broken-download.gguf"), 4096);

const runner = new LlamaServerRunner({ binaryPath: bin, pidsDir: join(dir, "pids"), basePort: 21500 });
const proxy = await startProxy({ modelsDir: models, port: 0, maxModels: 2, memoryBudget: "160MiB", ttlS: 900, runner });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const post = (path: string, body: unknown) =>
    fetch(`${proxy.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then((r) => r.text());
  // some activity: both chat models, streaming and not, and the broken one failing
  for (let i = 0; i < 6; i++) {
    const model = i % 3 === 2 ? "deepthink-tiny" : "qwen-tiny-chat";
    await post("/v1/chat/completions", {
      model,
      messages: [{ role: "user", content: `Question number ${i}` }],
      max_tokens: 24 + i * 8,
      stream: i % 2 === 0,
    });
  }
  await post("/models/load", { model: "broken-download" });
  await post("/models/load", { model: "qwen-tiny-chat" });
  await post("/models/pin", { model: "qwen-tiny-chat", pinned: true });
  await post("/models/load", { model: "deepthink-tiny" });

  const shot = async (page: Page, name: string) => {
    await page.waitForTimeout(400);
    await page.screenshot({ path: join(out, `dashboard-${name}.png`), fullPage: false });
    process.stdout.write(`docs/dashboard-${name}.png\n`);
  };
  for (const scheme of ["dark", "light"] as const) {
    const ctx = await browser.newContext({
      colorScheme: scheme,
      viewport: { width: 1280, height: 800 },
      reducedMotion: "reduce",
    });
    const page = await ctx.newPage();
    await page.goto(`${proxy.url}/ui/#/models`);
    await page.locator("article[data-model]").first().waitFor();
    await shot(page, `models-${scheme}`);
    if (scheme === "dark") {
      await page.goto(`${proxy.url}/ui/#/activity`);
      await page.locator("[data-testid=activity] tbody tr").first().waitFor();
      await shot(page, "activity");
      await page.goto(`${proxy.url}/ui/#/logs`);
      await page.locator(".toolbar select").selectOption("qwen-tiny-chat");
      await page.locator("[data-testid=log] .line").first().waitFor();
      await shot(page, "logs");
      await page.goto(`${proxy.url}/ui/#/machine`);
      await page.getByTestId("machine").waitFor();
      await shot(page, "machine");
      await page.goto(`${proxy.url}/ui/#/config`);
      await page.getByTestId("config").waitFor();
      await shot(page, "config");
    }
    await page.goto(`${proxy.url}/ui/#/playground`);
    await page.locator(".toolbar select").selectOption("deepthink-tiny");
    await page.getByLabel("max tokens").fill("80");
    await page.getByLabel("Message").fill("Why is the sky blue?");
    await page.getByRole("button", { name: "Send" }).click();
    await page.locator("[data-testid=stats]").last().waitFor({ timeout: 60_000 });
    await page.getByRole("button", { name: "Send" }).waitFor();
    await page.locator("[data-testid=thinking] summary").last().click();
    await shot(page, `playground-${scheme}`);
    await ctx.close();
  }
  for (const scheme of ["dark", "light"] as const) {
    const ctx = await browser.newContext({
      colorScheme: scheme,
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const page = await ctx.newPage();
    await page.goto(`${proxy.url}/ui/#/models`);
    await page.locator("article[data-model]").first().waitFor();
    await shot(page, `phone-${scheme}`);
    await ctx.close();
  }
  // time to first render on loopback, in fresh contexts (no cache): first contentful paint, and the moment the
  // model cards are on screen (the page has read /api/status and /v1/models)
  const fcp: number[] = [];
  const cards: number[] = [];
  for (let i = 0; i < 7; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await page.goto(`${proxy.url}/ui/#/models`);
    await page.locator("article[data-model]").first().waitFor();
    cards.push(await page.evaluate<number>("performance.now()"));
    fcp.push(
      await page.evaluate<number>(
        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? performance.getEntriesByType('paint')[0]?.startTime ?? -1",
      ),
    );
    await ctx.close();
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  process.stdout.write(
    `time to first render (median of ${fcp.length}, loopback): first contentful paint ${median(fcp).toFixed(0)} ms, ` +
      `model cards shown ${median(cards).toFixed(0)} ms (all FCP: ${fcp.map((v) => v.toFixed(0)).join(", ")} ms)\n`,
  );
} finally {
  await browser.close();
  await proxy.close(2_000);
  rmSync(dir, { recursive: true, force: true });
}
