/**
 * Typed access to the fake llama-server (test/support/fake-llama-server.mjs) for fault and race tests:
 * the knobs it reads from its environment, a function that turns them into an env object, a tiny GGUF file
 * it accepts as a model, and a small process handle (spawn, wait for readiness, read its logs, kill).
 *
 *   const fake = await startFakeLlama({ knobs: { tokens: -1, tokenIntervalMs: 20 }, args: ["--parallel", "1"] });
 *   t.after(() => fake.kill());
 *   const r = await fetch(`${fake.baseUrl}/v1/chat/completions`, { method: "POST", body: ... });
 *
 * The fake's header comment documents every knob and behaviour in detail.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of the fake executable (spawn it directly, like a real llama-server binary). */
export const FAKE_LLAMA_SERVER: string = fileURLToPath(new URL("./fake-llama-server.mjs", import.meta.url));

/** The fake's knobs. Each one maps to one FAKE_LLAMA_* environment variable (named in its comment). */
export interface FakeLlamaKnobs {
  /** FAKE_LLAMA_LOAD_MS: how long the model load takes (default 50). */
  loadMs?: number;
  /** FAKE_LLAMA_FAIL_LOAD="<code>:<message>": fail at the end of the load; `code` = exit code or signal name. */
  failLoad?: { exitCode: number | NodeJS.Signals; message: string };
  /** FAKE_LLAMA_CRASH_AFTER_CHUNKS: die after this many token chunks of a generation (0 = at its start). */
  crashAfterChunks?: number;
  /** FAKE_LLAMA_CRASH_SIGNAL: how it dies: a signal (default SIGSEGV) or an exit code. */
  crashSignal?: NodeJS.Signals | number;
  /** FAKE_LLAMA_STALL_AFTER_CHUNKS: stop sending after this many token chunks, keep the socket open. */
  stallAfterChunks?: number;
  /** FAKE_LLAMA_ERROR_AFTER_CHUNKS: send the recorded mid-stream 500 error after this many token chunks. */
  errorAfterChunks?: number;
  /** FAKE_LLAMA_IGNORE_SIGTERM=1: SIGTERM does nothing (only SIGINT/SIGKILL stop it). */
  ignoreSigterm?: boolean;
  /** FAKE_LLAMA_REFUSE_BIND=1: behave as if the port were in use (exit 1 with the bind error). */
  refuseBind?: boolean;
  /** FAKE_LLAMA_TOKENS: content tokens per answer (default 8); -1 = until max_tokens or a full context. */
  tokens?: number;
  /** FAKE_LLAMA_REASONING_TOKENS: reasoning tokens before the content of a reasoning model (default 4). */
  reasoningTokens?: number;
  /** FAKE_LLAMA_TOKEN_INTERVAL_MS: delay between tokens (default 0). */
  tokenIntervalMs?: number;
  /** FAKE_LLAMA_PROMPT_MS: delay before the first token (default 0). */
  promptMs?: number;
  /** FAKE_LLAMA_REASONING=1|0: force a reasoning model on/off (default: model file name contains "think"). */
  reasoning?: boolean;
  /** FAKE_LLAMA_INSTANT=1: fixed tiny answers with no slots, logs or timers (proxy-overhead benchmarks). */
  instant?: boolean;
  /** FAKE_LLAMA_RSS_MB: allocate and touch this many MiB while loading. */
  rssMb?: number;
  /** FAKE_LLAMA_STATS_FILE: append one JSON line (FakeStatsLine) per request received. */
  statsFile?: string;
  /** FAKE_LLAMA_STATS_BODIES=1: the stats lines carry each request's body as received (latin1) and content type. */
  statsBodies?: boolean;
  /** FAKE_LLAMA_N_CTX_TRAIN: the model's training context when the GGUF does not say (default 2048). */
  nCtxTrain?: number;
  /** FAKE_LLAMA_MODEL_MB / FAKE_LLAMA_KV_MB / FAKE_LLAMA_COMPUTE_MB: buffer sizes in the -lv 4 log lines. */
  modelMb?: number;
  kvMb?: number;
  computeMb?: number;
  /** FAKE_LLAMA_STRICT_GGUF=1: fail like llama-server when the GGUF header cannot be parsed. */
  strictGguf?: boolean;
  /** LLAMA_SERVER_ROUTER_PORT: router-child mode (state lines on stdout, exit command / EOF on stdin). */
  routerPort?: number;
  /** FAKE_LLAMA_PROMPT_TOKEN_MS: delay per prompt token evaluated (not cached): a prefill a restore shortens. */
  promptTokenMs?: number;
  /** FAKE_LLAMA_SAVE_FAIL=1: slot saves answer the real 500 `Unable to save slot`. */
  saveFail?: boolean;
  /** FAKE_LLAMA_SAVE_HANG=1: slot saves never answer. */
  saveHang?: boolean;
  /** FAKE_LLAMA_RESTORE_FAIL=1: slot restores answer the real 400 `Unable to restore slot: ...`. */
  restoreFail?: boolean;
  /** FAKE_LLAMA_RESTORE_HANG=1: slot restores never answer. */
  restoreHang?: boolean;
  /** FAKE_LLAMA_RESTORE_UNUSED=1: restores succeed but are not reused (like llama.cpp's sliding-window models). */
  restoreUnused?: boolean;
  /** FAKE_LLAMA_SLOT_ACTION_MS: delay of each slot save/restore. */
  slotActionMs?: number;
  /** FAKE_LLAMA_CLOSE_ON_REUSE: the first N POSTs that arrive on a connection that already served a request are met
   * by closing it unanswered (cpp-httplib's keep-alive wait ending just as the request came). */
  closeOnReuse?: number;
  /** FAKE_LLAMA_BUSY_HEALTH_MS: while a generation is in flight, /health answers only after this many ms (a busy
   * server whose HTTP threads are taken). */
  busyHealthMs?: number;
  /** FAKE_LLAMA_HTTP_THREADS: cpp-httplib's fixed thread pool, one thread per open connection for its whole life:
   * a /health on a new connection waits until no more than this many connections are open (its own included). */
  httpThreads?: number;
}

/** Every environment variable the fake reads (cleared by fakeLlamaEnv so tests do not leak knobs). */
export const FAKE_LLAMA_ENV_VARS = [
  "FAKE_LLAMA_LOAD_MS",
  "FAKE_LLAMA_FAIL_LOAD",
  "FAKE_LLAMA_CRASH_AFTER_CHUNKS",
  "FAKE_LLAMA_CRASH_SIGNAL",
  "FAKE_LLAMA_STALL_AFTER_CHUNKS",
  "FAKE_LLAMA_ERROR_AFTER_CHUNKS",
  "FAKE_LLAMA_IGNORE_SIGTERM",
  "FAKE_LLAMA_REFUSE_BIND",
  "FAKE_LLAMA_TOKENS",
  "FAKE_LLAMA_REASONING_TOKENS",
  "FAKE_LLAMA_TOKEN_INTERVAL_MS",
  "FAKE_LLAMA_PROMPT_MS",
  "FAKE_LLAMA_REASONING",
  "FAKE_LLAMA_INSTANT",
  "FAKE_LLAMA_RSS_MB",
  "FAKE_LLAMA_STATS_FILE",
  "FAKE_LLAMA_N_CTX_TRAIN",
  "FAKE_LLAMA_MODEL_MB",
  "FAKE_LLAMA_KV_MB",
  "FAKE_LLAMA_COMPUTE_MB",
  "FAKE_LLAMA_STRICT_GGUF",
  "LLAMA_SERVER_ROUTER_PORT",
  "FAKE_LLAMA_PROMPT_TOKEN_MS",
  "FAKE_LLAMA_SAVE_FAIL",
  "FAKE_LLAMA_SAVE_HANG",
  "FAKE_LLAMA_RESTORE_FAIL",
  "FAKE_LLAMA_RESTORE_HANG",
  "FAKE_LLAMA_SLOT_ACTION_MS",
  "FAKE_LLAMA_RESTORE_UNUSED",
  "FAKE_LLAMA_CLOSE_ON_REUSE",
  "FAKE_LLAMA_BUSY_HEALTH_MS",
  "FAKE_LLAMA_HTTP_THREADS",
] as const;

/** `base` (default process.env) without any fake knob or LLAMA_ARG_* variable, plus the given knobs. */
export function fakeLlamaEnv(knobs: FakeLlamaKnobs = {}, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if ((FAKE_LLAMA_ENV_VARS as readonly string[]).includes(k) || k.startsWith("LLAMA_ARG_") || k === "LLAMA_API_KEY")
      continue;
    env[k] = v;
  }
  const set = (name: string, v: string | number | boolean | undefined): void => {
    if (v === undefined) return;
    env[name] = typeof v === "boolean" ? (v ? "1" : "0") : String(v);
  };
  set("FAKE_LLAMA_LOAD_MS", knobs.loadMs);
  if (knobs.failLoad) set("FAKE_LLAMA_FAIL_LOAD", `${knobs.failLoad.exitCode}:${knobs.failLoad.message}`);
  set("FAKE_LLAMA_CRASH_AFTER_CHUNKS", knobs.crashAfterChunks);
  set("FAKE_LLAMA_CRASH_SIGNAL", knobs.crashSignal);
  set("FAKE_LLAMA_STALL_AFTER_CHUNKS", knobs.stallAfterChunks);
  set("FAKE_LLAMA_ERROR_AFTER_CHUNKS", knobs.errorAfterChunks);
  if (knobs.ignoreSigterm) set("FAKE_LLAMA_IGNORE_SIGTERM", true);
  if (knobs.refuseBind) set("FAKE_LLAMA_REFUSE_BIND", true);
  set("FAKE_LLAMA_TOKENS", knobs.tokens);
  set("FAKE_LLAMA_REASONING_TOKENS", knobs.reasoningTokens);
  set("FAKE_LLAMA_TOKEN_INTERVAL_MS", knobs.tokenIntervalMs);
  set("FAKE_LLAMA_PROMPT_MS", knobs.promptMs);
  set("FAKE_LLAMA_REASONING", knobs.reasoning);
  if (knobs.instant) set("FAKE_LLAMA_INSTANT", true);
  set("FAKE_LLAMA_RSS_MB", knobs.rssMb);
  set("FAKE_LLAMA_STATS_FILE", knobs.statsFile);
  if (knobs.statsBodies) set("FAKE_LLAMA_STATS_BODIES", "1");
  set("FAKE_LLAMA_N_CTX_TRAIN", knobs.nCtxTrain);
  set("FAKE_LLAMA_MODEL_MB", knobs.modelMb);
  set("FAKE_LLAMA_KV_MB", knobs.kvMb);
  set("FAKE_LLAMA_COMPUTE_MB", knobs.computeMb);
  if (knobs.strictGguf) set("FAKE_LLAMA_STRICT_GGUF", true);
  set("LLAMA_SERVER_ROUTER_PORT", knobs.routerPort);
  set("FAKE_LLAMA_PROMPT_TOKEN_MS", knobs.promptTokenMs);
  if (knobs.saveFail) set("FAKE_LLAMA_SAVE_FAIL", true);
  if (knobs.saveHang) set("FAKE_LLAMA_SAVE_HANG", true);
  if (knobs.restoreFail) set("FAKE_LLAMA_RESTORE_FAIL", true);
  if (knobs.restoreHang) set("FAKE_LLAMA_RESTORE_HANG", true);
  set("FAKE_LLAMA_SLOT_ACTION_MS", knobs.slotActionMs);
  if (knobs.restoreUnused) set("FAKE_LLAMA_RESTORE_UNUSED", true);
  set("FAKE_LLAMA_CLOSE_ON_REUSE", knobs.closeOnReuse);
  set("FAKE_LLAMA_BUSY_HEALTH_MS", knobs.busyHealthMs);
  set("FAKE_LLAMA_HTTP_THREADS", knobs.httpThreads);
  return env;
}

/** One line of FAKE_LLAMA_STATS_FILE. `model` is the id the fake answers with (alias, else model path). */
export interface FakeStatsLine {
  pid: number;
  model: string;
  method: string;
  path: string;
  stream: boolean;
  /** Date.now() when the request arrived. */
  t: number;
  /** The body as received, latin1 (with the statsBodies knob). */
  body?: string;
  contentType?: string | null;
}

export function readFakeStats(file: string): FakeStatsLine[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as FakeStatsLine);
}

/** GET /__fake/state. */
export interface FakeState {
  pid: number;
  model: string;
  alias: string | null;
  modelPath: string;
  port: number;
  state: "loading" | "ready" | "shutting-down";
  /** Generation requests running or waiting for a slot. */
  inFlight: number;
  /** Generation requests waiting for a slot. */
  queued: number;
  /** Requests received (all routes but /__fake/*). */
  handled: number;
  /** Generations completed. */
  generations: number;
  slots: { id: number; busy: boolean }[];
}

function ggufString(s: string): Buffer {
  const b = Buffer.from(s, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b]);
}

/**
 * Write a minimal GGUF v3 file the fake accepts as a model (header with architecture, name and context length,
 * no tensors), padded to `sizeBytes`. For the real llama-server use writeTinyModel (tiny-models.ts) instead.
 */
export function writeFakeModel(
  dir: string,
  name = "fake-model",
  opts: { sizeBytes?: number; contextLength?: number } = {},
): string {
  const kv: Buffer[] = [];
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  kv.push(ggufString("general.architecture"), u32(8), ggufString("llama"));
  kv.push(ggufString("general.name"), u32(8), ggufString(name));
  kv.push(ggufString("llama.context_length"), u32(4), u32(opts.contextLength ?? 2048));
  const head = Buffer.alloc(24);
  head.write("GGUF", 0, "latin1");
  head.writeUInt32LE(3, 4);
  head.writeBigUInt64LE(0n, 8);
  head.writeBigUInt64LE(3n, 16);
  let buf = Buffer.concat([head, ...kv]);
  if (opts.sizeBytes !== undefined && opts.sizeBytes > buf.length)
    buf = Buffer.concat([buf, Buffer.alloc(opts.sizeBytes - buf.length)]);
  const file = join(dir, `${name}.gguf`);
  writeFileSync(file, buf);
  return file;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface FakeLlamaOptions {
  /** Model path; default: a fresh writeFakeModel() file in a temp folder. */
  model?: string;
  /** Extra llama-server flags (after -m/--host/--port). */
  args?: string[];
  knobs?: FakeLlamaKnobs;
  /** Default: a free port. */
  port?: number;
  /** Base environment (default process.env; fake knobs in it are dropped). */
  env?: NodeJS.ProcessEnv;
  /** Wait until /health answers 200 (default true). */
  waitReady?: boolean;
  /** stdin of the process (default "ignore"; router-child tests want "pipe"). */
  stdin?: "pipe" | "ignore";
  readyTimeoutMs?: number;
}

export interface FakeLlamaProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  baseUrl: string;
  model: string;
  /** Temp folder (cwd of the process, where a crash could leave a core file); removed by kill(). */
  dir: string;
  stderr(): string;
  stdout(): string;
  /** Resolves with the exit code and signal (already resolved if it has exited). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stderr (or stdout) line matching `re`, or rejects after timeoutMs. */
  waitForLine(re: RegExp, timeoutMs?: number, stream?: "stderr" | "stdout"): Promise<string>;
  waitReady(timeoutMs?: number): Promise<void>;
  state(): Promise<FakeState>;
  /** SIGKILL (if still running) and remove the temp folder. Safe to call twice. */
  kill(): Promise<void>;
}

export async function startFakeLlama(opts: FakeLlamaOptions = {}): Promise<FakeLlamaProcess> {
  const dir = mkdtempSync(join(tmpdir(), "fake-llama-"));
  const model = opts.model ?? writeFakeModel(dir);
  const port = opts.port ?? (await freePort());
  const args = ["-m", model, "--host", "127.0.0.1", "--port", String(port), ...(opts.args ?? [])];
  const child = spawn(FAKE_LLAMA_SERVER, args, {
    cwd: dir,
    env: fakeLlamaEnv(opts.knobs ?? {}, opts.env ?? process.env),
    stdio: [opts.stdin ?? "ignore", "pipe", "pipe"],
  });
  let err = "";
  let out = "";
  const listeners = new Set<() => void>();
  child.stderr!.setEncoding("utf8");
  child.stdout!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => {
    err += d;
    for (const f of [...listeners]) f();
  });
  child.stdout!.on("data", (d: string) => {
    out += d;
    for (const f of [...listeners]) f();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      resolve({ code, signal });
      for (const f of [...listeners]) f();
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  const baseUrl = `http://127.0.0.1:${port}`;

  const waitForLine = (re: RegExp, timeoutMs = 10_000, stream: "stderr" | "stdout" = "stderr"): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const text = stream === "stderr" ? err : out;
        const line = text.split("\n").find((l) => re.test(l));
        if (line !== undefined) {
          cleanup();
          resolve(line);
          return true;
        }
        if (done) {
          cleanup();
          reject(new Error(`fake llama-server exited before printing ${re}; stderr:\n${err}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${re}; stderr:\n${err}`));
      }, timeoutMs);
      const listener = (): void => void check();
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      listeners.add(listener);
      check();
    });

  const handle: FakeLlamaProcess = {
    child,
    pid: child.pid ?? -1,
    port,
    baseUrl,
    model,
    dir,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitForLine,
    waitReady: async (timeoutMs = 10_000) => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        if (done) throw new Error(`fake llama-server exited before it was ready; stderr:\n${err}`);
        try {
          const r = await fetch(`${baseUrl}/health`);
          await r.arrayBuffer();
          if (r.status === 200) return;
        } catch {
          /* not listening yet */
        }
        if (Date.now() > end) throw new Error(`fake llama-server not ready after ${timeoutMs} ms; stderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    state: async () => {
      const r = await fetch(`${baseUrl}/__fake/state`);
      return (await r.json()) as FakeState;
    },
    kill: async () => {
      if (!done) {
        try {
          child.kill("SIGKILL");
        } catch {
          /* gone */
        }
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.waitReady !== false) {
    try {
      await handle.waitReady(opts.readyTimeoutMs);
    } catch (e) {
      await handle.kill();
      throw e;
    }
  }
  return handle;
}
