/**
 * Streaming through `gglib proxy` vs direct.
 *
 * A. Per-chunk delay on the fake llama-server emitting one SSE token chunk every INTERVAL ms
 *    (FAKE_LLAMA_TOKEN_INTERVAL_MS). Each repetition starts THREE identical streaming requests at the same moment
 *    (send order rotated every repetition): direct A, direct B (both straight to the fake) and one through the proxy.
 *    The client timestamps every SSE event when the read that completes it arrives (performance.now()).
 *      measured: proxy arrival − direct A arrival, for the same event index, less that stream's smallest such
 *                difference (the constant offset: its request reached the fake later, so the fake generated every
 *                token that much later; reported separately). What remains is each chunk's delay beyond the
 *                stream's fastest chunk, i.e. the per-chunk variation the proxy adds.
 *      baseline: the same for direct B − direct A (no proxy: timer alignment and the client's own event loop).
 *    Also reported: inter-arrival jitter
 *    |gap − INTERVAL| of the proxied stream vs a direct one (catches buffering/coalescing, which a constant offset
 *    would not show).
 * B. Tokens/s on the REAL llama-server with a tiny model (-t 1), streaming max_tokens with ignore_eos, through the
 *    proxy vs straight to the same llama-server (alternating), counted on the client end to end: content chunks /
 *    (arrival of the last one − the moment the request was sent).
 *
 *   npx tsx bench/streaming.ts [--quick] [--json]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import { rigInstallDir } from "../test/support/llama-server.js";
import {
  QUICK,
  fmt,
  killLeftovers,
  log,
  median,
  proxyLoad,
  quantile,
  row,
  runStandalone,
  sleep,
  spawnTracked,
  spread,
  startGglibProxy,
  stopTracked,
  upstreamPort,
  type Row,
} from "./lib.js";
import { ensureNginx, startNginx, which } from "./nginx.js";

const INTERVAL_MS = 20;
const TOKENS = 40;

/** Arrival time (performance.now()) of each SSE event of one streaming response, and its content flag. */
interface Arrivals {
  t: number[];
  content: boolean[];
  status: number;
  /** performance.now() when the request was sent. */
  sent: number;
}

async function streamArrivals(agent: Agent, url: string, body: string): Promise<Arrivals> {
  const sent = performance.now();
  const r = await request(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    dispatcher: agent,
  });
  const t: number[] = [];
  const content: boolean[] = [];
  let buf = "";
  for await (const chunk of r.body) {
    const now = performance.now();
    buf += (chunk as Buffer).toString("utf8");
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ")) continue;
      t.push(now);
      let has = false;
      if (ev !== "data: [DONE]") {
        try {
          const j = JSON.parse(ev.slice(6)) as { choices?: { delta?: { content?: string | null } }[] };
          has = !!j.choices?.[0]?.delta?.content;
        } catch {
          /* not JSON */
        }
      }
      content.push(has);
    }
  }
  return { t, content, status: r.statusCode, sent };
}

function realLlamaServer(): string | undefined {
  for (const p of [
    process.env.GGLIB_BENCH_LLAMA_SERVER,
    process.env.GGLIB_TEST_LLAMA_SERVER,
    join(rigInstallDir(), "bin", "llama-server"),
  ]) {
    if (p && existsSync(p)) return p;
  }
  return undefined;
}

/** Kernel timestamps (tcpdump on lo) of every SSE event ("data: ") each source port sent, in order. */
function parseTcpdump(text: string, ports: number[]): Map<number, number[]> {
  const out = new Map<number, number[]>(ports.map((p) => [p, []]));
  const head = /^(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): /;
  let cur: { t: number; port: number; payload: string[] } | undefined;
  const flush = (): void => {
    if (!cur) return;
    const n = cur.payload.join("\n").split("data: ").length - 1;
    const list = out.get(cur.port);
    if (list) for (let i = 0; i < n; i++) list.push(cur.t * 1000);
  };
  for (const line of text.split("\n")) {
    const m = head.exec(line);
    if (m) {
      flush();
      cur = { t: Number(m[1]), port: Number(m[2]), payload: [] };
    } else if (cur) cur.payload.push(line);
  }
  flush();
  return out;
}

/**
 * Per-chunk forwarding delay on the wire: tcpdump on the loopback interface timestamps each SSE event when the fake
 * sends it to the proxy and when the proxy sends it on to the client; delay = the difference for the same event.
 * The same for nginx (proxy_buffering off) as the baseline. Streams run one at a time, gglib first, then nginx.
 */
async function wireDelay(dir: string, reps: number, proxyUrl: string, upPort: number, body: string): Promise<Row[]> {
  const section = "2 streaming";
  let tcpdump = which("tcpdump");
  if (!tcpdump && process.getuid?.() === 0) {
    log("[streaming] tcpdump missing: apt-get install -y tcpdump…");
    spawnSync("apt-get", ["install", "-y", "tcpdump"], {
      timeout: 240_000,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    tcpdump = which("tcpdump");
  }
  const ng = ensureNginx();
  if (!tcpdump)
    return [
      row({
        section,
        metric: "per-chunk forwarding delay on the wire",
        value: NaN,
        baseline: NaN,
        baselineName: "nginx",
        unit: "ms",
        reps: 0,
        note: "NOT MEASURED: tcpdump not available (and not root to install it)",
      }),
    ];
  const proxyPort = Number(new URL(proxyUrl).port);
  const n = ng.path ? await startNginx(ng.path, dir, upPort) : { note: ng.note };
  const agent = new Agent({ connections: 2 });
  try {
    if (n.url) await streamArrivals(agent, n.url, body); // warm its upstream keepalive
    const ports = [upPort, proxyPort, ...(n.url ? [Number(new URL(n.url).port)] : [])];
    const filter = `tcp and (${ports.map((p) => `src port ${p}`).join(" or ")})`;
    const td = spawnTracked(tcpdump, ["-i", "lo", "-n", "-tt", "-l", "-A", "-s", "0", filter], {
      stdout: "pipe",
      stderr: "pipe",
    });
    let text = "";
    let err = "";
    td.stdout!.on("data", (d: Buffer) => (text += d.toString("latin1")));
    td.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const end = Date.now() + 5000;
    while (!err.includes("listening on") && Date.now() < end && td.exitCode === null) await sleep(20);
    if (!err.includes("listening on")) {
      await stopTracked(td, 1000);
      return [
        row({
          section,
          metric: "per-chunk forwarding delay on the wire",
          value: NaN,
          baseline: NaN,
          baselineName: "nginx",
          unit: "ms",
          reps: 0,
          note: `NOT MEASURED: tcpdump did not start: ${err.slice(0, 200)}`,
        }),
      ];
    }
    await sleep(100);
    let perStream = 0;
    for (let r = 0; r < reps; r++) perStream = (await streamArrivals(agent, proxyUrl, body)).t.length;
    await sleep(100);
    const boundary = Date.now();
    await sleep(100);
    if (n.url) for (let r = 0; r < reps; r++) await streamArrivals(agent, n.url, body);
    await sleep(300);
    await stopTracked(td, 3000, "SIGINT");
    const ev = parseTcpdump(text, ports);
    const up = ev.get(upPort)!;
    const upG = up.filter((t) => t < boundary);
    const upN = up.filter((t) => t >= boundary);
    const delays = (a: number[], b: number[]): number[] => (a.length === b.length ? a.map((t, i) => b[i]! - t) : []);
    const g = delays(upG, ev.get(proxyPort)!);
    const ngx = n.url ? delays(upN, ev.get(Number(new URL(n.url).port))!) : [];
    const dropped = /(\d+) packets dropped by kernel/.exec(err)?.[1] ?? "?";
    const note = `tcpdump on lo: time the fake sent each SSE event to the proxy → time the proxy sent it to the client; ${reps} streams × ${perStream} events, one at a time; events counted: upstream ${upG.length}/${upN.length}, gglib ${ev.get(proxyPort)!.length}, nginx ${n.url ? ev.get(Number(new URL(n.url).port))!.length : "–"}; packets dropped by kernel: ${dropped}`;
    if (g.length === 0)
      return [
        row({
          section,
          metric: "per-chunk forwarding delay on the wire",
          value: NaN,
          baseline: NaN,
          baselineName: "nginx",
          unit: "ms",
          reps,
          note: `NOT MEASURED: event counts did not match. ${note}`,
        }),
      ];
    const rows: Row[] = [];
    for (const [q, name] of [
      [0.5, "p50"],
      [0.99, "p99"],
    ] as const) {
      rows.push(
        row({
          section,
          metric: `per-chunk forwarding delay ${name} on the wire, gglib proxy vs nginx`,
          value: quantile(g, q),
          baseline: ngx.length ? quantile(ngx, q) : NaN,
          baselineName: n.url ? "nginx (proxy_buffering off)" : `nginx not measured: ${n.note}`,
          unit: "ms",
          reps,
          ...(name === "p99" ? { target: "chunk delay p99 ≤ 1 ms", met: quantile(g, q) <= 1 } : {}),
          note:
            name === "p50"
              ? note
              : `max: gglib ${fmt(Math.max(...g))} ms${ngx.length ? `, nginx ${fmt(Math.max(...ngx))} ms` : ""}`,
        }),
      );
    }
    return rows;
  } finally {
    await agent.close();
    if (n.child) await stopTracked(n.child, 5000, "SIGQUIT");
  }
}

async function chunkDelay(dir: string, quick: boolean): Promise<Row[]> {
  const reps = quick ? 4 : 12;
  const model = writeFakeModel(dir, "stream");
  const cfg = join(dir, "stream.yaml");
  writeFileSync(
    cfg,
    [
      "memoryBudget: 64GiB",
      "models:",
      `  stream: {path: ${JSON.stringify(model)}, extraArgs: ["--parallel", "8"], env: {FAKE_LLAMA_TOKENS: "${TOKENS}", FAKE_LLAMA_TOKEN_INTERVAL_MS: "${INTERVAL_MS}"}}`,
    ].join("\n") + "\n",
  );
  const env = {
    ...fakeLlamaEnv({ loadMs: 20 }),
    GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
    GGLIB_DATA_DIR: join(dir, "data"),
    NO_COLOR: "1",
  };
  const proxy = await startGglibProxy(["--config", cfg], env);
  const agents = [new Agent({ connections: 4 }), new Agent({ connections: 4 }), new Agent({ connections: 4 })];
  try {
    await proxyLoad(proxy.url, "stream");
    const direct = `http://127.0.0.1:${await upstreamPort(proxy.url, "stream")}`;
    const body = JSON.stringify({
      model: "stream",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: TOKENS,
      stream: true,
    });
    const paths = [direct, direct, proxy.url];
    const dProxy: number[] = [];
    const dBase: number[] = [];
    const jitProxy: number[] = [];
    const jitDirect: number[] = [];
    const rawProxy: number[] = [];
    const offProxy: number[] = [];
    const offBase: number[] = [];
    let mismatched = 0;
    // warm-up
    await Promise.all(paths.map((p, i) => streamArrivals(agents[i]!, p, body)));
    log(`[streaming] per-chunk delay: ${reps} × 3 concurrent streams of ${TOKENS} chunks at ${INTERVAL_MS} ms…`);
    for (let r = 0; r < reps; r++) {
      const order = [0, 1, 2].map((k) => (k + r) % 3);
      const proms: Promise<Arrivals>[] = [];
      for (const k of order) proms[k] = streamArrivals(agents[k]!, paths[k]!, body);
      const [a, b, p] = (await Promise.all(proms)) as [Arrivals, Arrivals, Arrivals];
      if (a.t.length !== p.t.length || a.t.length !== b.t.length) mismatched++;
      const n = Math.min(a.t.length, b.t.length, p.t.length);
      const dp = Array.from({ length: n }, (_, i) => p.t[i]! - a.t[i]!);
      const db = Array.from({ length: n }, (_, i) => b.t[i]! - a.t[i]!);
      rawProxy.push(...dp);
      // remove the stream's constant offset (its request reached the fake that much later, so every token is
      // generated that much later): what is left is the delay of each chunk beyond the stream's fastest one
      const mp = Math.min(...dp);
      const mb = Math.min(...db);
      for (let i = 0; i < n; i++) {
        dProxy.push(dp[i]! - mp);
        dBase.push(db[i]! - mb);
      }
      offProxy.push(mp);
      offBase.push(mb);
      // jitter between consecutive content chunks (the fake sleeps INTERVAL_MS between tokens)
      const jit = (x: Arrivals, out: number[]): void => {
        const idx = x.content.map((c, i) => (c ? i : -1)).filter((i) => i >= 0);
        for (let k = 1; k < idx.length; k++) out.push(Math.abs(x.t[idx[k]!]! - x.t[idx[k - 1]!]! - INTERVAL_MS));
      };
      jit(p, jitProxy);
      jit(a, jitDirect);
    }
    const wireRows = await wireDelay(dir, reps, proxy.url, Number(new URL(direct).port), body);
    const section = "2 streaming";
    const note = `${reps} reps × ${dProxy.length / reps} SSE events, fake at ${INTERVAL_MS} ms/token, 3 streams started together (send order rotated)`;
    const rows: Row[] = [...wireRows];
    for (const [q, name] of [
      [0.5, "p50"],
      [0.99, "p99"],
    ] as const) {
      rows.push(
        row({
          section,
          metric: `client-side per-chunk delay ${name}: proxy arrival − direct arrival (same chunk index), less the stream's constant offset`,
          value: quantile(dProxy, q),
          baseline: quantile(dBase, q),
          baselineName: "direct B − direct A",
          unit: "ms",
          reps,
          note:
            name === "p50"
              ? `${note}; constant offset per stream (min over its chunks; the request's extra hop): proxy median ${median(offProxy).toFixed(3)} ms (${fmt(Math.min(...offProxy))}–${fmt(Math.max(...offProxy))}), baseline ${median(offBase).toFixed(3)} ms; without removing it proxy p50 ${fmt(quantile(rawProxy, 0.5))} ms${mismatched ? `; ${mismatched} reps with different event counts` : ""}`
              : `without removing the offset: proxy p99 ${fmt(quantile(rawProxy, 0.99))} ms`,
        }),
      );
    }
    for (const [q, name] of [
      [0.5, "p50"],
      [0.99, "p99"],
    ] as const) {
      rows.push(
        row({
          section,
          metric: `inter-arrival jitter ${name}: abs(gap − ${INTERVAL_MS} ms) through the proxy vs direct`,
          value: quantile(jitProxy, q),
          baseline: quantile(jitDirect, q),
          baselineName: "direct",
          unit: "ms",
          reps,
          note: name === "p50" ? `${jitProxy.length} gaps each` : "",
        }),
      );
    }
    return rows;
  } finally {
    await Promise.all(agents.map((a) => a.close()));
    await proxy.stop();
  }
}

async function tokensPerSecond(dir: string, quick: boolean): Promise<Row[]> {
  const section = "2 streaming";
  const bin = realLlamaServer();
  if (!bin)
    return [
      row({
        section,
        metric: "tokens/s on the real llama-server",
        value: NaN,
        baseline: NaN,
        baselineName: "direct",
        unit: "tok/s",
        reps: 0,
        note: "NOT MEASURED: no real llama-server (npm run rig:llama-server builds one, or set GGLIB_BENCH_LLAMA_SERVER)",
      }),
    ];
  const reps = quick ? 3 : 6;
  const maxTokens = 256;
  const model = await writeTinyModel(dir, { name: "tiny-tps", kind: "chat", embd: 256, layers: 4 });
  const cfg = join(dir, "tps.yaml");
  writeFileSync(
    cfg,
    ["memoryBudget: 64GiB", "models:", `  tiny: {path: ${JSON.stringify(model)}, extraArgs: ["-t", "1"]}`].join("\n") +
      "\n",
  );
  const env = { ...process.env, GGLIB_LLAMA_SERVER: bin, GGLIB_DATA_DIR: join(dir, "data-tps"), NO_COLOR: "1" };
  const proxy = await startGglibProxy(["--config", cfg], env);
  const agent = new Agent({ connections: 2 });
  try {
    await proxyLoad(proxy.url, "tiny");
    const direct = `http://127.0.0.1:${await upstreamPort(proxy.url, "tiny")}`;
    const body = JSON.stringify({
      model: "tiny",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: maxTokens,
      ignore_eos: true,
      stream: true,
      temperature: 0,
    });
    // end to end: content chunks / (arrival of the last content chunk − the moment the request was sent); robust to
    // chunks arriving coalesced in one read
    const tps = (a: Arrivals): number => {
      const idx = a.content.map((c, i) => (c ? i : -1)).filter((i) => i >= 0);
      if (idx.length < 1) return NaN;
      return idx.length / ((a.t[idx[idx.length - 1]!]! - a.sent) / 1000);
    };
    await streamArrivals(agent, direct, body);
    await streamArrivals(agent, proxy.url, body); // warm-up
    const viaProxy: number[] = [];
    const viaDirect: number[] = [];
    const counts: number[] = [];
    log(`[streaming] tokens/s on ${bin}: ${reps} × (direct, proxy), ${maxTokens} tokens each…`);
    for (let r = 0; r < reps; r++) {
      const first = r % 2 === 0 ? "direct" : "proxy";
      for (const which of first === "direct" ? ["direct", "proxy"] : ["proxy", "direct"]) {
        const a = await streamArrivals(agent, which === "direct" ? direct : proxy.url, body);
        counts.push(a.content.filter(Boolean).length);
        (which === "direct" ? viaDirect : viaProxy).push(tps(a));
      }
    }
    return [
      row({
        section,
        metric: "tokens/s, real llama-server + tiny model (-t 1), through the proxy vs direct",
        value: median(viaProxy),
        baseline: median(viaDirect),
        baselineName: "direct",
        unit: "tok/s",
        spread: spread(viaProxy),
        baselineSpread: spread(viaDirect),
        reps,
        note: `${median(counts)} content chunks per answer (max_tokens ${maxTokens}, ignore_eos), alternating order, end to end on the client: chunks / (last content chunk − request sent); model embd 256, 4 layers; binary ${bin}`,
      }),
    ];
  } finally {
    await agent.close();
    await proxy.stop();
  }
}

export async function benchStreaming(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-stream-"));
  try {
    return [...(await chunkDelay(dir, quick)), ...(await tokensPerSecond(dir, quick))];
  } finally {
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, "streaming through the proxy vs direct", () => benchStreaming());
