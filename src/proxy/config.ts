/**
 * The proxy's YAML config: schema (zod; the JSON Schema in schema/gglib-config.schema.json is generated from it),
 * loading with clear errors, and merging with command-line flags (flags win over the file, the file over defaults).
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
 * ```
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { GglibError } from "../core/errors.js";

const Size = z.union([z.number().int().nonnegative(), z.string().regex(/^\s*\d+(\.\d+)?\s*[kKmMgGtT]?(i?[bB]?)\s*$/)]);

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
    ctx: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe("Context size in tokens (-c); 0 = the model's trained context."),
    gpuLayers: z.number().int().min(-1).optional().describe("Layers on the GPU (-ngl); -1 = all."),
    jinja: z.boolean().optional().describe("Use the model's Jinja chat template (--jinja / --no-jinja)."),
    reasoningFormat: z.enum(["none", "deepseek", "deepseek-legacy", "auto"]).optional().describe("--reasoning-format"),
    parallel: z.number().int().positive().optional().describe("Slots (--parallel)."),
    cacheTypeK: z.enum(["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]).optional(),
    cacheTypeV: z.enum(["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]).optional(),
    extraArgs: z.array(z.string()).optional().describe("Passed to llama-server last, verbatim."),
    env: z.record(z.string(), z.string()).optional().describe("Extra environment for this model's llama-server."),
    ttl: z
      .number()
      .nonnegative()
      .optional()
      .describe("Unload after this many idle seconds (0 = never; unset = the global ttl)."),
    pinned: z.boolean().optional().describe("Never evicted to make room for another model."),
    preload: z.boolean().optional().describe("Loaded when the proxy starts."),
  })
  .strict();

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
    models: z
      .record(z.string().regex(/^[^\s,]+$/, "a model name has no spaces or commas"), ModelConfigSchema)
      .optional(),
  })
  .strict();

export type ModelConfig = z.infer<typeof ModelConfigSchema>;
export type ProxyConfigFile = z.infer<typeof ProxyConfigSchema>;

export interface LoadedConfig {
  config: ProxyConfigFile;
  /** Folder relative paths resolve against. */
  baseDir: string;
  path: string;
}

/** The JSON Schema published at schema/gglib-config.schema.json. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ProxyConfigSchema, { target: "draft-2020-12" }) as Record<string, unknown>;
  return {
    $id: "https://github.com/gglib/gglib-runtime/schema/gglib-config.schema.json",
    title: "gglib proxy configuration",
    ...schema,
  };
}

export function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? resolve(homedir(), p.slice(2)) : p;
}

export function resolvePath(baseDir: string, p: string): string {
  const e = expandHome(p);
  return isAbsolute(e) ? e : resolve(baseDir, e);
}

/** Parses a config text. Throws GglibError("invalid_config") that names the file, the field and the problem. */
export function parseConfig(text: string, path: string): LoadedConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw new GglibError("invalid_config", `Config ${path} is not valid YAML: ${(e as Error).message}`, {
      hint: "Fix the syntax error at the position shown.",
    });
  }
  const r = ProxyConfigSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `  ${i.path.join(".") || "(top)"}: ${i.message}`).join("\n");
    throw new GglibError("invalid_config", `Config ${path} has invalid settings:\n${problems}`, {
      hint: "See schema/gglib-config.schema.json for every setting.",
    });
  }
  return { config: r.data, baseDir: dirname(resolve(path)), path: resolve(path) };
}

export function loadConfigFile(path: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new GglibError("invalid_config", `Cannot read config ${path}: ${(e as Error).message}`, {
      hint: "Check the path given to --config.",
    });
  }
  return parseConfig(text, path);
}
