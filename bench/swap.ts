/**
 * Cold load and swap on the REAL llama-server with two tiny models (same binary, `-t 1` everywhere).
 *
 *   cold:  first request through `gglib proxy` with nothing loaded: time from sending it to the first SSE `data:`
 *          event (the proxy may send 200 headers and keep-alive comments while it loads, so headers do not count);
 *          baselines: the raw llama-server's start → /health 200 (polled every 2 ms) of the same model, and the raw
 *          start → first `data:` event of the same request (start, wait for health, send).
 *   swap:  with model A loaded and --max-models 1, a request for B: time to its first `data:` event; the same
 *          through llama.cpp's own router mode (`llama-server --models-dir DIR --models-max 1`), alternating
 *          A→B, B→A. Both servers run side by side; the measurements alternate between them.
 *   suite: the official `openai` client's calls as an app makes them, across three swaps: models.list, chat on A,
 *          a streamed chat on B (swap), chat on A (swap), a streamed chat on B (swap), a completion on B; total
 *          time, gglib proxy vs the router, alternating which goes first.
 *
 *   npx tsx bench/swap.ts [--quick] [--json]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { Agent, request } from "undici";
import { writeTinyModel } from "../test/support/tiny-models.js";
import { rigInstallDir } from "../test/support/llama-server.js";
import {
  QUICK,
  freePort,
  killLeftovers,
  log,
  median,
  proxyStatus,
  proxyUnload,
  row,
  runStandalone,
  sleep,
  spawnTracked,
  spread,
  startGglibProxy,
  stopTracked,
  waitHttp,
  type Row,
} from "./lib.js";

export function realLlamaServer(): string | undefined {
  for (const p of [
    process.env.GGLIB_BENCH_LLAMA_SERVER,
    process.env.GGLIB_TEST_LLAMA_SERVER,
    join(rigInstallDir(), "bin", "llama-server"),
  ]) {
    if (p && existsSync(p)) return p;
  }
  return undefined;
}

const body = (model: string): string =>
  JSON.stringify({ model, messages: [{ role: "user", content: "Hello" }], max_tokens: 1, stream: true });

/** ms from sending a streaming request to its first SSE `data:` event; throws on a non-200. */
async function firstEvent(agent: Agent, url: string, model: string): Promise<number> {
  const t0 = performance.now();
  const r = await request(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(model),
    dispatcher: agent,
  });
  let t: number | undefined;
  let buf = "";
  for await (const c of r.body) {
    if (t === undefined) {
      buf += (c as Buffer).toString("utf8");
      if (/(^|\n)data: /.test(buf)) t = performance.now() - t0;
    }
  }
  if (r.statusCode !== 200 || t === undefined)
    throw new Error(`${model} via ${url}: status ${r.statusCode}, ${buf.slice(0, 300)}`);
  return t;
}

async function rawStart(bin: string, model: string, agent: Agent): Promise<{ ready: number; firstEvent: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawnTracked(bin, ["-m", model, "--host", "127.0.0.1", "--port", String(port), "-t", "1"]);
  try {
    await waitHttp(
      `http://127.0.0.1:${port}/health`,
      60_000,
      2,
      () => child.exitCode !== null || child.signalCode !== null,
    );
    const ready = performance.now() - t0;
    await firstEvent(agent, `http://127.0.0.1:${port}`, "x");
    return { ready, firstEvent: performance.now() - t0 };
  } finally {
    await stopTracked(child, 5000);
  }
}

/** The `openai` client suite across three swaps (A must be the loaded model): total ms. */
async function clientSuite(url: string, a: string, b: string): Promise<number> {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "none", maxRetries: 0, timeout: 60_000 });
  const messages = [{ role: "user" as const, content: "Hello" }];
  const stream = async (model: string) => {
    const s = await client.chat.completions.create({ model, messages, max_tokens: 4, stream: true });
    let text = "";
    for await (const c of s) text += c.choices[0]?.delta?.content ?? "";
    return text;
  };
  const t0 = performance.now();
  await client.models.list();
  await client.chat.completions.create({ model: a, messages, max_tokens: 4 });
  await stream(b);
  await client.chat.completions.create({ model: a, messages, max_tokens: 4 });
  await stream(b);
  await client.completions.create({ model: b, prompt: "Hello", max_tokens: 4 });
  return performance.now() - t0;
}

async function unloadAll(url: string): Promise<void> {
  for (const m of await proxyStatus(url))
    if (m.state !== "unloaded" && m.state !== "stopped") await proxyUnload(url, m.name);
}

export async function benchSwap(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const reps = quick ? 3 : 7;
  const section = "3 cold load & swap";
  const bin = realLlamaServer();
  if (!bin)
    return [
      row({
        section,
        metric: "cold load and swap",
        value: NaN,
        baseline: NaN,
        baselineName: "raw llama-server",
        unit: "ms",
        reps: 0,
        note: "NOT MEASURED: no real llama-server (npm run rig:llama-server builds one, or set GGLIB_BENCH_LLAMA_SERVER)",
      }),
    ];
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-swap-"));
  const models = join(dir, "models");
  mkdirSync(models);
  let proxy: Awaited<ReturnType<typeof startGglibProxy>> | undefined;
  let router: ReturnType<typeof spawnTracked> | undefined;
  const agent = new Agent({ connections: 8 });
  try {
    const a = await writeTinyModel(models, { name: "tiny-a", kind: "chat", seed: 1 });
    const b = await writeTinyModel(models, { name: "tiny-b", kind: "chat", seed: 2 });
    const cfg = join(dir, "swap.yaml");
    writeFileSync(
      cfg,
      [
        "maxModels: 1",
        "memoryBudget: 64GiB",
        "models:",
        `  tiny-a: {path: ${JSON.stringify(a)}, extraArgs: ["-t", "1"]}`,
        `  tiny-b: {path: ${JSON.stringify(b)}, extraArgs: ["-t", "1"]}`,
      ].join("\n") + "\n",
    );
    proxy = await startGglibProxy(["--config", cfg], {
      ...process.env,
      GGLIB_LLAMA_SERVER: bin,
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    });
    const routerPort = await freePort();
    router = spawnTracked(bin, [
      "--models-dir",
      models,
      "--models-max",
      "1",
      "-t",
      "1",
      "--host",
      "127.0.0.1",
      "--port",
      String(routerPort),
    ]);
    const routerUrl = `http://127.0.0.1:${routerPort}`;
    const r = router;
    await waitHttp(`${routerUrl}/health`, 30_000, 10, () => r.exitCode !== null);

    // a failed request is counted and reported, not fatal (its time is left out of the medians)
    const errors: string[] = [];
    const fe = async (url: string, model: string, what: string): Promise<number> => {
      try {
        return await firstEvent(agent, url, model);
      } catch (e) {
        errors.push(`${what} ${model}: ${(e as Error).message.slice(0, 200)}`);
        log(`[swap] ERROR ${what} ${model}: ${(e as Error).message.slice(0, 300)}`);
        return NaN;
      }
    };
    const ok = (xs: number[]): number[] => xs.filter((x) => Number.isFinite(x));

    // cold: raw start → ready, raw start → first event, gglib first request (alternating)
    log(`[swap] cold load: ${reps} × (raw llama-server, gglib proxy) with ${bin}…`);
    const rawReady: number[] = [];
    const rawFirst: number[] = [];
    const coldProxy: number[] = [];
    const coldRouter: number[] = [];
    await rawStart(bin, a, agent); // warm the page cache and the binary
    for (let i = 0; i < reps; i++) {
      const raw = await rawStart(bin, a, agent);
      rawReady.push(raw.ready);
      rawFirst.push(raw.firstEvent);
      await unloadAll(proxy.url);
      coldProxy.push(await fe(proxy.url, "tiny-a", "gglib cold"));
      // the router, cold too (unload whatever it holds), for reference
      await fetch(`${routerUrl}/models/unload`, { method: "POST", body: JSON.stringify({ model: "tiny-a" }) }).then(
        (x) => x.arrayBuffer(),
      );
      await fetch(`${routerUrl}/models/unload`, { method: "POST", body: JSON.stringify({ model: "tiny-b" }) }).then(
        (x) => x.arrayBuffer(),
      );
      await sleep(300); // the child gets the exit command; let it go
      coldRouter.push(await fe(routerUrl, "tiny-a", "router cold"));
    }

    // swap: A is loaded in both; alternate B, A, B… (each request evicts the other model)
    log(`[swap] swaps: ${reps * 2} × (gglib proxy, llama.cpp router)…`);
    await fe(proxy.url, "tiny-a", "gglib warm-up");
    await fe(routerUrl, "tiny-a", "router warm-up");
    const swapProxy: number[] = [];
    const swapRouter: number[] = [];
    const warmProxy: number[] = [];
    const warmRouter: number[] = [];
    for (let i = 0; i < reps * 2; i++) {
      const m = i % 2 === 0 ? "tiny-b" : "tiny-a";
      if (i % 2 === 0) {
        swapProxy.push(await fe(proxy.url, m, "gglib swap"));
        swapRouter.push(await fe(routerUrl, m, "router swap"));
      } else {
        swapRouter.push(await fe(routerUrl, m, "router swap"));
        swapProxy.push(await fe(proxy.url, m, "gglib swap"));
      }
      warmProxy.push(await fe(proxy.url, m, "gglib warm request after the swap"));
      warmRouter.push(await fe(routerUrl, m, "router warm request after the swap"));
    }
    // the openai client suite, A loaded in both before each run; which goes first alternates
    log(`[swap] openai client suite: ${reps} × (gglib proxy, llama.cpp router)…`);
    const suiteProxy: number[] = [];
    const suiteRouter: number[] = [];
    const suite = async (url: string, out: number[], what: string) => {
      await fe(url, "tiny-a", `${what} suite warm-up`);
      try {
        out.push(await clientSuite(url, "tiny-a", "tiny-b"));
      } catch (e) {
        errors.push(`${what} suite: ${(e as Error).message.slice(0, 200)}`);
      }
    };
    for (let i = 0; i < reps; i++) {
      if (i % 2 === 0) {
        await suite(proxy.url, suiteProxy, "gglib");
        await suite(routerUrl, suiteRouter, "router");
      } else {
        await suite(routerUrl, suiteRouter, "router");
        await suite(proxy.url, suiteProxy, "gglib");
      }
    }
    const loaded = (await proxyStatus(proxy.url)).filter((x) => x.state === "ready").length;
    const rows: Row[] = [
      row({
        section,
        metric: "cold first request through gglib proxy (to first data event) vs raw llama-server start→ready",
        value: median(ok(coldProxy)),
        baseline: median(rawReady),
        baselineName: "raw start→/health 200",
        unit: "ms",
        spread: spread(ok(coldProxy)),
        baselineSpread: spread(rawReady),
        reps,
        target: "≤ raw + 30 ms",
        met: median(ok(coldProxy)) <= median(rawReady) + 30,
        note: `tiny model (1 layer, embd 64), -t 1; raw polled every 2 ms; binary ${bin}`,
      }),
      row({
        section,
        metric: "cold first request through gglib proxy vs raw start→first data event of the same request",
        value: median(ok(coldProxy)),
        baseline: median(rawFirst),
        baselineName: "raw start→health→request→first event",
        unit: "ms",
        spread: spread(ok(coldProxy)),
        baselineSpread: spread(rawFirst),
        reps,
      }),
      row({
        section,
        metric: "cold first request: gglib proxy vs llama.cpp router (autoload)",
        value: median(ok(coldProxy)),
        baseline: median(ok(coldRouter)),
        baselineName: "llama.cpp router",
        unit: "ms",
        spread: spread(ok(coldProxy)),
        baselineSpread: spread(ok(coldRouter)),
        reps,
      }),
      row({
        section,
        metric: "swap A→B / B→A (--max-models 1): first data event, gglib proxy vs llama.cpp router (--models-max 1)",
        value: median(ok(swapProxy)),
        baseline: median(ok(swapRouter)),
        baselineName: "llama.cpp router",
        unit: "ms",
        spread: spread(ok(swapProxy)),
        baselineSpread: spread(ok(swapRouter)),
        reps: ok(swapProxy).length,
        target: "≤ 0.8× llama.cpp's router",
        met: median(ok(swapProxy)) <= 0.8 * median(ok(swapRouter)),
        note: `warm request after each swap: gglib ${median(ok(warmProxy)).toFixed(1)} ms, router ${median(ok(warmRouter)).toFixed(1)} ms; models loaded in gglib at the end: ${loaded}; failed requests: ${errors.length}${errors.length ? ` (${errors.join("; ")})` : ""}`,
      }),
      row({
        section,
        metric:
          "openai client suite across three swaps (models.list, chat, streamed chats, completion), gglib proxy vs llama.cpp router",
        value: median(suiteProxy),
        baseline: median(suiteRouter),
        baselineName: "llama.cpp router",
        unit: "ms",
        spread: spread(suiteProxy),
        baselineSpread: spread(suiteRouter),
        reps: Math.min(suiteProxy.length, suiteRouter.length),
        target: "≤ 0.8× llama.cpp's router",
        met: median(suiteProxy) <= 0.8 * median(suiteRouter),
        note: "the `openai` npm client, maxRetries 0, --max-models 1 / --models-max 1, A loaded before each run",
      }),
    ];
    return rows;
  } finally {
    await agent.close();
    if (proxy) await proxy.stop();
    if (router) await stopTracked(router, 5000);
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, "cold load and swap (real llama-server)", () => benchSwap());
