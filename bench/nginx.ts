/**
 * Proxy overhead against nginx, on the instant fake upstream (FAKE_LLAMA_INSTANT=1: fixed tiny answers, no timers).
 *
 * Four paths to the SAME upstream process (the fake llama-server that `gglib proxy` spawned for model "instant"):
 *   direct  client → fake
 *   gglib   client → `gglib proxy` (one node process) → fake
 *   nginx   client → nginx (worker_processes 1, upstream keepalive 256, proxy_buffering off) → fake
 *   floor   client → bench/min-node-proxy.mjs (node:http + undici, nothing else: what any one-process Node proxy
 *           costs on this machine) → fake
 * at concurrency 1, 16 and 128, each level/path run several times in rotating order. The load generator is wrk
 * (one thread, C, so the client costs little CPU on this 2-core machine); without wrk it falls back to an undici
 * loop in this process (said in the notes).
 *
 * Rows: added latency p50/p99 (path minus direct, same concurrency, medians over the repetitions) and
 * requests/s of gglib vs nginx (target ≥ 0.8×) and vs direct.
 *
 *   npx tsx bench/nginx.ts [--quick] [--json]
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../test/support/fake-llama.js";
import {
  QUICK,
  ROOT,
  fmt,
  freePort,
  killLeftovers,
  log,
  median,
  row,
  runStandalone,
  spawnTracked,
  spread,
  startGglibProxy,
  stopTracked,
  upstreamPort,
  proxyLoad,
  waitHttp,
  type Row,
} from "./lib.js";

const LEVELS = [1, 16, 128];
const BODY = JSON.stringify({ model: "instant", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });

export interface LoadRun {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

/** `cmd` on PATH (sync: the benches decide before they start anything). */
export function which(cmd: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

/** Find nginx, or install Debian's nginx-light when root; returns the path or why not. */
export function ensureNginx(): { path?: string; note: string } {
  const found = which("nginx") ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : undefined);
  if (found) return { path: found, note: `nginx at ${found}` };
  if (process.getuid?.() !== 0)
    return {
      note: "nginx is not installed and the bench is not root, so it could not install it (apt-get install nginx-light)",
    };
  log("nginx missing: apt-get install -y nginx-light…");
  const r = spawnSync("apt-get", ["install", "-y", "nginx-light"], {
    encoding: "utf8",
    timeout: 240_000,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  const p = which("nginx") ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : undefined);
  return p
    ? { path: p, note: `installed nginx-light (${p})` }
    : { note: `could not install nginx-light: ${(r.stderr || r.stdout || String(r.error)).slice(-300)}` };
}

function ensureWrk(): string | undefined {
  const found = which("wrk");
  if (found || process.getuid?.() !== 0) return found;
  log("wrk missing: apt-get install -y wrk…");
  spawnSync("apt-get", ["install", "-y", "wrk"], {
    encoding: "utf8",
    timeout: 240_000,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  return which("wrk");
}

const WRK_LUA = `wrk.method = "POST"
wrk.body = '${BODY}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
`;

async function wrkRun(
  wrk: string,
  script: string,
  url: string,
  connections: number,
  seconds: number,
): Promise<LoadRun> {
  const child = spawnTracked(
    wrk,
    ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", script, `${url}/v1/chat/completions`],
    { stdout: "pipe", stderr: "pipe" },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise<void>((r) => child.once("exit", () => r()));
  const line = out.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (!line) throw new Error(`wrk gave no result: ${out.slice(-500)}`);
  const j = JSON.parse(line.slice(8)) as {
    requests: number;
    duration_us: number;
    p50_us: number;
    p99_us: number;
    errors: number;
  };
  return {
    requests: j.requests,
    errors: j.errors,
    rps: j.requests / (j.duration_us / 1e6),
    p50: j.p50_us / 1000,
    p99: j.p99_us / 1000,
  };
}

/** Fallback load generator: `connections` loops in this process (undici), latency per request in ms. */
async function undiciRun(url: string, connections: number, seconds: number): Promise<LoadRun> {
  const agent = new Agent({ connections, pipelining: 1 });
  const lat: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const r = await request(`${url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: BODY,
            dispatcher: agent,
          });
          await r.body.arrayBuffer();
          if (r.statusCode !== 200) errors++;
        } catch {
          errors++;
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await agent.close();
  lat.sort((a, b) => a - b);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
  return { requests: lat.length, errors, rps: lat.length / elapsed, p50: q(0.5), p99: q(0.99) };
}

function nginxConf(prefix: string, listenPort: number, upstream: number): string {
  const t = (n: string): string => join(prefix, "tmp", n);
  return `worker_processes 1;
daemon off;
master_process on;
pid ${join(prefix, "nginx.pid")};
error_log ${join(prefix, "error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${t("body")};
  proxy_temp_path ${t("proxy")};
  fastcgi_temp_path ${t("fastcgi")};
  uwsgi_temp_path ${t("uwsgi")};
  scgi_temp_path ${t("scgi")};
  upstream llama { server 127.0.0.1:${upstream}; keepalive 256; }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://llama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`;
}

/** Start nginx (own prefix under `dir`, loopback, worker_processes 1) proxying to 127.0.0.1:upstreamPort. */
export async function startNginx(
  bin: string,
  dir: string,
  upstreamPort: number,
): Promise<{ url?: string; child?: ChildProcess; note: string }> {
  const prefix = join(dir, "nginx");
  for (const d of ["tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"])
    mkdirSync(join(prefix, d), { recursive: true });
  const port = await freePort();
  writeFileSync(join(prefix, "nginx.conf"), nginxConf(prefix, port, upstreamPort));
  const child = spawnTracked(bin, ["-p", prefix, "-c", join(prefix, "nginx.conf"), "-e", join(prefix, "error.log")], {
    stderr: "pipe",
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  try {
    await waitHttp(`http://127.0.0.1:${port}/health`, 10_000, 10, () => child.exitCode !== null);
    return { url: `http://127.0.0.1:${port}`, child, note: "nginx started" };
  } catch (e) {
    await stopTracked(child, 2000);
    const elog = existsSync(join(prefix, "error.log"))
      ? readFileSync(join(prefix, "error.log"), "utf8").slice(-300)
      : "";
    return { note: `nginx did not start: ${(e as Error).message} ${err.slice(-300)} ${elog}` };
  }
}

export async function benchNginx(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const quick = opts.quick ?? QUICK;
  const seconds = quick ? 1 : 3;
  const reps = quick ? 2 : 3;
  const dir = mkdtempSync(join(tmpdir(), "gglib-bench-nginx-"));
  const rows: Row[] = [];
  const section = "1 overhead";
  const nginx = ensureNginx();
  const wrk = ensureWrk();
  const tool = wrk ? `wrk -t1 (${wrk})` : "undici loop in the bench process (wrk not available)";
  log(`[nginx] ${nginx.note}; load generator: ${tool}`);
  let proxy: Awaited<ReturnType<typeof startGglibProxy>> | undefined;
  let nginxChild: ReturnType<typeof spawnTracked> | undefined;
  let floor: ReturnType<typeof spawnTracked> | undefined;
  try {
    const model = writeFakeModel(dir, "instant");
    const cfg = join(dir, "bench.yaml");
    writeFileSync(
      cfg,
      [
        "memoryBudget: 64GiB",
        "maxQueue: 5000",
        "models:",
        `  instant: {path: ${JSON.stringify(model)}, env: {FAKE_LLAMA_INSTANT: "1"}}`,
      ].join("\n") + "\n",
    );
    const env = {
      ...fakeLlamaEnv({ loadMs: 20 }),
      GGLIB_LLAMA_SERVER: FAKE_LLAMA_SERVER,
      GGLIB_DATA_DIR: join(dir, "data"),
      NO_COLOR: "1",
    };
    proxy = await startGglibProxy(["--config", cfg], env);
    await proxyLoad(proxy.url, "instant");
    const upPort = await upstreamPort(proxy.url, "instant");
    const targets: { name: "direct" | "gglib" | "nginx" | "node-floor"; url: string }[] = [
      { name: "direct", url: `http://127.0.0.1:${upPort}` },
      { name: "gglib", url: proxy.url },
    ];
    // the floor of any Node.js proxy on this machine: node:http + undici, nothing else (bench/min-node-proxy.mjs)
    floor = spawnTracked(process.execPath, [join(ROOT, "bench", "min-node-proxy.mjs"), `http://127.0.0.1:${upPort}`], {
      stdout: "pipe",
    });
    const floorPort = await new Promise<number>((resolve, reject) => {
      floor!.stdout!.once("data", (d: Buffer) => resolve((JSON.parse(d.toString()) as { port: number }).port));
      floor!.once("exit", () => reject(new Error("min-node-proxy.mjs exited")));
    });
    targets.push({ name: "node-floor", url: `http://127.0.0.1:${floorPort}` });
    if (nginx.path) {
      const n = await startNginx(nginx.path, dir, upPort);
      if (n.url && n.child) {
        nginxChild = n.child;
        targets.push({ name: "nginx", url: n.url });
      } else {
        nginx.note += `; ${n.note}`;
        log(`[nginx] ${nginx.note}`);
      }
    }
    const script = join(dir, "post.lua");
    writeFileSync(script, WRK_LUA);
    const run = (url: string, c: number, s: number): Promise<LoadRun> =>
      wrk ? wrkRun(wrk, script, url, c, s) : undiciRun(url, c, s);
    // warm-up: every path, JIT and keep-alive pools
    for (const t of targets) await run(t.url, 16, 1);
    const results = new Map<string, LoadRun[]>();
    for (const c of LEVELS) {
      for (let r = 0; r < reps; r++) {
        // rotate the order each repetition so no path always runs first after a level change
        for (let i = 0; i < targets.length; i++) {
          const t = targets[(i + r) % targets.length]!;
          const res = await run(t.url, c, seconds);
          const key = `${t.name}@${c}`;
          results.set(key, [...(results.get(key) ?? []), res]);
          log(
            `[nginx] c=${c} rep ${r + 1} ${t.name}: ${res.rps.toFixed(0)} req/s p50 ${res.p50.toFixed(3)} ms p99 ${res.p99.toFixed(3)} ms errors ${res.errors}`,
          );
        }
      }
    }
    const get = (name: string, c: number): LoadRun[] => results.get(`${name}@${c}`) ?? [];
    const hasNginx = targets.some((t) => t.name === "nginx");
    const common = `client: ${tool}; ${seconds} s per run; nginx and gglib are each one process (nginx worker_processes 1, upstream keepalive, proxy_buffering off); upstream: the fake in FAKE_LLAMA_INSTANT mode`;
    for (const c of LEVELS) {
      const d = get("direct", c);
      const g = get("gglib", c);
      const n = get("nginx", c);
      const errs = (xs: LoadRun[]): number => xs.reduce((s, x) => s + x.errors, 0);
      for (const q of ["p50", "p99"] as const) {
        const gv = g.map((x) => x[q]);
        const dv = d.map((x) => x[q]);
        rows.push(
          row({
            section,
            metric: `latency ${q}, gglib proxy vs direct, concurrency ${c}`,
            value: median(gv),
            baseline: median(dv),
            baselineName: "direct",
            unit: "ms",
            spread: spread(gv),
            baselineSpread: spread(dv),
            reps: g.length,
            ...(q === "p50" && c === 1 ? { target: "added p50 ≤ 0.3 ms", met: median(gv) - median(dv) <= 0.3 } : {}),
            note: `errors gglib ${errs(g)}, direct ${errs(d)}`,
          }),
        );
        if (hasNginx) {
          const nv = n.map((x) => x[q]);
          rows.push(
            row({
              section,
              metric: `latency ${q}, nginx vs direct, concurrency ${c}`,
              value: median(nv),
              baseline: median(dv),
              baselineName: "direct",
              unit: "ms",
              spread: spread(nv),
              baselineSpread: spread(dv),
              reps: n.length,
              note: `errors nginx ${errs(n)} (for comparison with the gglib row above)`,
            }),
          );
        }
      }
      const grps = g.map((x) => x.rps);
      if (hasNginx) {
        const nrps = n.map((x) => x.rps);
        rows.push(
          row({
            section,
            metric: `requests/s, gglib proxy vs nginx, concurrency ${c}`,
            value: median(grps),
            baseline: median(nrps),
            baselineName: "nginx",
            unit: "req/s",
            spread: spread(grps),
            baselineSpread: spread(nrps),
            reps: g.length,
            target: "≥ 0.8× nginx",
            met: median(grps) >= 0.8 * median(nrps),
            note: `direct: ${median(d.map((x) => x.rps)).toFixed(0)} req/s`,
          }),
        );
      }
      const f = get("node-floor", c);
      if (f.length) {
        const frps = f.map((x) => x.rps);
        rows.push(
          row({
            section,
            metric: `requests/s, gglib proxy vs a minimal Node proxy (node:http + undici), concurrency ${c}`,
            value: median(grps),
            baseline: median(frps),
            baselineName: "min Node proxy",
            unit: "req/s",
            spread: spread(grps),
            baselineSpread: spread(frps),
            reps: g.length,
            note: `the floor of a one-process Node proxy (bench/min-node-proxy.mjs); its p50 ${fmt(median(f.map((x) => x.p50)))} ms${hasNginx ? `, ${(median(frps) / median(get("nginx", c).map((x) => x.rps))).toFixed(2)}× nginx` : ""}`,
          }),
        );
      }
      const drps = d.map((x) => x.rps);
      rows.push(
        row({
          section,
          metric: `requests/s, gglib proxy vs direct, concurrency ${c}`,
          value: median(grps),
          baseline: median(drps),
          baselineName: "direct",
          unit: "req/s",
          spread: spread(grps),
          baselineSpread: spread(drps),
          reps: g.length,
          note: c === 1 ? common : "",
        }),
      );
    }
    if (!hasNginx)
      rows.push(
        row({
          section,
          metric: "nginx comparison",
          value: NaN,
          baseline: NaN,
          baselineName: "nginx",
          unit: "",
          reps: 0,
          note: `NOT MEASURED: ${nginx.note}`,
        }),
      );
  } finally {
    if (nginxChild) await stopTracked(nginxChild, 5000, "SIGQUIT");
    if (floor) await stopTracked(floor, 2000);
    if (proxy) await proxy.stop();
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

runStandalone(import.meta.url, "gglib proxy vs direct vs nginx (instant fake upstream)", () => benchNginx());
