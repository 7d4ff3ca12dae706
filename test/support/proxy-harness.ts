/**
 * Runs `gglib proxy` as a real child process (one node process: bin/gglib.js, no tsx wrapper process) on a temp
 * models folder with the fake llama-server (or any binary), for soak, chaos, fuzz and auth tests that need the
 * process itself: its pid (fd count, RSS), SIGKILL/restart, and the llama-servers it starts.
 *
 *   const p = await startProxyProcess(t, { models: ["a", "b"], args: ["--max-models", "1"], knobs: { loadMs: 50 } });
 *   const r = await fetch(`${p.url}/v1/chat/completions`, { method: "POST", body: ... });
 *   p.llamaPids();  p.fdCount();  p.rssKb();  p.stats();
 *
 * Cleanup is registered on the test context: the proxy's process group and every process whose command line
 * mentions the temp folder are SIGKILLed, then the folder is removed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import {
  FAKE_LLAMA_SERVER,
  fakeLlamaEnv,
  readFakeStats,
  writeFakeModel,
  type FakeLlamaKnobs,
  type FakeStatsLine,
} from "./fake-llama.js";
import { killQuietly, pidsWithArg, running, waitFor } from "./procs.js";
import { signalGroup } from "../../src/process/terminate/signals.js";

export const GGLIB_BIN: string = fileURLToPath(new URL("../../bin/gglib.js", import.meta.url));

export interface ProxyProcessOptions {
  /** Fake models written into <dir>/models (default ["a", "b", "c"]). Ignored when `dir` is given. */
  models?: string[];
  /** Extra `gglib proxy` flags (--models-dir, --port 0 and --json are always passed). */
  args?: string[];
  /** Knobs of the fake llama-server (FAKE_LLAMA_*); statsFile defaults to <dir>/stats.jsonl. */
  knobs?: FakeLlamaKnobs;
  /** llama-server binary (GGLIB_LLAMA_SERVER); default the fake. */
  binary?: string;
  /** Extra environment for the proxy (and so for its llama-servers). */
  env?: Record<string, string>;
  /** Reuse the folder of an earlier proxy (a restart: same models, data dir and pidfiles). */
  dir?: string;
  readyTimeoutMs?: number;
  /** Runs the command elsewhere, e.g. on a test host of test/support/netns.ts (`host.argv`). */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
}

export interface ProxyProcess {
  child: ChildProcess;
  /** pid of the node process serving HTTP. */
  pid: number;
  url: string;
  /** The temp folder: models/, data/ (GGLIB_DATA_DIR), stats.jsonl. */
  dir: string;
  modelsDir: string;
  statsFile: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Live (non-zombie) llama-server processes started for this folder. */
  llamaPids(): number[];
  /** Open file descriptors of the proxy process (/proc/<pid>/fd). */
  fdCount(): number;
  /** Resident memory of the proxy process, KiB (/proc/<pid>/status VmRSS). */
  rssKb(): number;
  /** Lines of the fake's stats file so far. */
  stats(): FakeStatsLine[];
  /** SIGKILL the proxy (its process group); its llama-servers must die with it. */
  kill(signal?: NodeJS.Signals): void;
}

/** Every process of this folder that runs the given llama-server binary (the fake by default). */
export function llamaPidsOf(dir: string, binary = FAKE_LLAMA_SERVER): number[] {
  return pidsWithArg(dir).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(binary);
    } catch {
      return false;
    }
  });
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** A temp folder with fake models in <dir>/models, removed (with every process mentioning it) after the test. */
export function proxyDir(t: TestContext, models: string[] = ["a", "b", "c"]): string {
  const dir = mkdtempSync(join(tmpdir(), "gglib-harness-"));
  t.after(async () => {
    for (const p of pidsWithArg(dir)) killQuietly(p);
    await waitFor(() => pidsWithArg(dir).length === 0, 3_000);
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, "models"));
  for (const m of models) writeFakeModel(join(dir, "models"), m);
  return dir;
}

export async function startProxyProcess(t: TestContext, o: ProxyProcessOptions = {}): Promise<ProxyProcess> {
  const dir = o.dir ?? proxyDir(t, o.models);
  const modelsDir = join(dir, "models");
  const statsFile = o.knobs?.statsFile ?? join(dir, "stats.jsonl");
  const binary = o.binary ?? FAKE_LLAMA_SERVER;
  const env: NodeJS.ProcessEnv = {
    ...fakeLlamaEnv({ loadMs: 50, ...o.knobs, statsFile }),
    GGLIB_LLAMA_SERVER: binary,
    GGLIB_DATA_DIR: join(dir, "data"),
    GGLIB_CONTEXT_CACHE_DIR: join(dir, "kv-context"),
    NO_COLOR: "1",
    ...o.env,
  };
  const argv: [string, string[]] = [
    process.execPath,
    [GGLIB_BIN, "proxy", "--models-dir", modelsDir, "--port", "0", "--json", ...(o.args ?? [])],
  ];
  const child = spawn(...(o.wrap ? o.wrap(...argv) : argv), {
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const pid = child.pid!;
  t.after(() => killQuietly(pid));
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d: string) => (out = (out + d).slice(-200_000)));
  child.stderr.on("data", (d: string) => (err = (err + d).slice(-200_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const ok = await waitFor(() => gone || out.includes('"event":"ready"'), o.readyTimeoutMs ?? 30_000);
  if (!ok || gone) {
    killQuietly(pid);
    throw new Error(`gglib proxy did not start (exited: ${gone}); stdout:\n${out}\nstderr:\n${err}`);
  }
  const line = out.split("\n").find((l) => l.includes('"event":"ready"'))!;
  const url = (JSON.parse(line) as { url: string }).url;
  return {
    child,
    pid,
    url,
    dir,
    modelsDir,
    statsFile,
    stdout: () => out,
    stderr: () => err,
    exited,
    llamaPids: () => llamaPidsOf(dir, binary),
    fdCount: () => fdCount(pid),
    rssKb: () => rssKb(pid),
    stats: () => readFakeStats(statsFile),
    kill: (signal: NodeJS.Signals = "SIGKILL") => {
      signalGroup(pid, signal);
    },
  };
}

/** POST JSON to the proxy. */
export function postJson(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

/**
 * A stream cut by its upstream's death: reads the first chunk, runs `kill`, reads the rest and checks that it ended
 * within 10 s with an SSE error event then `[DONE]`. Returns that error.
 */
export async function streamCutBy(
  r: Response,
  kill: () => void,
): Promise<{ error: { code: string; message: string } }> {
  assert.equal(r.status, 200);
  const reader = r.body!.getReader();
  const first = await reader.read();
  assert.ok(!first.done && first.value.length > 0, "a first chunk before the kill");
  const t0 = Date.now();
  kill();
  let text = new TextDecoder().decode(first.value);
  for (let c = await reader.read(); !c.done; c = await reader.read()) text += new TextDecoder().decode(c.value);
  assert.ok(Date.now() - t0 < 10_000, "the stream ended within 10 s");
  const events = sseData(text);
  assert.equal(events.at(-1), "[DONE]");
  return JSON.parse(events.at(-2)!) as { error: { code: string; message: string } };
}

/** `data:` payloads of an SSE text, in order. */
export function sseData(text: string): string[] {
  return text
    .split(/\r?\n\r?\n/)
    .flatMap((ev) =>
      ev
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim()),
    )
    .filter((d) => d !== "");
}

/** Waits until none of these pids runs; returns those still running after timeoutMs. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  await waitFor(() => pids.every((p) => !running(p)), timeoutMs);
  return pids.filter((p) => running(p));
}
