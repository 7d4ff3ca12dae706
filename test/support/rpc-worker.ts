/**
 * llama.cpp's real rpc-server (built beside the rig's llama-server) as a test worker: started on a free port of a
 * host's address (loopback, or a test host of netns.ts), ready once it answers the protocol's handshake.
 *
 *   const w = await startRpcWorker({ host: net.hosts[1] });
 *   … rpc: [w.endpoint] …
 *   await w.stop();   // or w.kill() for a worker that disappears
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { probeWorker, type WorkerProbe } from "../../src/rpc/probe.js";
import { ensureLlamaServer } from "./llama-server.js";
import { GGLIB_BIN } from "./proxy-harness.js";
import type { TestHost } from "./netns.js";
import { running, waitFor } from "./procs.js";

/** The rig's rpc-server (beside its llama-server). */
export async function ensureRpcServer(): Promise<string> {
  const bin = join(dirname(await ensureLlamaServer()), "rpc-server");
  if (!existsSync(bin))
    throw new Error(
      `${bin} is missing: the rig was built before it built rpc-server (remove the rig's folder and rebuild)`,
    );
  return bin;
}

/** A port nobody listens on at `host` right now (the kernel's choice; free again when this returns). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => (a && typeof a === "object" ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

export interface RpcWorker {
  host: string;
  port: number;
  endpoint: string;
  child: ChildProcess;
  /** What the readiness probe saw (devices, free memory). */
  probe: Extract<WorkerProbe, { state: "ready" }>;
  /** Its output so far (rpc-server prints "Accepted client connection" / "Client connection closed"). */
  output(): string;
  /** SIGKILL: a worker that disappears. */
  kill(): void;
  /** Stops it and waits until it is gone. */
  stop(): Promise<void>;
}

/**
 * `via: "gglib"` runs it as a user does, through `gglib rpc-server` (bin/gglib.js; `kill()` then SIGKILLs the
 * rpc-server itself, `child` is the gglib process); otherwise the bare rpc-server binary.
 */
export async function startRpcWorker(
  opts: { host?: TestHost; port?: number; threads?: number; via?: "gglib" | "binary" } = {},
): Promise<RpcWorker> {
  if (opts.via === "gglib") return startGglibRpcWorker(opts);
  const bin = await ensureRpcServer();
  const ip = opts.host?.ip ?? "127.0.0.1";
  // in a namespace the test's own port check says nothing: pick a random high port there
  const port = opts.port ?? (opts.host?.ns ? 40_000 + Math.floor(Math.random() * 20_000) : await freePort(ip));
  const args = ["--host", ip, "--port", String(port), "--threads", String(opts.threads ?? 1)];
  const run = spawnCaptured(opts.host, bin, args);
  const { child } = run;
  const endpoint = `${ip}:${port}`;
  let probe: WorkerProbe | undefined;
  const ok = await waitFor(
    async () => {
      if (run.exited()) return true;
      probe = await probeWorker(
        { host: ip, port, text: endpoint },
        { connectTimeoutMs: 1_000, answerTimeoutMs: 1_000 },
      );
      return probe.state === "ready";
    },
    15_000,
    100,
  );
  if (!ok || run.exited() || probe?.state !== "ready") {
    child.kill("SIGKILL");
    throw new Error(
      `rpc-server on ${endpoint} did not start (${probe?.state ?? "no probe"}): ${run.out().slice(-500)}`,
    );
  }
  const w: RpcWorker = {
    host: ip,
    port,
    endpoint,
    child,
    probe,
    output: run.out,
    kill: () => {
      if (!run.exited()) child.kill("SIGKILL");
    },
    stop: async () => {
      if (!run.exited()) child.kill("SIGTERM");
      await waitFor(() => run.exited() || child.pid === undefined || !running(child.pid), 5_000);
      if (!run.exited()) child.kill("SIGKILL");
    },
  };
  return w;
}

async function startGglibRpcWorker(opts: { host?: TestHost; port?: number; threads?: number }): Promise<RpcWorker> {
  const llamaServer = await ensureLlamaServer();
  const ip = opts.host?.ip ?? "127.0.0.1";
  const port = opts.port ?? (opts.host?.ns ? 40_000 + Math.floor(Math.random() * 20_000) : await freePort(ip));
  const args = [
    GGLIB_BIN,
    "rpc-server",
    "--host",
    ip,
    "--port",
    String(port),
    "--threads",
    String(opts.threads ?? 1),
    "--json",
  ];
  const env = { ...process.env, GGLIB_LLAMA_SERVER: llamaServer };
  const run = spawnCaptured(opts.host, process.execPath, args, env);
  const { child } = run;
  const endpoint = `${ip}:${port}`;
  await waitFor(() => run.exited() || run.out().includes('"event":"ready"'), 30_000, 50);
  const line = run
    .out()
    .split("\n")
    .find((l) => l.includes('"event":"ready"'));
  if (!line || run.exited()) {
    child.kill("SIGKILL");
    throw new Error(`gglib rpc-server on ${endpoint} did not start: ${run.out().slice(-800)}`);
  }
  const ready = JSON.parse(line) as {
    pid: number;
    version: string;
    devices: { freeBytes: number; totalBytes: number }[];
  };
  const freeBytes = ready.devices.reduce((a, d) => a + d.freeBytes, 0);
  const totalBytes = ready.devices.reduce((a, d) => a + d.totalBytes, 0);
  return {
    host: ip,
    port,
    endpoint,
    child,
    probe: { state: "ready", endpoint, version: ready.version, devices: ready.devices, freeBytes, totalBytes },
    output: run.out,
    kill: () => {
      try {
        process.kill(ready.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    },
    stop: async () => {
      if (!run.exited()) child.kill("SIGTERM");
      await waitFor(() => run.exited(), 10_000);
      if (!run.exited()) child.kill("SIGKILL");
      try {
        process.kill(ready.pid, "SIGKILL");
      } catch {
        /* gone with gglib rpc-server */
      }
    },
  };
}

/** Starts `cmd` on `host` (or here), its stdout and stderr kept together. */
function spawnCaptured(
  host: TestHost | undefined,
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): { child: ChildProcess; out: () => string; exited: () => boolean } {
  const opts = { stdio: ["ignore", "pipe", "pipe"] as ("ignore" | "pipe")[], ...(env ? { env } : {}) };
  const child = host ? host.spawn(cmd, args, opts) : spawn(cmd, args, opts);
  let out = "";
  child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (out += b.toString()));
  let exited = false;
  child.on("exit", () => (exited = true));
  return { child, out: () => out, exited: () => exited };
}
