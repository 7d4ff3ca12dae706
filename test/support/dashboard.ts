/**
 * Browser tests of the dashboard (/ui): an in-process proxy (startProxy) on a temp folder, and Debian's Chromium
 * driven by playwright-core. The dashboard is built into dist/ui first when it is missing or older than web/.
 *
 *   const env = await dashboardEnv(t, { config: { models: { a: { path: "./models/a.gguf" } } }, fakeModels: ["a"] });
 *   const page = await env.page();  await page.goto(`${env.proxy.url}/ui/`);
 *
 * Cleanup (registered on the test context): the browser, the proxy and its llama-servers, the folder.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { chromium, type Browser, type BrowserContextOptions, type Page } from "playwright-core";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../src/proxy/index.js";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { buildUi, UI_OUT_DIR } from "../../scripts/build-ui.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel, type FakeLlamaKnobs } from "./fake-llama.js";
import { killQuietly, pidsWithArg, waitFor } from "./procs.js";

export const CHROMIUM = process.env.GGLIB_TEST_CHROMIUM ?? "/usr/bin/chromium";

const webDir = fileURLToPath(new URL("../../web", import.meta.url));

function newest(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { recursive: true })) n = Math.max(n, statSync(join(dir, String(f))).mtimeMs);
  return n;
}

let built: Promise<void> | undefined;
/** dist/ui, built now when missing or older than web/ (npm test builds it; single test files may not have). */
export function ensureUiBuilt(): Promise<void> {
  built ??= (async () => {
    const index = join(UI_OUT_DIR, "app.js");
    if (existsSync(index) && statSync(index).mtimeMs >= newest(webDir)) return;
    await buildUi();
  })();
  return built;
}

export interface DashboardEnvOptions {
  /** The config file's content (written as YAML to <dir>/config.yaml); paths are relative to <dir>. */
  config?: Record<string, unknown>;
  /** Fake models written to <dir>/models/<name>.gguf. */
  fakeModels?: string[];
  /** Knobs for every fake llama-server (per-model ones go in the config's `env`). */
  knobs?: FakeLlamaKnobs;
  /** A real llama-server binary instead of the fake. */
  binary?: string;
  proxy?: Partial<ProxyOptions>;
  /** Runs with the folder before the proxy starts (write models into <dir>/models). */
  prepare?: (dir: string) => Promise<void>;
}

export interface DashboardEnv {
  dir: string;
  proxy: RunningProxy;
  browser: Browser;
  /** A new page (own context: storage, colour scheme, viewport). */
  page(o?: BrowserContextOptions): Promise<Page>;
}

/** The proxy part alone (API tests without a browser): started in process on a temp folder, closed after. */
export async function dashboardProxy(
  t: TestContext,
  o: DashboardEnvOptions = {},
): Promise<{ dir: string; proxy: RunningProxy; configPath: string | undefined }> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-ui-"));
  const models = join(dir, "models");
  mkdirSync(models);
  for (const m of o.fakeModels ?? []) writeFakeModel(models, m);
  let configPath: string | undefined;
  if (o.config) {
    configPath = join(dir, "config.yaml");
    writeFileSync(configPath, stringify(o.config));
  }
  await o.prepare?.(dir);
  const runner = new LlamaServerRunner({
    binaryPath: o.binary ?? FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    env: o.binary ? undefined : fakeLlamaEnv({ loadMs: 50, ...o.knobs }),
    basePort: 20000 + Math.floor(Math.random() * 20000),
    healthIntervalMs: 500,
  });
  const live: { proxy?: RunningProxy } = {};
  t.after(async () => {
    await live.proxy?.close(1_000).catch(() => {});
    for (const p of pidsWithArg(dir)) killQuietly(p);
    await waitFor(() => pidsWithArg(dir).length === 0, 3_000);
    rmSync(dir, { recursive: true, force: true });
  });
  live.proxy = await startProxy({
    ...(configPath ? { configPath } : { modelsDir: models }),
    port: 0,
    memoryBudget: "8GiB",
    runner,
    stopGraceMs: 2_000,
    watchConfig: false,
    ...o.proxy,
  });
  return { dir, proxy: live.proxy, configPath };
}

export async function dashboardEnv(t: TestContext, o: DashboardEnvOptions = {}): Promise<DashboardEnv> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the dashboard tests need it (apt-get install chromium, as .ci/run does, or set GGLIB_TEST_CHROMIUM).`,
    );
  await ensureUiBuilt();
  const { dir, proxy } = await dashboardProxy(t, o);
  // the browser holds none of the proxy's resources: the order of the two cleanups does not matter
  const b = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  t.after(() => b.close().catch(() => {}));
  return {
    dir,
    proxy,
    browser: b,
    async page(opts: BrowserContextOptions = {}) {
      const ctx = await b.newContext({ reducedMotion: "reduce", ...opts });
      return ctx.newPage();
    },
  };
}
