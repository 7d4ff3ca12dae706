/**
 * What the caller wants llama-server to run. Intent only: no ports chosen, no argv. The argument builder
 * (src/llama/args.ts) turns it into a command line; the supervisor picks the port.
 */
export type ReasoningFormat = "none" | "deepseek" | "deepseek-legacy" | "auto";
export type KvCacheType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_1" | "iq4_nl" | "q5_0" | "q5_1";
export type FlashAttention = "on" | "off" | "auto";

export interface ServerConfig {
  /** Path of the model's .gguf file (the first shard for split models). */
  modelPath: string;
  /** Name the server reports (`--alias`) and that clients use. Defaults to the file stem. */
  modelName?: string;
  /** Use exactly this port. Otherwise one is taken from `basePort` upward. */
  port?: number;
  /** First port tried when `port` is not set (default 9000). */
  basePort?: number;
  /** Host to bind; default 127.0.0.1. */
  host?: string;
  /** `-c`: context size in tokens (0 = the model's trained context). */
  contextSize?: number;
  /** `-ngl`: layers on the GPU: a count, "auto" (llama.cpp's default) or "all". */
  gpuLayers?: number | "auto" | "all";
  /** `--jinja` / `--no-jinja`. Undefined leaves llama-server's default (on). */
  jinja?: boolean;
  reasoningFormat?: ReasoningFormat;
  /** `--reasoning-budget`: -1 unrestricted, 0 no thinking. */
  reasoningBudget?: number;
  flashAttention?: FlashAttention;
  /** `--parallel`: number of slots. */
  parallel?: number;
  cacheTypeK?: KvCacheType;
  cacheTypeV?: KvCacheType;
  embeddings?: boolean;
  mlock?: boolean;
  /** `--metrics` (default true: the proxy reads them). */
  metrics?: boolean;
  /** `--slot-save-path`: the folder slot saves and restores use (an existing directory). */
  slotSavePath?: string;
  /** false: `--no-cache-idle-slots` (idle slots keep their KV cache); true: `--cache-idle-slots`. */
  cacheIdleSlots?: boolean;
  /** Passed last, verbatim. */
  extraArgs?: readonly string[];
  /** Extra environment for the process. */
  env?: Readonly<Record<string, string>>;
}

export const DEFAULT_BASE_PORT = 9000;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_READY_TIMEOUT_MS = 120_000;
export const DEFAULT_STOP_GRACE_MS = 10_000;
export const DEFAULT_LOG_LINES = 2000;
