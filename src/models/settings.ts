/**
 * The settings, once: the per-model launch settings (config file entries, registry models) and the config file
 * (`<data dir>/config.yaml` or `--config`), as zod schemas. Everything else derives from them: the TypeScript
 * types, the JSON Schema published at schema/gglib-config.schema.json (`npm run schema` writes it; a unit test
 * checks it is current), the CLI's choices, and the one mapping from a model's settings to the ServerConfig that
 * launches it (`serverConfigOf`). The field schemas that a ServerConfig shares come from src/core/config.ts.
 *
 * ```yaml
 * # yaml-language-server: $schema=https://…/schema/gglib-config.schema.json
 * host: 127.0.0.1
 * port: 8080
 * modelsDir: ~/models
 * maxModels: 2
 * memoryBudget: auto          # or 24GiB
 * ttl: 900                    # seconds idle before unload (0 = never)
 * apiKeys: [sk-local-1]
 * defaultModel: qwen
 * models:
 *   qwen:
 *     path: ./qwen3-4b-q4_k_m.gguf
 *     aliases: [gpt-4o-mini]
 *     ctx: 8192
 *     gpuLayers: -1
 *     reasoningFormat: deepseek
 *     pinned: true
 *     preload: true
 *   big:
 *     path: ./llama-70b-q4_k_m.gguf
 *     rpc: lab                # or a list: [192.168.1.20:50052, 192.168.1.21:50052]
 * rpcGroups:
 *   lab: [192.168.1.20:50052, 192.168.1.21:50052]
 * ```
 */
import { z } from "zod";
import { KvCacheTypeSchema, ReasoningFormatSchema, ServerConfigSchema, type ServerConfig } from "../core/config.js";
import { GglibError } from "../core/errors.js";
import { SIZE_PATTERN } from "../core/units.js";
import { endpointProblem } from "../rpc/endpoint.js";
import { PresetDefSchema, presetProblems } from "./presets.js";

const server = ServerConfigSchema.shape;

/**
 * Per-model launch settings. Every field is optional: unset means "the default" (the proxy's, the chat's…). The
 * descriptions are the JSON Schema's.
 */
export const ModelSettingsSchema = z.object({
  ctx: server.contextSize.describe("Context size in tokens (-c); 0 = the model's trained context."),
  gpuLayers: z.number().int().min(-1).optional().describe("Layers on the GPU (-ngl); -1 = all."),
  jinja: server.jinja.describe("Use the model's Jinja chat template (--jinja / --no-jinja)."),
  reasoningFormat: ReasoningFormatSchema.optional().describe("--reasoning-format"),
  parallel: server.parallel.describe("Slots (--parallel)."),
  cacheTypeK: KvCacheTypeSchema.optional(),
  cacheTypeV: KvCacheTypeSchema.optional(),
  swaFull: z
    .boolean()
    .optional()
    .describe(
      "--swa-full for sliding-window models (Gemma, gpt-oss): a full-size KV cache in those layers, which a restored context cache needs. Unset: the proxy turns it on when the context cache is on and the memory budget allows it.",
    ),
  extraArgs: z.array(z.string()).optional().describe("Passed to llama-server last, verbatim."),
  env: z.record(z.string(), z.string()).optional().describe("Extra environment for this model's llama-server."),
  ttl: z
    .number()
    .nonnegative()
    .optional()
    .describe("Unload after this many idle seconds (0 = never; unset = the global ttl)."),
  pinned: z.boolean().optional().describe("Never evicted to make room for another model."),
  preload: z.boolean().optional().describe("Loaded when the proxy starts."),
  rpc: z
    .union([z.array(z.string()).min(1), z.string().min(1)])
    .optional()
    .describe(
      "RPC workers that hold part of the model (llama-server --rpc): a list of host:port, each running `gglib rpc-server`, or the name of an rpcGroups entry.",
    ),
});

export type ModelSettings = z.infer<typeof ModelSettingsSchema>;

/** One model of the config file: where its files are, its other names, and its settings. */
export const ModelConfigSchema = z
  .object({
    path: z
      .string()
      .min(1)
      .describe(
        "A .gguf file (first shard of a split model) or a folder holding one model. Relative to the config file.",
      ),
    aliases: z.array(z.string().min(1)).optional().describe("Other names that resolve to this model."),
    mmproj: z.string().optional().describe("Multimodal projector file (--mmproj)."),
    ...ModelSettingsSchema.shape,
  })
  .strict();

/** An rpcGroups name (a model's `rpc` that is not a list names one). */
export const RPC_GROUP_NAME = /^[A-Za-z0-9_.-]+$/;

const Size = z.union([z.number().int().nonnegative(), z.string().regex(SIZE_PATTERN)]);

/** A peer's name: used in qualified model ids (`<peer>/<model>`), metrics labels and the dashboard. */
export const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Another host this proxy routes requests to: another `gglib proxy`, or any OpenAI-compatible server. */
export const PeerConfigSchema = z
  .object({
    url: z
      .string()
      .regex(/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/, "an http:// or https:// base URL, without ?query or #fragment")
      .describe(
        "Base URL of the peer (http://10.0.0.2:8080); requests go to <url><path>, e.g. <url>/v1/chat/completions.",
      ),
    apiKey: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The peer's API key, sent only to this peer. '${env.NAME}' reads it from the environment variable NAME.",
      ),
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name")
      .optional()
      .describe("Environment variable that holds the peer's API key (instead of apiKey)."),
    kind: z
      .enum(["auto", "gglib", "openai"])
      .optional()
      .describe(
        "gglib: another gglib proxy (models, states and free memory from /api/status); openai: any OpenAI-compatible server (models from /v1/models); auto (default): try gglib, else openai.",
      ),
    models: z
      .array(z.string().min(1))
      .optional()
      .describe("Only these of the peer's models (names as the peer calls them)."),
    filter: z.string().min(1).optional().describe("Only the peer's models whose name matches this regular expression."),
    timeouts: z
      .object({
        connect: z.number().positive().optional().describe("Seconds to open a connection (default 5)."),
        headers: z
          .number()
          .nonnegative()
          .optional()
          .describe("Seconds to the peer's response headers, 0 = none (default 0: a long prompt may take minutes)."),
        health: z
          .number()
          .positive()
          .optional()
          .describe("Seconds a discovery request (/api/status, /v1/models) may take (default 5)."),
      })
      .strict()
      .optional(),
    pollInterval: z
      .number()
      .positive()
      .optional()
      .describe("Seconds between discoveries of the peer's models and states (default 2)."),
    events: z
      .boolean()
      .optional()
      .describe(
        "Follow a gglib peer's /api/events so its state changes are seen at once (default true); false = poll only (e.g. behind a proxy that buffers SSE).",
      ),
  })
  .strict()
  .refine((p) => !(p.apiKey && p.apiKeyEnv), { message: "set apiKey or apiKeyEnv, not both" });

export type PeerConfig = z.infer<typeof PeerConfigSchema>;

/** The config file. */
export const ProxyConfigSchema = z
  .object({
    $schema: z.string().optional(),
    host: z.string().optional().describe("Address to bind (default 127.0.0.1)."),
    port: z.number().int().min(0).max(65535).optional().describe("Port (default 8080)."),
    modelsDir: z
      .string()
      .optional()
      .describe("Folder scanned for models: each *.gguf, or a subfolder holding shards and/or mmproj."),
    llamaServer: z.string().optional().describe("Path of the llama-server binary."),
    maxModels: z.number().int().positive().optional().describe("At most this many models resident at once."),
    memoryBudget: z
      .union([z.literal("auto"), Size])
      .optional()
      .describe("Memory the models may use: auto (free VRAM or RAM, minus headroom) or a size such as 24GiB."),
    ttl: z.number().nonnegative().optional().describe("Global idle seconds before a model is unloaded (0 = never)."),
    defaultModel: z.string().optional().describe("Model used when a request names none."),
    apiKeys: z.array(z.string().min(1)).optional().describe("Accepted as Authorization: Bearer <key> or x-api-key."),
    insecure: z.boolean().optional().describe("Allow a non-loopback bind without an API key."),
    corsOrigins: z
      .array(z.string())
      .optional()
      .describe("Origins allowed by CORS ('*' for any). CORS is off when unset."),
    bodyLimit: Size.optional().describe("Largest request body (default 32MiB)."),
    drainTimeout: z
      .number()
      .positive()
      .optional()
      .describe("Seconds a swap waits for requests in flight (default 120)."),
    loadTimeout: z.number().positive().optional().describe("Seconds a model may take to load (default 300)."),
    queueTimeout: z.number().positive().optional().describe("Seconds a request may wait for its model (default 300)."),
    maxQueue: z.number().int().positive().optional().describe("Requests waiting per model before 503 (default 64)."),
    contextCache: z
      .union([z.literal("auto"), z.literal(false), Size])
      .optional()
      .describe(
        "Disk budget for conversations' KV caches saved when a model stops and restored when it loads again: auto (a quarter of the free disk, at most 32GiB), a size such as 20GiB, or 0 / false to turn it off.",
      ),
    contextCacheSaveAll: z
      .boolean()
      .optional()
      .describe(
        "Save every conversation's KV cache at a stop, even a short one that the model prefills again faster than it is saved and restored (default false: those are not saved, which keeps swaps fast).",
      ),
    rpcGroups: z
      .record(z.string().regex(RPC_GROUP_NAME, "a group name is letters, digits, . _ -"), z.array(z.string()).min(1))
      .optional()
      .describe("Named lists of RPC workers (host:port) that a model's rpc setting may name."),
    models: z
      .record(z.string().regex(/^[^\s,]+$/, "a model name has no spaces or commas"), ModelConfigSchema)
      .optional(),
    presets: z
      .record(z.string().regex(/^[^\s,]+$/, "a preset name has no spaces or commas"), PresetDefSchema)
      .optional()
      .describe(
        "Variants of a model under their own names (sampling, thinking on/off, a system prompt): they run on the model's process; only the requests that name them are rewritten.",
      ),
    peers: z
      .record(z.string(), PeerConfigSchema)
      .superRefine((peers, ctx) => {
        for (const name of Object.keys(peers))
          if (!PEER_NAME.test(name))
            ctx.addIssue({
              code: "custom",
              path: [name],
              message: `'${name}' is not a peer name: letters, digits, '.', '_' or '-' (at most 63), no '/'`,
            });
      })
      .optional()
      .describe(
        "Other hosts to route requests to; their models are addressable as <peer>/<model>, or unqualified when unique.",
      ),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const [name, p] of Object.entries(config.presets ?? {}))
      for (const message of presetProblems(p)) ctx.addIssue({ code: "custom", path: ["presets", name], message });
    // RPC worker addresses and group names, with a message that says what is wrong where
    for (const [group, list] of Object.entries(config.rpcGroups ?? {}))
      list.forEach((ep, i) => {
        const problem = endpointProblem(ep);
        if (problem) ctx.addIssue({ code: "custom", path: ["rpcGroups", group, i], message: problem });
      });
    for (const [name, m] of Object.entries(config.models ?? {})) {
      if (m.rpc === undefined) continue;
      if (typeof m.rpc === "string") {
        if (!config.rpcGroups?.[m.rpc]) {
          const known = Object.keys(config.rpcGroups ?? {});
          ctx.addIssue({
            code: "custom",
            path: ["models", name, "rpc"],
            message: `no rpcGroups entry named "${m.rpc}"${known.length > 0 ? ` (defined: ${known.join(", ")})` : " (rpcGroups is empty)"}; give a list of host:port or define the group`,
          });
        }
        continue;
      }
      m.rpc.forEach((ep, i) => {
        const problem = endpointProblem(ep);
        if (problem) ctx.addIssue({ code: "custom", path: ["models", name, "rpc", i], message: problem });
      });
    }
  });

export type ModelConfig = z.infer<typeof ModelConfigSchema>;
export type ProxyConfigFile = z.infer<typeof ProxyConfigSchema>;

/** The JSON Schema published at schema/gglib-config.schema.json. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ProxyConfigSchema, { target: "draft-2020-12" }) as Record<string, unknown>;
  return {
    $id: "https://github.com/gglib/gglib-runtime/schema/gglib-config.schema.json",
    title: "gglib proxy configuration",
    ...schema,
  };
}

/**
 * Only the settings that follow the schema, without undefined keys: what the registry stores and returns (a value
 * of the wrong type, from an older or hand-edited database, is dropped rather than passed to llama-server).
 */
export function cleanSettings(s: Readonly<Record<string, unknown>>): ModelSettings {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(ModelSettingsSchema.shape)) {
    const v = s[key];
    if (v === undefined) continue;
    const r = field.safeParse(v);
    if (r.success && r.data !== undefined) out[key] = r.data;
  }
  if (Array.isArray(out.extraArgs) && out.extraArgs.length === 0) delete out.extraArgs;
  return out;
}

/** A model as the launch mapping needs it: its name, files and settings (a ModelEntry is one). */
export interface LaunchableModel {
  name: string;
  /** The .gguf to pass to `-m` (the first shard). */
  path: string;
  mmproj?: string;
  settings: ModelSettings;
}

/**
 * The one mapping from a model's settings to the ServerConfig that launches it, used by the proxy, the chat,
 * `gglib serve` and `gglib models fit`. `--mmproj` goes before the model's own extra args (they come last,
 * verbatim); `leadingArgs` (e.g. the proxy's `-lv 4`) go first.
 */
export function serverConfigOf(model: LaunchableModel, leadingArgs: readonly string[] = []): ServerConfig {
  const s = model.settings;
  const config: ServerConfig = { modelPath: model.path, modelName: model.name };
  if (s.ctx !== undefined) config.contextSize = s.ctx;
  if (s.gpuLayers !== undefined) config.gpuLayers = s.gpuLayers;
  if (s.jinja !== undefined) config.jinja = s.jinja;
  if (s.reasoningFormat !== undefined) config.reasoningFormat = s.reasoningFormat;
  if (s.parallel !== undefined) config.parallel = s.parallel;
  if (s.cacheTypeK !== undefined) config.cacheTypeK = s.cacheTypeK;
  if (s.cacheTypeV !== undefined) config.cacheTypeV = s.cacheTypeV;
  if (s.swaFull === true) config.swaFull = true;
  if (s.env !== undefined) config.env = { ...s.env };
  // a group name is resolved by whoever has the config (resolveRpcGroups); only a list reaches the launch
  if (Array.isArray(s.rpc) && s.rpc.length > 0) config.rpc = [...s.rpc];
  const own = s.extraArgs ?? [];
  const extraArgs = [...leadingArgs];
  if (model.mmproj && !own.includes("--mmproj")) extraArgs.push("--mmproj", model.mmproj);
  extraArgs.push(...own);
  if (extraArgs.length > 0) config.extraArgs = extraArgs;
  return config;
}

/**
 * A model's `rpc` as a list of workers: a list stays, a group name becomes the group's list. Undefined when the
 * model has no workers; throws GglibError("invalid_config") for a group that is not defined.
 */
export function resolveRpcGroups(
  rpc: ModelSettings["rpc"],
  groups: Readonly<Record<string, readonly string[]>> | undefined,
  model: string,
): string[] | undefined {
  if (rpc === undefined) return undefined;
  if (Array.isArray(rpc)) return [...rpc];
  const list = groups?.[rpc];
  if (!list) {
    throw new GglibError("invalid_config", `Model '${model}' names the RPC group "${rpc}", which is not defined.`, {
      hint: "Define it under rpcGroups in the config file (name: [host:port, ...]) or give the model a list of host:port.",
    });
  }
  return [...list];
}
