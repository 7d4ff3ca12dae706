import { stat } from "node:fs/promises";
import { join } from "node:path";
import { mkdir } from "node:fs/promises";
import {
  DEFAULT_BASE_PORT,
  DEFAULT_HOST,
  DEFAULT_LOG_LINES,
  DEFAULT_READY_TIMEOUT_MS,
  DEFAULT_STOP_GRACE_MS,
  type ServerConfig,
} from "../core/config.js";
import { GglibError, isGglibError } from "../core/errors.js";
import type { ServerEvent, ServerEventListener } from "../core/events.js";
import type { ServerHandle, ServerHealth } from "../core/handle.js";
import { paths } from "../core/paths.js";
import type { ProcessRunner, StartOptions, StopOptions } from "../core/ports.js";
import { buildServerArgs, childEnv, modelNameOf } from "../llama/args.js";
import { resolveLlamaServer } from "../llama/binary.js";
import { probeCapabilities, type LlamaCapabilities } from "../llama/capabilities.js";
import { HealthMonitor } from "../process/health-monitor.js";
import { findPdeathsigWrapper, ManagedServer, type ExitInfo } from "../process/managed-server.js";
import { removePidfile, sweepOrphans, writePidfile, type SweepResult } from "../process/pidfile.js";
import { findFreePort } from "../process/ports.js";

export interface RunnerOptions {
  /** llama-server to use; otherwise resolved (GGLIB_LLAMA_SERVER → configured → installed → PATH). */
  binaryPath?: string;
  /** Path from the user's settings, tried after GGLIB_LLAMA_SERVER. */
  configuredBinary?: string;
  /** At most this many servers at once (0 = no limit). Default 0. */
  maxServers?: number;
  /** First port tried when a config has no port (default 9000). */
  basePort?: number;
  /** Health check interval after ready (default 5000 ms; 0 disables the monitor). */
  healthIntervalMs?: number;
  /** SIGTERM → SIGKILL grace (default 10 000 ms). */
  stopGraceMs?: number;
  readyTimeoutMs?: number;
  /** Log lines kept per server (default 2000). */
  logLines?: number;
  /** Also append each server's output to <logDir>/<model>-<port>.log. */
  logDir?: string;
  /** Pidfiles folder (default <data dir>/pids); null disables pidfiles and the sweep. */
  pidsDir?: string | null;
  /** Kill orphans of earlier runs before the first start (default true). */
  sweepOrphans?: boolean;
  /** Use llama-server's child protocol when the binary has it (default true). */
  childProtocol?: boolean;
  /** Environment the children inherit (default process.env, minus LLAMA_ARG_*). */
  env?: NodeJS.ProcessEnv;
  /** Tries on another port when llama-server cannot bind the chosen one (default 5). */
  portRetries?: number;
}

interface Entry {
  server: ManagedServer;
  config: ServerConfig;
  monitor?: HealthMonitor;
  stopping: boolean;
  /** The pidfile write, then (after exit) its removal: chained so a fast exit cannot leave a stale file. */
  pidfile: Promise<unknown>;
}

/**
 * The facade: start a llama-server for a ServerConfig, know when it is ready, watch it, stop it cleanly.
 * Children run in their own process group, die with us (child protocol stdin EOF, and the Linux parent-death
 * signal), and are recorded in pidfiles so a later run can sweep orphans.
 */
export class LlamaServerRunner implements ProcessRunner {
  private readonly opts: RunnerOptions;
  private readonly servers = new Map<string, Entry>();
  /** Recently exited servers, kept for their logs and exit status (bounded). */
  private readonly exited = new Map<string, Entry>();
  private readonly listeners = new Set<ServerEventListener>();
  private readonly reservedPorts = new Set<number>();
  private binary?: Promise<{ path: string; caps: LlamaCapabilities }>;
  private swept?: Promise<SweepResult | undefined>;
  private seq = 0;
  private readonly pdeathsig = findPdeathsigWrapper();

  constructor(opts: RunnerOptions = {}) {
    this.opts = opts;
  }

  /** The binary and what it supports (resolved once). */
  binaryInfo(): Promise<{ path: string; caps: LlamaCapabilities }> {
    this.binary ??= (async () => {
      const path =
        this.opts.binaryPath ??
        (await resolveLlamaServer({ configured: this.opts.configuredBinary, env: this.opts.env })).path;
      const caps = await probeCapabilities(path);
      return { path, caps };
    })();
    this.binary.catch(() => (this.binary = undefined));
    return this.binary;
  }

  /** Sweeps orphans of earlier runs (once). */
  sweep(): Promise<SweepResult | undefined> {
    const dir = this.pidsDir();
    if (!dir || this.opts.sweepOrphans === false) return Promise.resolve(undefined);
    this.swept ??= sweepOrphans(dir).catch(() => undefined);
    return this.swept;
  }

  private pidsDir(): string | null {
    return this.opts.pidsDir === undefined ? paths.pidsDir(this.opts.env) : this.opts.pidsDir;
  }

  on(listener: ServerEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: ServerEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a listener's bug must not break supervision */
      }
    }
  }

  async start(config: ServerConfig, options: StartOptions = {}): Promise<ServerHandle> {
    const max = this.opts.maxServers ?? 0;
    const live = [...this.servers.values()].filter((e) => !e.server.hasExited()).length;
    if (max > 0 && live >= max) {
      throw new GglibError("too_many_servers", `Maximum concurrent servers (${max}) reached.`, {
        hint: "Stop a running server first, or raise the limit.",
      });
    }
    try {
      const st = await stat(config.modelPath);
      if (!st.isFile()) throw new Error("not a file");
    } catch {
      throw new GglibError("model_not_found", `Model file not found: ${config.modelPath}`, {
        modelPath: config.modelPath,
        hint: "Check the path (it is resolved from the current folder), or add the model with `gglib models add`.",
      });
    }
    const { path: binaryPath, caps } = await this.binaryInfo();
    await this.sweep();
    const host = config.host ?? DEFAULT_HOST;
    const explicitPort = config.port;
    const retries = explicitPort !== undefined ? 1 : Math.max(1, this.opts.portRetries ?? 5);
    const badPorts = new Set<number>();
    let lastError: unknown;
    for (let attempt = 0; attempt < retries; attempt++) {
      if (options.signal?.aborted)
        throw new GglibError("not_running", `Start of ${modelNameOf(config)} was cancelled.`);
      const port =
        explicitPort ??
        (await findFreePort(config.basePort ?? this.opts.basePort ?? DEFAULT_BASE_PORT, {
          host,
          exclude: new Set([...this.reservedPorts, ...badPorts]),
        }));
      try {
        return await this.startOnPort(config, port, binaryPath, caps, options);
      } catch (e) {
        lastError = e;
        if (isGglibError(e, "port_in_use") && explicitPort === undefined) {
          badPorts.add(port); // someone took it between our check and llama-server's bind: try the next one
          continue;
        }
        throw e;
      }
    }
    throw lastError;
  }

  private async startOnPort(
    config: ServerConfig,
    port: number,
    binaryPath: string,
    caps: LlamaCapabilities,
    options: StartOptions,
  ): Promise<ServerHandle> {
    const model = modelNameOf(config);
    const args = buildServerArgs(config, port, caps);
    const useChild = (this.opts.childProtocol ?? true) && caps.childProtocol;
    const id = `${model}@${port}#${++this.seq}`;
    let logFile: string | undefined;
    if (this.opts.logDir) {
      await mkdir(this.opts.logDir, { recursive: true });
      logFile = join(this.opts.logDir, `${model}-${port}.log`);
    }
    this.reservedPorts.add(port);
    // assigned right after the server exists; the exit callback reads it later
    // eslint-disable-next-line prefer-const
    let entry: Entry | undefined;
    const server = new ManagedServer(
      {
        id,
        model,
        modelPath: config.modelPath,
        binaryPath,
        args,
        host: config.host ?? DEFAULT_HOST,
        port,
        env: childEnv(this.opts.env ?? process.env, config.env, useChild ? port : undefined),
        childProtocol: useChild,
        logLines: this.opts.logLines ?? DEFAULT_LOG_LINES,
        logFile,
        pdeathsigWrapper: this.pdeathsig,
      },
      {
        onLog: (line, stream) => this.emit({ type: "log", handle: server.handle, line, stream }),
        onProgress: (progress) => {
          options.onProgress?.(progress);
          this.emit({ type: "progress", handle: server.handle, progress, at: Date.now() });
        },
        onExit: (exit) => this.onExit(server, entry, exit),
      },
    );
    const pids = this.pidsDir();
    entry = {
      server,
      config,
      stopping: false,
      pidfile:
        pids && server.pid > 0
          ? writePidfile(pids, id, {
              pid: server.pid,
              port,
              binaryPath,
              model,
              modelPath: config.modelPath,
              startedAt: server.handle.startedAt,
              ownerPid: process.pid,
            }).catch(() => undefined)
          : Promise.resolve(),
    };
    this.servers.set(id, entry);
    this.emit({ type: "spawned", handle: server.handle, at: Date.now() });
    try {
      await server.waitReady({
        timeoutMs: options.readyTimeoutMs ?? this.opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
        signal: options.signal,
      });
    } catch (e) {
      // never leave a half-started process behind
      entry.stopping = true;
      await server.stop({ graceMs: 2000, reapMs: 2000 });
      await server.exited;
      await entry.pidfile;
      throw e;
    }
    this.emit({ type: "ready", handle: server.handle, loadMs: server.loadMs ?? 0, at: Date.now() });
    const interval = this.opts.healthIntervalMs ?? 5000;
    if (interval > 0 && !server.hasExited()) {
      entry.monitor = new HealthMonitor(
        () => server.checkHealth(),
        (status) => {
          server.health = status;
          this.emit({ type: "health", handle: server.handle, status, at: Date.now() });
        },
        interval,
        { status: "healthy" },
        { progress: options.activity },
      );
      entry.monitor.start();
    }
    return server.handle;
  }

  private onExit(server: ManagedServer, entry: Entry | undefined, exit: ExitInfo): void {
    entry?.monitor?.report({ status: "exited", exitCode: exit.code, signal: exit.signal });
    entry?.monitor?.stop();
    this.reservedPorts.delete(server.handle.port);
    this.servers.delete(server.handle.id);
    if (entry) {
      this.exited.set(server.handle.id, entry);
      if (this.exited.size > 32) this.exited.delete(this.exited.keys().next().value!);
    }
    const pids = this.pidsDir();
    if (entry && pids)
      entry.pidfile = entry.pidfile.then(() => removePidfile(pids, server.handle.id)).catch(() => undefined);
    this.emit({
      type: "exited",
      handle: server.handle,
      exitCode: exit.code,
      signal: exit.signal,
      expected: entry?.stopping ?? false,
      at: exit.at,
    });
  }

  private entry(h: ServerHandle | string): Entry | undefined {
    return this.servers.get(typeof h === "string" ? h : h.id);
  }

  /** A running or recently exited server. */
  private anyEntry(h: ServerHandle | string): Entry | undefined {
    const id = typeof h === "string" ? h : h.id;
    return this.servers.get(id) ?? this.exited.get(id);
  }

  async stop(handle: ServerHandle | string, options: StopOptions = {}): Promise<void> {
    const e = this.entry(handle);
    if (!e) return; // already gone: stopping is idempotent
    e.stopping = true;
    e.monitor?.stop();
    this.emit({ type: "stopping", handle: e.server.handle, at: Date.now() });
    const outcome = await e.server.stop({
      graceMs: options.graceMs ?? this.opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      reapMs: 2000,
    });
    if (outcome === "stuck") {
      throw new GglibError(
        "stop_failed",
        `llama-server pid ${e.server.pid} (${e.server.handle.model}) did not exit after SIGKILL.`,
        {
          hint: "It may be stuck in the kernel (a GPU driver call). Check it with `ps` and end it by hand.",
          logTail: e.server.logs.tail(10),
        },
      );
    }
    await e.server.exited;
    await e.pidfile;
  }

  isRunning(handle: ServerHandle | string): boolean {
    const e = this.entry(handle);
    return e !== undefined && !e.server.hasExited();
  }

  async health(handle: ServerHandle | string): Promise<ServerHealth> {
    const e = this.entry(handle);
    if (!e) return { status: { status: "exited", exitCode: null, signal: null }, checkedAt: Date.now() };
    return { status: await e.server.checkHealth(), checkedAt: Date.now() };
  }

  listRunning(): ServerHandle[] {
    return [...this.servers.values()].filter((e) => !e.server.hasExited()).map((e) => e.server.handle);
  }

  logs(handle: ServerHandle | string, lines?: number): string[] {
    return this.anyEntry(handle)?.server.logs.tail(lines) ?? [];
  }

  async stopAll(options: StopOptions = {}): Promise<void> {
    const results = await Promise.allSettled([...this.servers.keys()].map((id) => this.stop(id, options)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }
}
