import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { ServerConfig } from "../core/config.js";
import { GglibError } from "../core/errors.js";
import type { LoadProgress, ServerHandle } from "../core/handle.js";
import { paths } from "../core/paths.js";
import type { ProcessRunner } from "../core/ports.js";
import { Registry } from "../models/registry.js";
import {
  findModel,
  loadModelSources,
  resolveModelPath,
  type ConfigModel,
  type ModelEntry,
  type ModelsConfig,
} from "../models/sources.js";
import { loadConfigFile, resolvePath } from "../proxy/config.js";
import { ChatClient } from "./client.js";

/**
 * Where the chat's requests go: a running gglib proxy (it loads and swaps models itself), or, when none runs, a
 * llama-server that the chat starts through the runner and stops when it ends.
 */

export interface ChatBackend {
  readonly kind: "proxy" | "runner";
  readonly client: ChatClient;
  /** The model name sent in requests. */
  readonly model: string;
  /** One line for the user: what the chat talks to. */
  describe(): string;
  /**
   * Does the model's template open a thinking block in the prompt (see templateOpensThinking)? undefined when it
   * cannot be known now (the proxy has not loaded the model yet: asking would load it).
   */
  detectForcedOpen(): Promise<boolean | undefined>;
  /** Switch to another model (the runner stops the old server once the new one is ready). */
  setModel(nameOrPath: string, onProgress?: (p: LoadProgress) => void, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Folder scanned for models by name (default: the proxy config's modelsDir, else <data dir>/models). */
  modelsDir?: string;
  /** Context size to start the model with (overrides its settings). */
  contextSize?: number;
  cwd?: string;
}

export interface ResolvedModel {
  config: ServerConfig;
  /** Where the name was found. */
  source: "path" | ModelEntry["source"];
}

/** Does this argument name a file or folder rather than a model name? */
export function looksLikePath(arg: string, cwd = process.cwd()): boolean {
  return (
    /\.gguf$/i.test(arg) ||
    arg.includes("/") ||
    arg.includes("\\") ||
    arg.startsWith(".") ||
    existsSync(resolve(cwd, arg))
  );
}

/** A model argument (a .gguf path, a model folder, or a name from the registry / proxy config / models dir) → a ServerConfig. */
export function resolveModelArg(arg: string, opts: ResolveOptions = {}): ResolvedModel {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  if (looksLikePath(arg, cwd)) {
    const p = resolve(cwd, arg);
    const found = resolveModelPath(p);
    if (!found.ok) {
      throw new GglibError("model_not_found", `Cannot use model ${arg}: ${found.reason}.`, {
        modelPath: p,
        hint: "Pass the path of a .gguf file (the first shard of a split model), or a model name from `gglib models list`.",
      });
    }
    return {
      source: "path",
      config: withChatDefaults({ modelPath: found.files.path, modelName: found.files.name }, found.files.mmproj, opts),
    };
  }
  const { models, where } = loadNamedModels(opts, env);
  const m = findModel(models, arg);
  if (!m) {
    const names = models.map((x) => x.name);
    throw new GglibError("model_not_found", `No model named "${arg}".`, {
      hint:
        (names.length
          ? `Known models: ${names.slice(0, 20).join(", ")}${names.length > 20 ? ", …" : ""}. `
          : `No models found (looked in ${where.join(", ")}). `) +
        "Pass a .gguf path, add one with `gglib models add <file>`, or start `gglib proxy` with --models-dir.",
    });
  }
  const s = m.settings;
  const config: ServerConfig = {
    modelPath: m.path,
    modelName: m.name,
    ...(s.ctx !== undefined ? { contextSize: s.ctx } : {}),
    ...(s.gpuLayers !== undefined ? { gpuLayers: s.gpuLayers } : {}),
    ...(s.jinja !== undefined ? { jinja: s.jinja } : {}),
    ...(s.reasoningFormat !== undefined ? { reasoningFormat: s.reasoningFormat } : {}),
    ...(s.parallel !== undefined ? { parallel: s.parallel } : {}),
    ...(s.extraArgs ? { extraArgs: [...s.extraArgs] } : {}),
  };
  return { source: m.source, config: withChatDefaults(config, m.mmproj, opts) };
}

function withChatDefaults(config: ServerConfig, mmproj: string | undefined, opts: ResolveOptions): ServerConfig {
  return {
    ...config,
    // Thinking goes to reasoning_content where the template allows it; the chat splits inline tags otherwise.
    reasoningFormat: config.reasoningFormat ?? "deepseek",
    jinja: config.jinja ?? true,
    // One person chats: one slot gets the whole context.
    parallel: config.parallel ?? 1,
    ...(opts.contextSize !== undefined ? { contextSize: opts.contextSize } : {}),
    ...(mmproj && !(config.extraArgs ?? []).includes("--mmproj")
      ? { extraArgs: [...(config.extraArgs ?? []), "--mmproj", mmproj] }
      : {}),
  };
}

function loadNamedModels(opts: ResolveOptions, env: NodeJS.ProcessEnv): { models: ModelEntry[]; where: string[] } {
  const where: string[] = [];
  let config: ModelsConfig | undefined;
  let modelsDir = opts.modelsDir;
  const cfgPath = paths.configFile(env);
  if (existsSync(cfgPath)) {
    try {
      const loaded = loadConfigFile(cfgPath);
      const models: ConfigModel[] = Object.entries(loaded.config.models ?? {}).map(([name, c]) => ({
        name,
        path: resolvePath(loaded.baseDir, c.path),
        ...(c.aliases ? { aliases: c.aliases } : {}),
        ...(c.mmproj ? { mmproj: resolvePath(loaded.baseDir, c.mmproj) } : {}),
        settings: {
          ...(c.ctx !== undefined ? { ctx: c.ctx } : {}),
          ...(c.gpuLayers !== undefined ? { gpuLayers: c.gpuLayers } : {}),
          ...(c.jinja !== undefined ? { jinja: c.jinja } : {}),
          ...(c.reasoningFormat !== undefined ? { reasoningFormat: c.reasoningFormat } : {}),
          ...(c.parallel !== undefined ? { parallel: c.parallel } : {}),
          ...(c.extraArgs ? { extraArgs: c.extraArgs } : {}),
        },
      }));
      config = { models, baseDir: loaded.baseDir };
      modelsDir ??= loaded.config.modelsDir ? resolvePath(loaded.baseDir, loaded.config.modelsDir) : undefined;
      where.push(cfgPath);
    } catch {
      // a broken proxy config is reported by `gglib proxy`; the chat still finds registered models
    }
  }
  modelsDir ??= paths.modelsDir(env);
  let registry: Registry | undefined;
  try {
    registry = Registry.open({ dbPath: paths.registryDb(env) });
    where.push("the model registry");
  } catch {
    registry = undefined;
  }
  try {
    const sources = loadModelSources({ ...(registry ? { registry } : {}), modelsDir, ...(config ? { config } : {}) });
    where.push(modelsDir);
    return { models: sources.models, where };
  } finally {
    registry?.close();
  }
}

export class ProxyBackend implements ChatBackend {
  readonly kind = "proxy" as const;
  model: string;

  /** `gglib`: the gglib proxy (it says so in /v1/models); otherwise some OpenAI-compatible server. */
  constructor(
    readonly client: ChatClient,
    model: string,
    readonly isGglibProxy: boolean,
  ) {
    this.model = model;
  }

  describe(): string {
    return `${this.isGglibProxy ? "the gglib proxy" : "the server"} at ${this.client.baseUrl}`;
  }

  async detectForcedOpen(): Promise<boolean | undefined> {
    if (!this.isGglibProxy) return this.client.templateOpensThinking(this.model);
    const m = (await this.client.models()).find((x) => x.id === this.model || x.aliases.includes(this.model));
    if (!m?.loaded) return undefined;
    return this.client.templateOpensThinking(m.id, { viaUpstream: true });
  }

  async setModel(name: string): Promise<void> {
    const known = await this.client.models();
    if (known.length > 0 && !known.some((m) => m.id === name || m.aliases.includes(name))) {
      throw new GglibError("model_not_found", `${this.describe()} has no model "${name}".`, {
        hint: `It has: ${known.map((m) => m.id).join(", ")}.`,
      });
    }
    this.model = name;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

export interface RunnerBackendOptions extends ResolveOptions {
  runner: ProcessRunner;
  readyTimeoutMs?: number;
}

export class RunnerBackend implements ChatBackend {
  readonly kind = "runner" as const;
  private handle: ServerHandle | undefined;
  private current: ChatClient | undefined;
  private name = "";

  constructor(private readonly opts: RunnerBackendOptions) {}

  get client(): ChatClient {
    if (!this.current) throw new GglibError("not_running", "No model is running.");
    return this.current;
  }

  get model(): string {
    return this.name;
  }

  get serverHandle(): ServerHandle | undefined {
    return this.handle;
  }

  describe(): string {
    return this.handle
      ? `llama-server (pid ${this.handle.pid}) at ${this.handle.url}, started for this chat`
      : "no server";
  }

  async detectForcedOpen(): Promise<boolean | undefined> {
    return this.current ? this.current.templateOpensThinking(this.name) : undefined;
  }

  async setModel(nameOrPath: string, onProgress?: (p: LoadProgress) => void, signal?: AbortSignal): Promise<void> {
    const { config } = resolveModelArg(nameOrPath, this.opts);
    const handle = await this.opts.runner.start(config, {
      ...(onProgress ? { onProgress } : {}),
      ...(signal ? { signal } : {}),
      ...(this.opts.readyTimeoutMs !== undefined ? { readyTimeoutMs: this.opts.readyTimeoutMs } : {}),
    });
    const old = this.handle;
    const oldClient = this.current;
    this.handle = handle;
    this.current = new ChatClient(handle.url);
    this.name = handle.model;
    if (oldClient) await oldClient.close();
    if (old) await this.opts.runner.stop(old).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.current?.close();
    const h = this.handle;
    this.handle = undefined;
    if (h) await this.opts.runner.stop(h);
  }
}
