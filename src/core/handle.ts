/** A running (or starting) llama-server as the outside world sees it. */
export interface ServerHandle {
  /** Unique per process start, e.g. `tiny-a@9001#3`. */
  readonly id: string;
  /** The model's name (alias). */
  readonly model: string;
  readonly modelPath: string;
  readonly pid: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Unix epoch milliseconds at spawn. */
  readonly startedAt: number;
}

export type ServerState = "starting" | "ready" | "stopping" | "exited";

export type HealthStatus =
  | { readonly status: "healthy" }
  | { readonly status: "loading" }
  | { readonly status: "unhealthy"; readonly reason: string }
  | { readonly status: "exited"; readonly exitCode: number | null; readonly signal: string | null };

export interface ServerHealth {
  readonly status: HealthStatus;
  /** Unix epoch ms of the check. */
  readonly checkedAt: number;
}

/** Load progress as the child protocol reports it (0..1). */
export interface LoadProgress {
  readonly stage: string;
  readonly stages: readonly string[];
  readonly value: number;
}
