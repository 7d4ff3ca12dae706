/**
 * What the caller wants llama-server to run. Intent only: no ports chosen, no argv. The argument builder
 * (src/llama/args.ts) turns it into a command line; the supervisor picks the port.
 *
 * The zod schema below is the one source of these settings: `ServerConfig` is inferred from it, the per-model
 * settings of the config file and the registry (src/models/settings.ts) reuse its field schemas, and the CLI's
 * choices (reasoning formats, cache types) are its enums.
 */
import { z } from "zod";

export const REASONING_FORMATS = ["none", "deepseek", "deepseek-legacy", "auto"] as const;
export const KV_CACHE_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"] as const;
export const FLASH_ATTENTION_MODES = ["on", "off", "auto"] as const;

export const ReasoningFormatSchema = z.enum(REASONING_FORMATS);
export const KvCacheTypeSchema = z.enum(KV_CACHE_TYPES);
export const FlashAttentionSchema = z.enum(FLASH_ATTENTION_MODES);

export type ReasoningFormat = z.infer<typeof ReasoningFormatSchema>;
export type KvCacheType = z.infer<typeof KvCacheTypeSchema>;
export type FlashAttention = z.infer<typeof FlashAttentionSchema>;

export const ServerConfigSchema = z.object({
  /** Path of the model's .gguf file (the first shard for split models). */
  modelPath: z.string().min(1),
  /** Name the server reports (`--alias`) and that clients use. Defaults to the file stem. */
  modelName: z.string().optional(),
  /** Use exactly this port. Otherwise one is taken from `basePort` upward. */
  port: z.number().int().min(1).max(65535).optional(),
  /** First port tried when `port` is not set (default 9000). */
  basePort: z.number().int().min(1).max(65535).optional(),
  /** Host to bind; default 127.0.0.1. */
  host: z.string().optional(),
  /** `-c`: context size in tokens (0 = the model's trained context). */
  contextSize: z.number().int().nonnegative().optional(),
  /** `-ngl`: layers on the GPU: a count (-1 = all), "auto" (llama.cpp's default) or "all". */
  gpuLayers: z.union([z.number().int().min(-1), z.literal("auto"), z.literal("all")]).optional(),
  /** `--jinja` / `--no-jinja`. Undefined leaves llama-server's default (on). */
  jinja: z.boolean().optional(),
  /** `--reasoning-format`. */
  reasoningFormat: ReasoningFormatSchema.optional(),
  /** `--reasoning-budget`: -1 unrestricted, 0 no thinking. */
  reasoningBudget: z.number().int().min(-1).optional(),
  /** `-fa`. */
  flashAttention: FlashAttentionSchema.optional(),
  /** `--parallel`: number of slots. */
  parallel: z.number().int().positive().optional(),
  /** `--cache-type-k`. */
  cacheTypeK: KvCacheTypeSchema.optional(),
  /** `--cache-type-v`. */
  cacheTypeV: KvCacheTypeSchema.optional(),
  /** `--embeddings`. */
  embeddings: z.boolean().optional(),
  /** `--reranking`: a reranker (rank pooling) answers /v1/rerank, which `--embeddings` alone refuses. */
  reranking: z.boolean().optional(),
  /** `--mlock`. */
  mlock: z.boolean().optional(),
  /** `--metrics` (default true: the proxy reads them). */
  metrics: z.boolean().optional(),
  /** `--slot-save-path`: the folder slot saves and restores use (an existing directory). */
  slotSavePath: z.string().optional(),
  /** false: `--no-cache-idle-slots` (idle slots keep their KV cache); true: `--cache-idle-slots`. */
  cacheIdleSlots: z.boolean().optional(),
  /** `--swa-full`: sliding-window layers keep a full-size KV cache (a restored context cache needs it). */
  swaFull: z.boolean().optional(),
  /** `--rpc`: RPC workers (`host:port`, each running llama.cpp's rpc-server) that hold the offloaded layers. */
  rpc: z.array(z.string()).readonly().optional(),
  /** Passed last, verbatim. */
  extraArgs: z.array(z.string()).readonly().optional(),
  /** Extra environment for the process. */
  env: z.record(z.string(), z.string()).readonly().optional(),
});

export type ServerConfig = z.infer<typeof ServerConfigSchema>;

export const DEFAULT_BASE_PORT = 9000;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_READY_TIMEOUT_MS = 120_000;
export const DEFAULT_STOP_GRACE_MS = 10_000;
export const DEFAULT_LOG_LINES = 2000;
