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

/**
 * The process machinery behind the runner, the controller and the proxy: start llama-server for a config, stop it,
 * observe it. The orphan sweep and the binary's identity are not part of it: startProxy takes those from a
 * `LlamaServerRunner` only (with another runner it skips the sweep and turns the context cache off).
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
}
