import {
  DEFAULT_HOST,
  FLASH_ATTENTION_MODES,
  KV_CACHE_TYPES,
  REASONING_FORMATS,
  type ServerConfig,
} from "../core/config.js";
import { GglibError } from "../core/errors.js";
import { modelStem } from "../gguf/names.js";
import { endpointProblem } from "../rpc/endpoint.js";

/**
 * Pure: ServerConfig + port → llama-server argv. Values are validated; flags the probed binary does not list in
 * its --help are refused with a clear error instead of being passed blindly (llama-server exits with
 * `error: invalid argument`). Extra args go last, verbatim.
 */
export interface ArgCapabilities {
  flags: ReadonlySet<string>;
  version?: string;
}

const REASONING: readonly string[] = REASONING_FORMATS;
const CACHE_TYPES: readonly string[] = KV_CACHE_TYPES;
const FLASH: readonly string[] = FLASH_ATTENTION_MODES;

/** The name a server reports (`--alias`): the configured name, else the file stem (without shard suffix). */
export function modelNameOf(config: Pick<ServerConfig, "modelName" | "modelPath">): string {
  if (config.modelName) return config.modelName;
  return modelStem(config.modelPath);
}

function invalid(field: string, value: unknown, expected: string): never {
  throw new GglibError("invalid_config", `Invalid ${field}: ${JSON.stringify(value)}; expected ${expected}.`, {
    hint: `Fix ${field} in the model's settings.`,
  });
}

function int(field: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): string {
  if (!Number.isInteger(v) || v < min || v > max)
    invalid(field, v, `an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ""}`);
  return String(v);
}

export function buildServerArgs(config: ServerConfig, port: number, caps?: ArgCapabilities): string[] {
  if (!config.modelPath) invalid("modelPath", config.modelPath, "the path of a .gguf file");
  const name = modelNameOf(config);
  if (!name || /[,\s]/.test(name)) invalid("modelName", name, "a name without commas or spaces");
  const args: string[] = [];
  // each entry: the flag as we send it, then its value (if any)
  const add = (flag: string, value?: string) => {
    if (caps && !caps.flags.has(flag)) {
      throw new GglibError(
        "unsupported_flag",
        `This llama-server${caps.version ? ` (${caps.version})` : ""} does not support ${flag}.`,
        { hint: `Remove the setting that needs ${flag}, or update llama.cpp (\`gglib llama update\`).` },
      );
    }
    args.push(flag);
    if (value !== undefined) args.push(value);
  };
  add("-m", config.modelPath);
  add("--host", config.host ?? DEFAULT_HOST);
  add("--port", int("port", port, 1, 65535));
  add("--alias", name);
  if (config.metrics !== false) add("--metrics");
  if (config.contextSize !== undefined) add("-c", int("contextSize", config.contextSize, 0));
  if (config.gpuLayers !== undefined) {
    const g = config.gpuLayers;
    if (g === "auto" || g === "all") add("-ngl", g);
    else if (g === -1) add("-ngl", "all");
    else add("-ngl", int("gpuLayers", g, 0));
  }
  if (config.jinja === true) add("--jinja");
  else if (config.jinja === false) add("--no-jinja");
  if (config.reasoningFormat !== undefined) {
    if (!REASONING.includes(config.reasoningFormat))
      invalid("reasoningFormat", config.reasoningFormat, REASONING.join(" | "));
    add("--reasoning-format", config.reasoningFormat);
  }
  if (config.reasoningBudget !== undefined)
    add("--reasoning-budget", int("reasoningBudget", config.reasoningBudget, -1));
  if (config.flashAttention !== undefined) {
    if (!FLASH.includes(config.flashAttention)) invalid("flashAttention", config.flashAttention, FLASH.join(" | "));
    add("-fa", config.flashAttention);
  }
  if (config.parallel !== undefined) add("--parallel", int("parallel", config.parallel, 1, 256));
  // the proxy turns it on by itself (src/models/swa-full.ts): a binary from before --swa-full runs without it, and
  // the context cache, which needs it, skips the model with that reason
  if (config.swaFull === true && (!caps || caps.flags.has("--swa-full"))) add("--swa-full");
  if (config.cacheTypeK !== undefined) {
    if (!CACHE_TYPES.includes(config.cacheTypeK)) invalid("cacheTypeK", config.cacheTypeK, CACHE_TYPES.join(" | "));
    add("--cache-type-k", config.cacheTypeK);
  }
  if (config.cacheTypeV !== undefined) {
    if (!CACHE_TYPES.includes(config.cacheTypeV)) invalid("cacheTypeV", config.cacheTypeV, CACHE_TYPES.join(" | "));
    add("--cache-type-v", config.cacheTypeV);
  }
  if (config.embeddings) add("--embeddings");
  if (config.reranking) add("--reranking");
  if (config.mlock) add("--mlock");
  if (config.slotSavePath !== undefined) {
    if (!config.slotSavePath) invalid("slotSavePath", config.slotSavePath, "a folder");
    add("--slot-save-path", config.slotSavePath);
  }
  if (config.rpc !== undefined && config.rpc.length > 0) {
    for (const ep of config.rpc) {
      const problem = endpointProblem(ep);
      if (problem) invalid("rpc", ep, `host:port (${problem})`);
    }
    add("--rpc", config.rpc.map((e) => e.trim()).join(","));
  }
  if (config.cacheIdleSlots === false) add("--no-cache-idle-slots");
  else if (config.cacheIdleSlots === true) add("--cache-idle-slots");
  for (const a of config.extraArgs ?? []) {
    if (typeof a !== "string") invalid("extraArgs", a, "strings");
    args.push(a);
  }
  return args;
}

/** Flags the launcher sets itself, and what goes wrong when extraArgs repeat them (llama-server takes the last). */
const OWNED_FLAGS: Readonly<Record<string, string>> = {
  "--host": "llama-server would listen there, reachable without the proxy's key, where the proxy does not look",
  "--port": "the proxy would not find llama-server on the port it gave it",
  "-m": "the model would not be the file this entry names",
  "--model": "the model would not be the file this entry names",
  "-a": "answers would not carry the model's name",
  "--alias": "answers would not carry the model's name",
  "--slot-save-path": "the context cache saves and restores conversations in its own folder, not there",
  "--api-key": "llama-server would refuse the proxy's requests (the proxy sends no key to it)",
  "--api-key-file": "llama-server would refuse the proxy's requests (the proxy sends no key to it)",
};

/** The flags of `extraArgs` (`--x v` or `--x=v`) that `table` lists, once each, with the table's reason. */
function flagsIn(
  extraArgs: readonly unknown[] | undefined,
  table: Readonly<Record<string, string>>,
): { flag: string; why: string }[] {
  const out: { flag: string; why: string }[] = [];
  for (const a of extraArgs ?? []) {
    if (typeof a !== "string") continue;
    const flag = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    const why = Object.hasOwn(table, flag) ? table[flag] : undefined;
    if (why && !out.some((o) => o.flag === flag)) out.push({ flag, why });
  }
  return out;
}

/**
 * Pure: the flags of `extraArgs` that override ones the launcher sets (`--host 0.0.0.0`, `--slot-save-path=/x`),
 * each with why that is a problem; empty when none.
 */
export function overriddenFlags(extraArgs: readonly unknown[] | undefined): { flag: string; why: string }[] {
  return flagsIn(extraArgs, OWNED_FLAGS);
}

/**
 * Flags a model behind the proxy must not get, and why: they change memory or state inside a running llama-server
 * behind the scheduler's back.
 */
const REFUSED_BEHIND_PROXY: Readonly<Record<string, string>> = {
  "--sleep-idle-seconds":
    "it frees the weights and the KV cache inside a running llama-server: the context cache would lose the " +
    "conversation unsaved and the memory budget would still count the memory. Use the model's `ttl` instead: the " +
    "proxy saves the conversation first, then stops the process and gives its memory back",
};

/** Pure: the flags of `extraArgs` that a model behind the proxy may not have, each with why; empty when none. */
export function refusedFlags(extraArgs: readonly unknown[] | undefined): { flag: string; why: string }[] {
  return flagsIn(extraArgs, REFUSED_BEHIND_PROXY);
}

/** Environment for the child: ours, minus LLAMA_ARG_* leftovers that would silently change its settings. */
export function childEnv(
  base: NodeJS.ProcessEnv,
  extra: Readonly<Record<string, string>> | undefined,
  routerPort?: number,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (k.startsWith("LLAMA_ARG_") || k === "LLAMA_SERVER_ROUTER_PORT") continue;
    env[k] = v;
  }
  if (routerPort !== undefined) env.LLAMA_SERVER_ROUTER_PORT = String(routerPort);
  return { ...env, ...extra };
}
