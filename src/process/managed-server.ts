import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, type WriteStream } from "node:fs";
import type { HealthStatus, LoadProgress, ServerHandle, ServerState } from "../core/handle.js";
import { GglibError } from "../core/errors.js";
import { LineSplitter } from "./lines.js";
import { EXIT_COMMAND, parseChildLine, type ReadyInfo } from "./child-protocol.js";
import { probeHealth } from "./http-probe.js";
import { failureReason, isBindFailure, isShutdownStarted } from "./llama-log.js";
import { LogBuffer } from "./log-buffer.js";
import { gracefulStop, type StopOutcome, type StopPlan } from "./terminate/graceful-stop.js";

/** Everything needed to spawn one llama-server. Built by the runner; no decisions are made here. */
export interface SpawnSpec {
  id: string;
  model: string;
  modelPath: string;
  binaryPath: string;
  args: readonly string[];
  host: string;
  port: number;
  env: NodeJS.ProcessEnv;
  /** Talk llama-server's child protocol (stdin pipe + state lines on stdout). */
  childProtocol: boolean;
  logLines: number;
  logFile?: string;
  /** Linux: run through `setpriv --pdeathsig SIGKILL` so the child dies with us even before it reads stdin. */
  pdeathsigWrapper?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
  /** spawn itself failed (ENOENT, EACCES) */
  spawnError?: Error;
}

export interface ManagedServerEvents {
  onLog?(line: string, stream: "stdout" | "stderr"): void;
  onProgress?(p: LoadProgress): void;
  onReady?(info: ReadyInfo | undefined): void;
  onExit?(exit: ExitInfo): void;
}

const SETPRIV_CANDIDATES = ["/usr/bin/setpriv", "/bin/setpriv"];
/** Path of util-linux's setpriv when present (Linux), for the parent-death signal. */
export function findPdeathsigWrapper(): string | undefined {
  if (process.platform !== "linux") return undefined;
  return SETPRIV_CANDIDATES.find((p) => existsSync(p));
}

/** One llama-server process: its output, its state, readiness and stop. */
export class ManagedServer {
  readonly handle: ServerHandle;
  readonly logs: LogBuffer;
  state: ServerState = "starting";
  exitInfo?: ExitInfo;
  readyInfo?: ReadyInfo;
  progress?: LoadProgress;
  health: HealthStatus = { status: "loading" };
  readonly exited: Promise<ExitInfo>;
  private readonly child: ChildProcess;
  private shutdownSeen = false;
  private bindFailed = false;
  private logStream?: WriteStream;
  private readyWaiters: (() => void)[] = [];
  private readyAt?: number;

  constructor(
    readonly spec: SpawnSpec,
    private readonly events: ManagedServerEvents = {},
  ) {
    this.logs = new LogBuffer(spec.logLines);
    if (spec.logFile) {
      this.logStream = createWriteStream(spec.logFile, { flags: "a" });
      this.logStream.on("error", () => (this.logStream = undefined));
    }
    const [cmd, argv] = spec.pdeathsigWrapper
      ? [spec.pdeathsigWrapper, ["--pdeathsig", "SIGKILL", "--", spec.binaryPath, ...spec.args]]
      : [spec.binaryPath, [...spec.args]];
    this.child = spawn(cmd, argv, {
      env: spec.env,
      stdio: [spec.childProtocol ? "pipe" : "ignore", "pipe", "pipe"],
      detached: process.platform !== "win32", // own process group: signals reach every thread and helper
      windowsHide: true,
    });
    const startedAt = Date.now();
    this.handle = Object.freeze({
      id: spec.id,
      model: spec.model,
      modelPath: spec.modelPath,
      pid: this.child.pid ?? -1,
      port: spec.port,
      url: `http://${spec.host.includes(":") ? `[${spec.host}]` : spec.host}:${spec.port}`,
      startedAt,
    });
    // a write to a child that died must not crash us
    this.child.stdin?.on("error", () => undefined);
    const out = new LineSplitter((l) => this.onStdout(l));
    const err = new LineSplitter((l) => this.onLine(l, "stderr"));
    this.child.stdout?.on("data", (d: Buffer) => out.push(d));
    this.child.stderr?.on("data", (d: Buffer) => err.push(d));
    this.exited = new Promise<ExitInfo>((resolve) => {
      let settled = false;
      const finish = (info: ExitInfo) => {
        if (settled) return;
        settled = true;
        out.end();
        err.end();
        this.exitInfo = info;
        this.state = "exited";
        this.health = { status: "exited", exitCode: info.code, signal: info.signal };
        this.logStream?.end();
        this.wakeReadyWaiters();
        this.events.onExit?.(info);
        resolve(info);
      };
      this.child.once("error", (e) => {
        // spawn failure (ENOENT/EACCES): there will be no 'exit'
        if (this.child.pid === undefined) finish({ code: null, signal: null, at: Date.now(), spawnError: e });
      });
      // 'close' waits for stdio to end: all log lines are in before we report the exit
      this.child.once("close", (code, signal) => finish({ code, signal, at: Date.now() }));
    });
  }

  get pid(): number {
    return this.handle.pid;
  }

  /** The state, read through a call so TypeScript does not narrow it across awaits. */
  currentState(): ServerState {
    return this.state;
  }

  hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** ms from spawn to ready, once ready. */
  get loadMs(): number | undefined {
    return this.readyAt !== undefined ? this.readyAt - this.handle.startedAt : undefined;
  }

  private onStdout(line: string): void {
    if (this.spec.childProtocol) {
      const msg = parseChildLine(line);
      if (msg?.kind === "loading") {
        this.progress = msg.progress;
        this.events.onProgress?.(msg.progress);
        return;
      }
      if (msg?.kind === "ready") {
        this.readyInfo = msg.info;
        this.markReady();
        return;
      }
      if (msg) return;
    }
    this.onLine(line, "stdout");
  }

  private onLine(line: string, stream: "stdout" | "stderr"): void {
    this.logs.push(line);
    this.logStream?.write(line + "\n");
    if (isShutdownStarted(line)) this.shutdownSeen = true;
    if (this.state === "starting" && isBindFailure(line)) this.bindFailed = true;
    this.events.onLog?.(line, stream);
  }

  private markReady(): void {
    if (this.state !== "starting") return;
    this.state = "ready";
    this.readyAt = Date.now();
    this.health = { status: "healthy" };
    this.events.onReady?.(this.readyInfo);
    this.wakeReadyWaiters();
  }

  private wakeReadyWaiters(): void {
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const f of w) f();
  }

  /**
   * Resolves when llama-server is ready: the child protocol's `ready` line, or (without it) GET /health = 200.
   * Rejects at once when the process exits (with its exit code, signal and last log lines), at the deadline, or
   * on abort. Does not stop the process: the caller decides.
   */
  async waitReady(opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    if (this.state === "ready") return;
    const deadline = this.handle.startedAt + opts.timeoutMs;
    let pollDelay = 15;
    let oddAnswers = 0;
    for (;;) {
      if (this.currentState() === "ready") return;
      if (this.exitInfo) throw this.loadFailure(this.exitInfo);
      if (this.currentState() === "stopping")
        throw new GglibError("not_running", `llama-server for ${this.spec.model} was stopped while loading.`);
      if (opts.signal?.aborted) {
        throw new GglibError("not_running", `Start of ${this.spec.model} was cancelled.`, { port: this.spec.port });
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new GglibError(
          "ready_timeout",
          `llama-server for ${this.spec.model} was not ready within ${Math.round(opts.timeoutMs / 1000)} s (port ${this.spec.port}).`,
          {
            port: this.spec.port,
            modelPath: this.spec.modelPath,
            logTail: this.logs.tail(15),
            hint: "A large model may need more time: raise the timeout (gglib serve --ready-timeout, gglib proxy --load-timeout). Its last log lines show what it was doing.",
          },
        );
      }
      // wait for: ready/exit (wakeReadyWaiters), the poll interval, the deadline, or abort
      const waitMs = this.spec.childProtocol ? left : Math.min(pollDelay, left);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, waitMs);
        const onAbort = () => done();
        opts.signal?.addEventListener("abort", onAbort, { once: true });
        this.readyWaiters.push(done);
        function done() {
          clearTimeout(t);
          opts.signal?.removeEventListener("abort", onAbort);
          resolve();
        }
      });
      if (!this.spec.childProtocol && this.currentState() === "starting" && !this.exitInfo) {
        const r = await probeHealth(this.handle.url, 2000);
        if (r.kind === "ok") this.markReady();
        else if (r.kind === "http-error" && (r.status === 404 || r.status === 403 || r.status === 401)) {
          // something else answers on this port
          if (++oddAnswers >= 3) {
            throw new GglibError(
              "port_in_use",
              `Port ${this.spec.port} answers ${r.status} to /health: another service seems to use it.`,
              {
                port: this.spec.port,
                hint: "Choose another port, or stop the service that holds it.",
              },
            );
          }
        }
        pollDelay = Math.min(250, Math.round(pollDelay * 1.5));
      }
    }
  }

  /** The error for a process that exited before it was ready. */
  loadFailure(exit: ExitInfo): GglibError {
    const tail = this.logs.tail(20);
    const base = {
      exitCode: exit.code,
      signal: exit.signal,
      port: this.spec.port,
      modelPath: this.spec.modelPath,
      binaryPath: this.spec.binaryPath,
      logTail: tail,
    };
    if (exit.spawnError) {
      const code = (exit.spawnError as NodeJS.ErrnoException).code;
      return new GglibError(
        code === "EACCES" ? "binary_not_executable" : "binary_not_found",
        `Could not start ${this.spec.binaryPath}: ${exit.spawnError.message}.`,
        {
          ...base,
          hint: "Install llama.cpp with `gglib llama install`, or set GGLIB_LLAMA_SERVER to a working llama-server.",
        },
      );
    }
    if (this.bindFailed) {
      return new GglibError(
        "port_in_use",
        `Port ${this.spec.port} on ${this.spec.host} is in use: llama-server could not bind it.`,
        {
          ...base,
          hint: "Choose another port, or stop what listens there.",
        },
      );
    }
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    const reason = failureReason(tail);
    return new GglibError(
      "exited_during_load",
      `llama-server exited while loading ${this.spec.modelPath} (${how})${reason ? `: ${reason}` : "."}`,
      { ...base, hint: hintFor(reason) },
    );
  }

  /** Writes the child protocol's exit command, when the child listens for it (after loading). */
  requestExit(): boolean {
    if (!this.spec.childProtocol || this.state === "starting" || !this.child.stdin || this.child.stdin.destroyed)
      return false;
    if (this.hasExited()) return false;
    try {
      this.child.stdin.write(EXIT_COMMAND);
      return true;
    } catch {
      return false;
    }
  }

  async stop(plan: StopPlan): Promise<StopOutcome> {
    if (this.hasExited()) return "already-exited";
    const wasStarting = this.state === "starting";
    this.state = "stopping";
    this.wakeReadyWaiters();
    return gracefulStop(
      {
        pid: this.pid,
        exited: this.exited,
        hasExited: () => this.hasExited(),
        // while loading, llama-server has no handlers yet and SIGTERM ends it at once (fixture 07g)
        requestExit: wasStarting ? undefined : () => this.requestExit(),
        shutdownStarted: () => this.shutdownSeen,
      },
      plan,
    );
  }

  /** One health check (used by the monitor). Exit is known without asking. */
  async checkHealth(timeoutMs = 2000): Promise<HealthStatus> {
    if (this.exitInfo) return { status: "exited", exitCode: this.exitInfo.code, signal: this.exitInfo.signal };
    const r = await probeHealth(this.handle.url, timeoutMs);
    if (this.exitInfo) {
      const e = this.exitInfo as ExitInfo;
      return { status: "exited", exitCode: e.code, signal: e.signal };
    }
    switch (r.kind) {
      case "ok":
        return { status: "healthy" };
      case "loading":
        return { status: "loading" };
      case "http-error":
        return { status: "unhealthy", reason: `GET /health answered ${r.status}` };
      case "unreachable":
        return { status: "unhealthy", reason: r.error };
    }
  }
}

function hintFor(reason: string | undefined): string {
  if (!reason) return "The log lines below show what llama-server did before it exited.";
  if (/failed to open GGUF file|No such file/.test(reason)) return "Check the model path.";
  if (/invalid magic/.test(reason))
    return "The file is not a GGUF model. Check the path, or convert the model to GGUF.";
  if (/failed to read|truncated|unexpected end|tensor data is not within/.test(reason)) {
    return "The model file looks truncated or corrupt: download or copy it again.";
  }
  if (/invalid argument|error while handling argument/.test(reason))
    return "A launch argument was rejected: check the model's extra args.";
  if (/out of memory|failed to allocate|cudaMalloc/i.test(reason))
    return "Not enough memory: lower the context size or GPU layers, or use a smaller quantization.";
  if (/unknown model architecture/.test(reason))
    return "This llama.cpp build does not know the model's architecture: update llama.cpp (`gglib llama update`).";
  return "The log lines below show what llama-server did before it exited.";
}
