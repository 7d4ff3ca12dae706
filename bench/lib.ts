/**
 * Shared helpers of the benchmark modules (bench/nginx.ts, streaming.ts, swap.ts, scale.ts, all.ts):
 * statistics, a result row type, process tracking that kills everything the bench started (even on failure
 * or Ctrl-C), `gglib proxy` start/stop, HTTP readiness, and the markdown table.
 *
 * Everything binds to 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { Agent, request } from "undici";
import { startProxy, type RunningProxy } from "../src/proxy/index.js";
import { LlamaServerRunner } from "../src/runner/llama-server-runner.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const QUICK = process.argv.includes("--quick") || process.env.GGLIB_BENCH_QUICK === "1";

/** One measured figure next to its baseline, measured in the same run. */
export interface Row {
  section: string;
  metric: string;
  /** The value of the thing under test (gglib proxy). */
  value: number;
  /** The baseline measured in the same run (direct, nginx, raw llama-server, llama.cpp router, bare node…). */
  baseline: number;
  baselineName: string;
  unit: string;
  /** value / baseline. */
  ratio: number;
  /** value - baseline. */
  diff: number;
  /** Spread of the value over the repetitions: [min, max]. */
  spread?: [number, number];
  baselineSpread?: [number, number];
  reps: number;
  /** The target from the benchmark issue and whether this run met it. */
  target?: string;
  met?: boolean;
  note?: string;
  loadavg: number;
}

export function row(r: Omit<Row, "ratio" | "diff" | "loadavg">): Row {
  return {
    ...r,
    ratio: r.baseline === 0 ? NaN : r.value / r.baseline,
    diff: r.value - r.baseline,
    loadavg: loadavg()[0]!,
  };
}

export function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank quantile, q in [0, 1]. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function spread(xs: number[]): [number, number] {
  return xs.length ? [Math.min(...xs), Math.max(...xs)] : [NaN, NaN];
}

export function machine(): { cpus: number; cpuModel: string; memGiB: number; node: string; kernel: string } {
  let kernel = "";
  try {
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    /* not linux */
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel,
  };
}

export const log = (s: string): void => void process.stderr.write(s + "\n");
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// processes: every child the bench starts is tracked and killed (its whole process group) on exit or a signal

const tracked = new Set<ChildProcess>();

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* gone */
    }
  }
}

let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of tracked) killGroup(c, "SIGKILL");
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      for (const c of tracked) killGroup(c, "SIGKILL");
      process.exit(130);
    });
  }
}

/** spawn() in a new process group (detached), tracked for cleanup. */
export function spawnTracked(
  cmd: string,
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    stdout?: "pipe" | "ignore";
    stderr?: "pipe" | "ignore" | "inherit";
  } = {},
): ChildProcess {
  hook();
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ["ignore", opts.stdout ?? "ignore", opts.stderr ?? "ignore"],
  });
  tracked.add(child);
  child.once("exit", () => tracked.delete(child));
  return child;
}

/** SIGTERM the process group, wait up to graceMs, then SIGKILL it; resolves once the leader has exited. */
export async function stopTracked(
  child: ChildProcess,
  graceMs = 10_000,
  sig: NodeJS.Signals = "SIGTERM",
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const done = new Promise<void>((r) => child.once("exit", () => r()));
    killGroup(child, sig);
    await Promise.race([done, sleep(graceMs)]);
    if (child.exitCode === null && child.signalCode === null) {
      killGroup(child, "SIGKILL");
      await done;
    }
  }
  // anything left in the group (a grandchild that outlived the leader)
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* group empty */
    }
  }
  tracked.delete(child);
}

/** pids of live processes whose command line contains `needle` (to check nothing leaked). */
export function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmd.includes(needle) && state !== "Z" && state !== "X") out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Kill every live process whose command line mentions `needle` (the bench's own temp folder); returns how many. */
export function killLeftovers(needle: string): number {
  const pids = pidsWithArg(needle);
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  return pids.length;
}

/** VmRSS / VmHWM of a process, bytes (0 when gone). */
export function procMem(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const k = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m").exec(s)?.[1] ?? 0) * 1024;
    return { rss: k("VmRSS"), hwm: k("VmHWM") };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** Reset VmHWM to the current RSS (Linux: write 5 to clear_refs; needs the same user or root). */
export function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = typeof a === "object" && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitHttp(url: string, timeoutMs: number, stepMs = 5, exited?: () => boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      /* not yet */
    }
    if (exited?.()) throw new Error(`the process behind ${url} exited before it was ready`);
    if (Date.now() > end) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// gglib proxy

/** True when bin/gglib.js would run the compiled dist/ (it is at least as new as every src/*.ts). */
export function compiledCliFresh(root: string = ROOT): boolean {
  const compiled = join(root, "dist", "src", "cli", "main.js");
  if (!existsSync(compiled)) return false;
  let newest = 0;
  for (const f of readdirSync(join(root, "src"), { recursive: true })) {
    if (!String(f).endsWith(".ts")) continue;
    newest = Math.max(newest, statSync(join(root, "src", String(f))).mtimeMs);
  }
  return statSync(compiled).mtimeMs >= newest;
}

/** `npm run build` when dist/ is stale, so `node bin/gglib.js` runs the compiled CLI; returns whether it does. */
export function ensureBuilt(): { compiled: boolean; built: boolean; note: string } {
  if (compiledCliFresh()) return { compiled: true, built: false, note: "dist/ was up to date" };
  log("building (npm run build) so that bin/gglib.js runs the compiled CLI…");
  const r = spawnSync("npm", ["run", "build", "--silent"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: 180_000,
  });
  const fresh = compiledCliFresh();
  return {
    compiled: fresh,
    built: true,
    note: fresh
      ? `built${r.status === 0 ? "" : " (tsc reported errors in files being edited; output emitted anyway)"}`
      : `build failed, bin/gglib.js runs src/ through tsx: ${(r.stderr || r.stdout).slice(0, 300)}`,
  };
}

export interface ProxyHandle {
  child: ChildProcess;
  pid: number;
  url: string;
  /** "compiled" (dist/) or "tsx" (src/ through tsx). */
  runtime: "compiled" | "tsx";
  stop(): Promise<void>;
}

/**
 * Start `node <root>/bin/gglib.js proxy <args> --port 0 --json` (root: this checkout, or another one, run in its
 * folder) and wait for its ready line; `onLine` sees every line it prints on stdout, then and after.
 */
export async function startGglibProxy(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
  /** Runs it elsewhere, e.g. on a test host of test/support/netns.ts (`host.argv`). */
  wrap?: (cmd: string, args: string[]) => [string, string[]],
  opts: { root?: string; onLine?: (line: string) => void } = {},
): Promise<ProxyHandle> {
  const root = opts.root ?? ROOT;
  const runtime = compiledCliFresh(root) ? "compiled" : "tsx";
  const argv: [string, string[]] = [
    process.execPath,
    [join(root, "bin", "gglib.js"), "proxy", ...args, "--port", "0", "--json"],
  ];
  const child = spawnTracked(...(wrap ? wrap(...argv) : argv), {
    env,
    stdout: "pipe",
    stderr: "pipe",
    ...(opts.root ? { cwd: root } : {}),
  });
  // the output before the ready line (for the error), and the partial line being read
  let seen = "";
  let rest = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let ready = false;
    const t = setTimeout(
      () => reject(new Error(`gglib proxy did not start in ${timeoutMs} ms: ${seen}${rest}${err}`)),
      timeoutMs,
    );
    // read to the end, so it never blocks on a full pipe
    child.stdout!.on("data", (d: Buffer) => {
      rest += d.toString();
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        opts.onLine?.(line);
        if (ready) continue;
        seen = (seen + line + "\n").slice(-4000);
        if (line.includes('"event":"ready"')) {
          ready = true;
          clearTimeout(t);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      }
    });
    child.once("exit", (c, s) => {
      clearTimeout(t);
      reject(new Error(`gglib proxy exited (${c ?? s}) before it was ready: ${seen}${rest}${err}`));
    });
  }).catch(async (e: unknown) => {
    await stopTracked(child, 2000);
    throw e;
  });
  return { child, pid: child.pid!, url, runtime, stop: () => stopTracked(child, 15_000) };
}

export interface StatusModel {
  name: string;
  port?: number;
  state: string;
  pid?: number;
}

export async function proxyStatus(url: string): Promise<StatusModel[]> {
  const r = await fetch(`${url}/api/status`);
  return ((await r.json()) as { models: StatusModel[] }).models;
}

export async function proxyLoad(url: string, model: string): Promise<void> {
  const r = await fetch(`${url}/models/load`, { method: "POST", body: JSON.stringify({ model }) });
  const t = await r.text();
  if (r.status !== 200) throw new Error(`load ${model}: ${r.status} ${t}`);
}

/** Unload `model` and wait until the proxy says it is unloaded (and its llama-server has exited). */
export async function proxyUnload(url: string, model: string, timeoutMs = 20_000): Promise<void> {
  await fetch(`${url}/models/unload`, { method: "POST", body: JSON.stringify({ model }) }).then((r) => r.arrayBuffer());
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = (await proxyStatus(url)).find((x) => x.name === model);
    if (!m || m.state === "unloaded" || m.state === "stopped") return;
    if (Date.now() > end) throw new Error(`${model} still ${m.state} after ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** The port of a loaded model's llama-server, from /api/status (for direct = baseline requests). */
export async function upstreamPort(url: string, model: string): Promise<number> {
  const m = (await proxyStatus(url)).find((x) => x.name === model);
  if (!m?.port) throw new Error(`${model} has no port in /api/status`);
  return m.port;
}

// ---------------------------------------------------------------------------------------------------------------
// output

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : a >= 1 ? n.toFixed(2) : n.toFixed(3);
}

export function markdownTable(rows: Row[]): string {
  const lines = [
    "| section | metric | measured | baseline | ratio | difference | spread (measured; baseline) | reps | target | met | load avg | notes |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const sp = (s?: [number, number]): string => (s ? `${fmt(s[0])}–${fmt(s[1])}` : "–");
    lines.push(
      `| ${r.section} | ${r.metric.replace(/\|/g, "/")} | ${fmt(r.value)} ${r.unit} | ${fmt(r.baseline)} ${r.unit} (${r.baselineName}) | ${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) + "×" : "–"} | ${r.diff >= 0 ? "+" : ""}${fmt(r.diff)} ${r.unit} | ${sp(r.spread)}; ${sp(r.baselineSpread)} | ${r.reps || "–"} | ${r.target ?? ""} | ${r.met === undefined ? "" : r.met ? "yes" : "**no**"} | ${r.loadavg.toFixed(2)} | ${(r.note ?? "").replace(/\|/g, "/")} |`,
    );
  }
  return lines.join("\n");
}

/** Run a module's main when the file is executed directly (`npx tsx bench/x.ts`): print its table and JSON. */
export function runStandalone(metaUrl: string, name: string, fn: () => Promise<Row[]>): void {
  if (process.argv[1] && fileURLToPath(metaUrl) === process.argv[1]) {
    fn()
      .then((rows) => {
        process.stdout.write(
          `# ${name} (${new Date().toISOString()}, ${QUICK ? "quick" : "full"})\n\n${markdownTable(rows)}\n\n`,
        );
        if (process.argv.includes("--json")) process.stdout.write(JSON.stringify(rows, null, 2) + "\n");
      })
      .catch((e: unknown) => {
        process.stderr.write(`${name} failed: ${(e as Error)?.stack ?? String(e)}\n`);
        process.exitCode = 1;
      });
  }
}

/** What `chatLoad` saw: requests answered, errors (a non-200 or a failed request), throughput, latency (ms). */
export interface ChatLoad {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

/**
 * `connections` loops posting `body` to `<url>/v1/chat/completions` back to back for `seconds`, on one undici
 * pool; every whole answer's latency is kept.
 */
export async function chatLoad(
  url: string,
  connections: number,
  seconds: number,
  body: string,
  headers: Record<string, string> = {},
): Promise<ChatLoad> {
  const agent = new Agent({ connections, pipelining: 1 });
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const r = await request(`${url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body,
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
  return { requests: lat.length, errors, rps: lat.length / elapsed, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

/**
 * An in-process `startProxy` on the real llama-server with its context cache (the benches of the cache: context.ts,
 * families.ts, agent-session.ts): ports from `basePort` + a random offset, a generous memory budget, no config
 * watch, two-minute save/restore bounds and a five-minute load bound (the wide models prefill for seconds).
 */
export function startCachedProxy(o: {
  bin: string;
  dir: string;
  configPath: string;
  basePort: number;
  contextCacheDir: string;
  contextCache?: 0 | "auto";
  maxModels?: number;
}): Promise<RunningProxy> {
  const runner = new LlamaServerRunner({
    binaryPath: o.bin,
    pidsDir: join(o.dir, "pids"),
    basePort: o.basePort + Math.floor(Math.random() * 300),
  });
  return startProxy({
    configPath: o.configPath,
    port: 0,
    memoryBudget: "64GiB",
    watchConfig: false,
    ...(o.contextCache !== undefined ? { contextCache: o.contextCache } : {}),
    ...(o.maxModels !== undefined ? { maxModels: o.maxModels } : {}),
    contextCacheDir: o.contextCacheDir,
    contextSaveTimeoutMs: 120_000,
    contextRestoreTimeoutMs: 120_000,
    loadTimeoutS: 300,
    runner,
  });
}
