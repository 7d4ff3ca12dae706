import type { ServerConfig } from "./config.js";
import type { ServerEventListener } from "./events.js";
import type { LoadProgress, ServerHandle, ServerHealth } from "./handle.js";

/** Options for one start. */
export interface StartOptions {
  /** Abort the start (the process is stopped). */
  signal?: AbortSignal;
  /** Deadline for readiness in ms (default 120 000). */
  readyTimeoutMs?: number;
  /** Load progress (0..1) from llama-server's child protocol, when the binary supports it. */
  onProgress?: (progress: LoadProgress) => void;
  /**
   * A counter that grows while the server makes progress on its requests (the proxy: bytes received from it on its
   * open requests). The health monitor reads it: failed checks with progress in between are a busy server, not a
   * hung one.
   */
  activity?: () => number;
}

export interface StopOptions {
  /** SIGTERM → SIGKILL grace in ms (default 10 000). */
  graceMs?: number;
}

/** What a llama-server binary can do, read from its `--version` and `--help` (src/llama/capabilities.ts). */
export interface LlamaCapabilities {
  binaryPath: string;
  /** `0.4.0-dev (build 1, commit 80fb11a)` */
  version?: string;
  build?: number;
  commit?: string;
  /** "built with GNU 12.2.0 for Linux x86_64" */
  builtWith?: string;
  /** Backends named in the version text or help (cpu, cuda, vulkan, metal, ...), best effort. */
  backend: string;
  /** Every flag spelling that --help lists, e.g. "-c", "--ctx-size", "--no-jinja". */
  flags: Set<string>;
  /** Router mode and its child protocol (LLAMA_SERVER_ROUTER_PORT). */
  childProtocol: boolean;
  /**
   * Slot files keep the context checkpoints (our llama.cpp patch, src/llama/install/patches.ts), so a restored
   * hybrid/recurrent model can roll back to an earlier prefix. Absent: no (an unpatched or prebuilt llama-server).
   */
  slotCheckpoints?: boolean;
}

/** The llama-server binary a runner starts: where it is and what it can do. */
export interface RunnerBinary {
  path: string;
  caps: LlamaCapabilities;
}

/** What the sweep of an earlier run's orphans did. */
export interface OrphanSweep {
  /** The llama-servers it ended. */
  killed: ReadonlyArray<{ pid: number; model: string }>;
  /** Stale pidfiles deleted. */
  removed: number;
  /** Owned by another live gglib process: left alone. */
  skipped: number;
}

/**
 * The process machinery behind the runner, the controller and the proxy: start llama-server for a config, stop it,
 * observe it; and what startProxy needs beside that: the sweep of orphans an earlier run left (before the memory
 * budget is read) and the binary's identity (the dashboard shows it; the context cache keys saved state by it).
 */
export interface ProcessRunner {
  start(config: ServerConfig, options?: StartOptions): Promise<ServerHandle>;
  stop(handle: ServerHandle | string, options?: StopOptions): Promise<void>;
  isRunning(handle: ServerHandle | string): boolean;
  health(handle: ServerHandle | string): Promise<ServerHealth>;
  listRunning(): ServerHandle[];
  /** Last log lines of a server (oldest first). */
  logs(handle: ServerHandle | string, lines?: number): string[];
  on(listener: ServerEventListener): () => void;
  /** Stop everything (used at exit). */
  stopAll(options?: StopOptions): Promise<void>;
  /** Ends llama-servers orphaned by an earlier run (once; later calls give the first result); undefined: none to sweep. */
  sweep(): Promise<OrphanSweep | undefined>;
  /** The binary it starts (probed once); rejects with the reason when there is none. */
  binaryInfo(): Promise<RunnerBinary>;
}
