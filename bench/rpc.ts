/**
 * Tokens/s of a model split across an RPC worker vs the same model on this host alone, side by side in one run,
 * through `gglib proxy` as a user runs it: one config with the model twice, `local` and `split` (`rpc:` the
 * worker, all its layers offloaded there: llama-server's default), both loaded, requests alternating between them.
 * The worker is the rig's real rpc-server started by `gglib rpc-server`, in its own network namespace when run as
 * root (a veth pair and a bridge: real TCP between two network stacks), else on a loopback address (said in the
 * output). The model is a random-weight GGUF written for the run, wide and deep enough that decoding takes
 * measurable time. Figures are llama-server's own timings (`timings.predicted_per_second`, prompt_per_second) of
 * each answer: median over the repetitions, [min, max] as the spread.
 *
 * Both sides run on this machine's CPU cores: the split does the same arithmetic on the worker's CPU, so what
 * the ratio shows is the RPC backend's cost (a network round trip per graph, tensors copied over TCP), not the
 * gain of a second machine's memory or GPU.
 *
 *   npx tsx bench/rpc.ts [--quick] [--json]      (needs the rig: npm run rig:llama-server)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLlamaServer } from "../test/support/llama-server.js";
import { createTestNet } from "../test/support/netns.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import {
  QUICK,
  ROOT,
  fmt,
  log,
  median,
  proxyLoad,
  row,
  runStandalone,
  spread,
  startGglibProxy,
  type Row,
} from "./lib.js";

const REPS = QUICK ? 3 : 8;
const MAX_TOKENS = QUICK ? 48 : 96;
/** The model: 12 blocks of width 1024 (F16, ~260 MB): decoding reads every weight once per token. */
const SHAPE = { layers: QUICK ? 8 : 12, embd: 1024 };

interface Timings {
  predicted_per_second: number;
  prompt_per_second: number;
  predicted_n: number;
}

async function ask(url: string, model: string, n: number): Promise<{ text: string; t: Timings }> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "Write a long story about the sea, the wind and a lighthouse keeper." }],
      max_tokens: n,
      temperature: 0,
      seed: 42,
      // every repetition decodes from scratch: no prompt reuse between requests
      cache_prompt: false,
    }),
  });
  const j = (await r.json()) as { choices?: { message: { content: string } }[]; timings?: Timings; error?: unknown };
  if (r.status !== 200 || !j.timings) throw new Error(`${model}: HTTP ${r.status} ${JSON.stringify(j).slice(0, 400)}`);
  return { text: j.choices?.[0]?.message.content ?? "", t: j.timings };
}

export async function benchRpc(): Promise<Row[]> {
  const llamaServer = await ensureLlamaServer();
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-rpc-"));
  const net = await createTestNet(["worker"]);
  const where =
    net.mode === "netns"
      ? `worker in its own network namespace (${net.hosts[0]!.ns}, ${net.hosts[0]!.ip})`
      : `worker on loopback (${net.reason})`;
  log(`rpc bench: ${where}`);
  let worker: ChildProcess | undefined;
  let proxy: Awaited<ReturnType<typeof startGglibProxy>> | undefined;
  try {
    const t0 = Date.now();
    const model = await writeTinyModel(dir, { name: "bench-split", kind: "chat", ...SHAPE });
    log(`  model ${SHAPE.layers} blocks × ${SHAPE.embd} written in ${Date.now() - t0} ms`);
    const threads = Math.max(1, cpus().length);
    const host = net.hosts[0]!;
    const port = 50052;
    const env = { ...process.env, GGLIB_LLAMA_SERVER: llamaServer, GGLIB_DATA_DIR: join(dir, "data") };
    // the worker as a user starts it: gglib rpc-server on the worker's address
    const [cmd, args] = host.argv(process.execPath, [
      join(ROOT, "bin", "gglib.js"),
      "rpc-server",
      "--host",
      host.ip,
      "--port",
      String(port),
      "--threads",
      String(threads),
      "--json",
    ]);
    worker = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let wout = "";
    worker.stdout!.on("data", (b: Buffer) => (wout += b.toString()));
    worker.stderr!.on("data", (b: Buffer) => (wout += b.toString()));
    const deadline = Date.now() + 60_000;
    while (!wout.includes('"event":"ready"')) {
      if (Date.now() > deadline || worker.exitCode !== null) throw new Error(`gglib rpc-server did not start: ${wout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const endpoint = `${host.ip}:${port}`;
    writeFileSync(
      join(dir, "config.yaml"),
      [
        "models:",
        `  local: { path: ${model}, ctx: 1024, extraArgs: ["-t", "${threads}"] }`,
        `  split: { path: ${model}, ctx: 1024, rpc: ["${endpoint}"], extraArgs: ["-t", "${threads}"] }`,
        "",
      ].join("\n"),
    );
    proxy = await startGglibProxy(
      ["--config", join(dir, "config.yaml"), "--memory-budget", "8GiB", "--context-cache", "0"],
      env,
    );
    await proxyLoad(proxy.url, "local");
    await proxyLoad(proxy.url, "split");
    // warm-up, and the check that both answer the same
    const a = await ask(proxy.url, "local", 16);
    const b = await ask(proxy.url, "split", 16);
    const same = a.text === b.text;
    log(`  same answer with and without the worker: ${same}`);
    const decode: Record<string, number[]> = { local: [], split: [] };
    const prompt: Record<string, number[]> = { local: [], split: [] };
    for (let i = 0; i < REPS; i++) {
      for (const m of i % 2 === 0 ? ["local", "split"] : ["split", "local"]) {
        const { t } = await ask(proxy.url, m, MAX_TOKENS);
        decode[m]!.push(t.predicted_per_second);
        prompt[m]!.push(t.prompt_per_second);
      }
      log(
        `  rep ${i + 1}/${REPS}: decode local ${fmt(decode.local!.at(-1)!)} vs split ${fmt(decode.split!.at(-1)!)} tok/s`,
      );
    }
    const note = `${where}; ${SHAPE.layers}×${SHAPE.embd} F16 random weights, ${MAX_TOKENS} tokens, temperature 0; same answer: ${same}; ${threads} threads each side, one machine`;
    return [
      row({
        section: "rpc",
        metric: "decode tokens/s (split over RPC vs local)",
        value: median(decode.split!),
        baseline: median(decode.local!),
        baselineName: "same model, this host only",
        unit: "tok/s",
        spread: spread(decode.split!),
        baselineSpread: spread(decode.local!),
        reps: REPS,
        note,
      }),
      row({
        section: "rpc",
        metric: "prompt tokens/s (split over RPC vs local)",
        value: median(prompt.split!),
        baseline: median(prompt.local!),
        baselineName: "same model, this host only",
        unit: "tok/s",
        spread: spread(prompt.split!),
        baselineSpread: spread(prompt.local!),
        reps: REPS,
      }),
    ];
  } finally {
    await proxy?.stop();
    if (worker && worker.exitCode === null) {
      worker.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 500));
      if (worker.exitCode === null) worker.kill("SIGKILL");
    }
    await net.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, "RPC split vs local", benchRpc);
