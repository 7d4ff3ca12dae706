/**
 * An in-memory ProcessRunner (src/core/ports.ts) for tests of the proxy's controller and of startProxy: no
 * processes. Every start and stop is recorded; a test decides how each one ends (ready at once or held open,
 * failed, a stop that survives SIGKILL) and makes the "processes" crash, hang, print log lines or finally exit.
 * Its "processes" answer no HTTP unless the test gives each one an upstream (`upstream`: an in-process server
 * standing in for llama-server); the binary it reports (`binary`) and its orphan sweep (`orphans`) are the test's.
 */
import { GglibError } from "../../src/core/errors.js";
import type { ServerConfig } from "../../src/core/config.js";
import type { ServerEvent, ServerEventListener } from "../../src/core/events.js";
import type { ServerHandle, ServerHealth } from "../../src/core/handle.js";
import { fileURLToPath } from "node:url";
import type { OrphanSweep, ProcessRunner, RunnerBinary, StartOptions, StopOptions } from "../../src/core/ports.js";

/** What answers a fake process's HTTP (its handle's url); closed when the process exits. */
export interface FakeUpstream {
  url: string;
  close(): void;
}

interface Proc {
  handle: ServerHandle;
  upstream?: FakeUpstream;
  /** A stop was asked for (its exit is expected). */
  stopping: boolean;
  logs: string[];
  /** The start's options (the progress counter the health monitor would read: `activity`). */
  options: StartOptions;
}

interface HeldStart {
  model: string;
  options: StartOptions;
  /** The process is ready. `evenIfAborted`: the start wins a race with its abort (the process is up). */
  ready(evenIfAborted?: boolean): void;
  fail(error: Error): void;
}

/** Fake processes' pids start here: above any pid Linux hands out (pid_max is at most 4,194,304). */
export const FAKE_PID_BASE = 4_200_000;

export class FakeRunner implements ProcessRunner {
  /** The configs started, in order. */
  readonly starts: ServerConfig[] = [];
  /** The handles stopped, in order (successful or not). */
  readonly stops: ServerHandle[] = [];
  /** Models whose starts are held until the test calls ready()/fail() on them (see `held`); a held start ignores its abort signal: the test plays the runner. */
  readonly holdStarts = new Set<string>();
  /** Starts waiting for the test. */
  readonly held: HeldStart[] = [];
  /** Models whose next start fails with this error. */
  readonly startFailures = new Map<string, Error>();
  /** Models whose stops fail the way a process stuck in the kernel does: it survives SIGKILL. */
  readonly stuckOnStop = new Set<string>();
  /** Models whose stops take until the test calls one of `heldStops` (the process is dying: still alive until then). */
  readonly holdStops = new Set<string>();
  readonly heldStops: (() => void)[] = [];
  /** Serves each started process's HTTP (called before the start, with its config); none: nothing answers. */
  upstream?: (config: ServerConfig) => Promise<FakeUpstream>;
  /**
   * The binary binaryInfo() reports: by default an existing file (this one) that lists no flags, so the context
   * cache turns itself off for every model ("no --slot-save-path"); a test that wants the cache sets the flags.
   */
  binary: RunnerBinary = {
    path: fileURLToPath(import.meta.url),
    caps: { binaryPath: fileURLToPath(import.meta.url), backend: "cpu", flags: new Set(), childProtocol: false },
  };
  /** What sweep() reports (an earlier run's orphans it ended); undefined: nothing to sweep. */
  orphans: OrphanSweep | undefined;
  private readonly procs = new Map<string, Proc>();
  private readonly listeners = new Set<ServerEventListener>();
  private seq = 0;
  private port = 9000;

  constructor(private readonly clock: () => number = Date.now) {}

  start(config: ServerConfig, options: StartOptions = {}): Promise<ServerHandle> {
    this.starts.push(config);
    if (!this.upstream) return this.launch(config, options);
    return this.upstream(config).then((u) => this.launch(config, options, u));
  }

  async sweep(): Promise<OrphanSweep | undefined> {
    return this.orphans;
  }

  async binaryInfo(): Promise<RunnerBinary> {
    return this.binary;
  }

  private launch(config: ServerConfig, options: StartOptions, upstream?: FakeUpstream): Promise<ServerHandle> {
    const model = config.modelName ?? config.modelPath;
    const port = upstream ? Number(new URL(upstream.url).port) : ++this.port;
    const handle: ServerHandle = {
      id: `${model}@${port}#${++this.seq}`,
      model,
      modelPath: config.modelPath,
      // above Linux's largest pid_max (2^22): never a real process whose RSS the controller would measure
      pid: FAKE_PID_BASE + this.seq,
      port,
      url: upstream?.url ?? `http://127.0.0.1:${port}`,
      startedAt: this.clock(),
    };
    const proc: Proc = { handle, stopping: false, logs: [], options, ...(upstream ? { upstream } : {}) };
    this.procs.set(handle.id, proc);
    this.emit({ type: "spawned", handle, at: this.clock() });
    return new Promise<ServerHandle>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        this.procs.delete(handle.id);
        upstream?.close();
        reject(error);
      };
      const ready = (evenIfAborted = false) => {
        if (settled) return;
        if (options.signal?.aborted && !evenIfAborted) {
          fail(new GglibError("exited_during_load", `the start of ${model} was aborted`));
          return;
        }
        settled = true;
        this.emit({ type: "ready", handle, loadMs: 0, at: this.clock() });
        resolve(handle);
      };
      if (!this.holdStarts.has(model))
        options.signal?.addEventListener("abort", () => fail(new GglibError("exited_during_load", "aborted")), {
          once: true,
        });
      const failure = this.startFailures.get(model);
      if (failure) {
        this.startFailures.delete(model);
        queueMicrotask(() => fail(failure));
      } else if (this.holdStarts.has(model)) this.held.push({ model, options, ready, fail });
      else queueMicrotask(() => ready());
    });
  }

  async stop(h: ServerHandle | string, _options: StopOptions = {}): Promise<void> {
    const proc = this.proc(h);
    if (!proc) return;
    this.stops.push(proc.handle);
    proc.stopping = true;
    this.emit({ type: "stopping", handle: proc.handle, at: this.clock() });
    await Promise.resolve();
    if (this.holdStops.has(proc.handle.model)) await new Promise<void>((r) => this.heldStops.push(r));
    if (this.stuckOnStop.has(proc.handle.model)) {
      throw new GglibError(
        "stop_failed",
        `llama-server pid ${proc.handle.pid} (${proc.handle.model}) did not exit after SIGKILL.`,
        { hint: "It may be stuck in the kernel (a GPU driver call). Check it with `ps` and end it by hand." },
      );
    }
    this.exit(proc, 0, "SIGTERM");
  }

  /** The process exits on its own (a crash unless a stop was asked for, e.g. a stuck one finally going). */
  crash(model: string, signal = "SIGSEGV"): void {
    const proc = this.running(model);
    this.exit(proc, null, signal);
  }

  /** The health monitor finds the process not answering. */
  hang(model: string, reason = "timed out after 5000 ms"): void {
    const proc = this.running(model);
    this.emit({ type: "health", handle: proc.handle, status: { status: "unhealthy", reason }, at: this.clock() });
  }

  /** What the health monitor of the model's running process would read as its progress (StartOptions.activity). */
  activity(model: string): number | undefined {
    return this.running(model).options.activity?.();
  }

  /** The process prints a line. */
  print(model: string, line: string): void {
    const proc = this.running(model);
    proc.logs.push(line);
    this.emit({ type: "log", handle: proc.handle, line, stream: "stderr" });
  }

  /** The running process of a model (the last one started). */
  running(model: string): Proc {
    const all = [...this.procs.values()].filter((p) => p.handle.model === model);
    const proc = all[all.length - 1];
    if (!proc) throw new Error(`no process of ${model}`);
    return proc;
  }

  isRunning(h: ServerHandle | string): boolean {
    return this.proc(h) !== undefined;
  }

  async health(h: ServerHandle | string): Promise<ServerHealth> {
    const proc = this.proc(h);
    return {
      status: proc ? { status: "healthy" } : { status: "exited", exitCode: null, signal: null },
      checkedAt: this.clock(),
    };
  }

  listRunning(): ServerHandle[] {
    return [...this.procs.values()].map((p) => p.handle);
  }

  logs(h: ServerHandle | string, lines = 100): string[] {
    return (this.proc(h)?.logs ?? []).slice(-lines);
  }

  on(listener: ServerEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async stopAll(): Promise<void> {
    for (const p of [...this.procs.values()]) {
      p.stopping = true;
      this.exit(p, 0, "SIGTERM");
    }
  }

  private proc(h: ServerHandle | string): Proc | undefined {
    return this.procs.get(typeof h === "string" ? h : h.id);
  }

  private exit(proc: Proc, exitCode: number | null, signal: string | null): void {
    if (!this.procs.delete(proc.handle.id)) return;
    proc.upstream?.close();
    this.emit({ type: "exited", handle: proc.handle, exitCode, signal, expected: proc.stopping, at: this.clock() });
  }

  private emit(e: ServerEvent): void {
    for (const l of this.listeners) l(e);
  }
}
