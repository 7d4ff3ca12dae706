/**
 * The cost of one peer hop: a client's request to a model on another host, sent straight to that host's
 * `gglib proxy` (the baseline) vs through a front `gglib proxy` that has the host as a peer (`peers:` in its
 * config), both with API keys. The upstream is the instant fake llama-server (FAKE_LLAMA_INSTANT=1: it answers at
 * once, so what is measured is the path), the model loaded on the peer beforehand. Requests alternate between
 * the two paths (one at a time, kept-alive connections), after a warm-up; p50 and p99 of each, and the ratio.
 * Also time to the first SSE event of a streamed request, the same way. Everything on 127.0.0.1.
 *
 * With --netns the two proxies run on test hosts of their own (test/support/netns.ts: a network namespace each on
 * a bridge, as root; else loopback addresses, and the rows say so): both paths then cross the bridge.
 *
 *   npx tsx bench/peer-hop.ts [--quick] [--json] [--netns]
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import { createTestNet, type TestNet } from "../test/support/netns.js";
import {
  QUICK,
  ensureBuilt,
  fmt,
  log,
  quantile,
  row,
  runStandalone,
  spread,
  startGglibProxy,
  type ProxyHandle,
  type Row,
} from "./lib.js";

const N = QUICK ? 300 : 1000;
const WARMUP = 100;
const REPS = QUICK ? 1 : 3;
const PEER_KEY = "sk-bench-peer";
const FRONT_KEY = "sk-bench-front";
const BODY = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
const STREAM_BODY = JSON.stringify({
  model: "m",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 4,
  stream: true,
});

/** One request, ms: to the end of the body, or (stream) to the first chunk of it. */
async function once(agent: Agent, url: string, key: string, stream: boolean): Promise<number> {
  const t0 = performance.now();
  const r = await request(`${url}/v1/chat/completions`, {
    method: "POST",
    dispatcher: agent,
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: stream ? STREAM_BODY : BODY,
  });
  if (r.statusCode !== 200) throw new Error(`${url}: ${r.statusCode} ${await r.body.text()}`);
  if (!stream) {
    await r.body.arrayBuffer();
    return performance.now() - t0;
  }
  let first = 0;
  for await (const _c of r.body) {
    if (first === 0) first = performance.now() - t0;
  }
  return first;
}

async function measure(
  agent: Agent,
  direct: string,
  front: string,
  stream: boolean,
): Promise<{ direct: number[]; hop: number[] }> {
  for (let i = 0; i < WARMUP; i++) {
    await once(agent, direct, PEER_KEY, stream);
    await once(agent, front, FRONT_KEY, stream);
  }
  const d: number[] = [];
  const h: number[] = [];
  for (let i = 0; i < N; i++) {
    // alternate which goes first, so neither always follows the other
    if (i % 2 === 0) {
      d.push(await once(agent, direct, PEER_KEY, stream));
      h.push(await once(agent, front, FRONT_KEY, stream));
    } else {
      h.push(await once(agent, front, FRONT_KEY, stream));
      d.push(await once(agent, direct, PEER_KEY, stream));
    }
  }
  return { direct: d, hop: h };
}

export async function benchPeerHop(): Promise<Row[]> {
  const built = ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-peers-"));
  const procs: ProxyHandle[] = [];
  const agent = new Agent({ connections: 4, pipelining: 1 });
  const net: TestNet | undefined = process.argv.includes("--netns")
    ? await createTestNet(["front", "peer"])
    : undefined;
  const where = net
    ? net.mode === "netns"
      ? "network namespaces on a bridge"
      : `loopback (${net.reason})`
    : "127.0.0.1";
  const [hf, hp] = net?.hosts ?? [];
  try {
    mkdirSync(join(dir, "models"));
    mkdirSync(join(dir, "front-models"));
    writeFakeModel(join(dir, "models"), "m");
    const env = {
      ...fakeLlamaEnv({ instant: true, loadMs: 10 }),
      GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
      GGLIB_DATA_DIR: join(dir, "data"),
      GGLIB_CONTEXT_CACHE_DIR: join(dir, "kv"),
    };
    const peer = await startGglibProxy(
      ["--models-dir", join(dir, "models"), "--api-key", PEER_KEY, ...(hp ? ["--host", hp.ip] : [])],
      env,
      60_000,
      hp ? (cmd, args) => hp.argv(cmd, args) : undefined,
    );
    procs.push(peer);
    const load = await request(`${peer.url}/models/load`, {
      method: "POST",
      headers: { authorization: `Bearer ${PEER_KEY}` },
      body: JSON.stringify({ model: "m" }),
    });
    if (load.statusCode !== 200) throw new Error(`load: ${load.statusCode} ${await load.body.text()}`);
    await load.body.arrayBuffer();
    const config = join(dir, "front.yaml");
    writeFileSync(config, `peers:\n  gpu2:\n    url: ${peer.url}\n    apiKey: \${env.PEER_KEY}\n`);
    const front = await startGglibProxy(
      [
        "--config",
        config,
        "--models-dir",
        join(dir, "front-models"),
        "--api-key",
        FRONT_KEY,
        ...(hf ? ["--host", hf.ip] : []),
      ],
      { ...env, PEER_KEY },
      60_000,
      hf ? (cmd, args) => hf.argv(cmd, args) : undefined,
    );
    procs.push(front);
    log(`peer ${peer.url}, front ${front.url} on ${where} (${peer.runtime}; ${built.note})`);
    const rows: Row[] = [];
    for (const stream of [false, true]) {
      const p50 = { d: [] as number[], h: [] as number[] };
      const p99 = { d: [] as number[], h: [] as number[] };
      for (let rep = 0; rep < REPS; rep++) {
        const m = await measure(agent, peer.url, front.url, stream);
        p50.d.push(quantile(m.direct, 0.5));
        p50.h.push(quantile(m.hop, 0.5));
        p99.d.push(quantile(m.direct, 0.99));
        p99.h.push(quantile(m.hop, 0.99));
        log(
          `${stream ? "stream first event" : "whole answer"} rep ${rep + 1}: p50 direct ${fmt(p50.d.at(-1)!)} ms, via front ${fmt(p50.h.at(-1)!)} ms; p99 ${fmt(p99.d.at(-1)!)} / ${fmt(p99.h.at(-1)!)} ms`,
        );
      }
      const what = stream ? "time to first SSE event" : "request latency (non-streamed)";
      const med = (xs: number[]) => quantile(xs, 0.5);
      for (const [q, v] of [
        ["p50", p50],
        ["p99", p99],
      ] as const) {
        rows.push(
          row({
            section: "peers",
            metric: `one peer hop: ${what} ${q}`,
            value: med(v.h),
            baseline: med(v.d),
            baselineName: "straight to the peer",
            unit: "ms",
            spread: spread(v.h),
            baselineSpread: spread(v.d),
            reps: REPS,
            note: `${N} requests per path per rep, alternating, one at a time; instant fake llama-server; ${where}; median of the reps' ${q}`,
          }),
        );
      }
    }
    return rows;
  } finally {
    await agent.close();
    for (const p of procs.reverse()) await p.stop();
    await net?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, "peer hop", benchPeerHop);
