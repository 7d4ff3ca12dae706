/**
 * Typed errors. Every error a user can see says what happened, why, and what to do next; `kind` lets code
 * branch without parsing messages.
 */
export type ErrorKind =
  | "binary_not_found"
  | "binary_not_executable"
  | "model_not_found"
  | "invalid_config"
  | "unsupported_flag"
  | "port_in_use"
  | "no_free_port"
  | "exited_during_load"
  | "ready_timeout"
  | "too_many_servers"
  | "not_running"
  | "stop_failed"
  | "build_failed"
  /** Hugging Face: a private or gated repo without (or with a refused) token. */
  | "hub_auth"
  /** Hugging Face: no such repo, revision or file. */
  | "hub_not_found"
  /** A download failed after its retries (network, server error). */
  | "download_failed"
  /** A downloaded file does not match the hub's SHA-256. */
  | "checksum_mismatch"
  /** An RPC worker of a model does not answer, is busy or has no room for its share. */
  | "rpc_worker_unavailable"
  /** An error answered to an HTTP client (HttpError). */
  | "http_error"
  | "internal";

export interface GglibErrorDetails {
  /** llama-server's last log lines, oldest first. */
  logTail?: readonly string[];
  exitCode?: number | null;
  signal?: string | null;
  port?: number;
  modelPath?: string;
  binaryPath?: string;
  /** What to do about it. */
  hint?: string;
}

export class GglibError extends Error {
  readonly kind: ErrorKind;
  readonly details: GglibErrorDetails;

  constructor(kind: ErrorKind, message: string, details: GglibErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GglibError";
    this.kind = kind;
    this.details = details;
  }

  /** The message, the hint and the log tail, for a terminal. */
  describe(): string {
    const parts = [this.message];
    if (this.details.hint) parts.push(this.details.hint);
    if (this.details.logTail && this.details.logTail.length > 0) {
      parts.push("Last lines of llama-server's log:\n" + this.details.logTail.map((l) => "  " + l).join("\n"));
    }
    return parts.join("\n");
  }
}

/**
 * An error answered to an HTTP client: the status, a machine-readable code, the message and an optional
 * Retry-After. Each API writes it in its own shape (the proxy's OpenAI one: src/proxy/http/errors.ts).
 */
export class HttpError extends GglibError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterS?: number,
  ) {
    super("http_error", message);
    this.name = "HttpError";
  }
}

export function isGglibError(e: unknown, kind?: ErrorKind): e is GglibError {
  return e instanceof GglibError && (kind === undefined || e.kind === kind);
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
