import type { ServerConfig } from "../core/config.js";
import { GglibError } from "../core/errors.js";
import type { LoadProgress, ServerHandle } from "../core/handle.js";
import type { ProcessRunner } from "../core/ports.js";
import { resolveModelRef, type ResolvedModel } from "../models/resolve.js";
import { serverConfigOf } from "../models/settings.js";
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
  /** Folder scanned for models by name (default: the config's modelsDir, else <data dir>/models). */
  modelsDir?: string;
  /** Context size to start the model with (overrides its settings). */
  contextSize?: number;
  cwd?: string;
}

/**
 * A model argument (a .gguf path, a model folder, or a name from the config / registry / models dir: the one
 * resolver, src/models/resolve.ts) → the ServerConfig the chat starts it with: its settings by the one mapping,
 * then the chat's defaults where they leave a setting open.
 */
export function resolveModelArg(
  arg: string,
  opts: ResolveOptions = {},
): { config: ServerConfig; source: ResolvedModel["source"]; entry: ResolvedModel["entry"] } {
  const { entry, source } = resolveModelRef(arg, opts);
  return { source, entry, config: withChatDefaults(serverConfigOf(entry), opts) };
}

function withChatDefaults(config: ServerConfig, opts: ResolveOptions): ServerConfig {
  return {
    ...config,
    // Thinking goes to reasoning_content where the template allows it; the chat splits inline tags otherwise.
    reasoningFormat: config.reasoningFormat ?? "deepseek",
    jinja: config.jinja ?? true,
    // One person chats: one slot gets the whole context.
    parallel: config.parallel ?? 1,
    ...(opts.contextSize !== undefined ? { contextSize: opts.contextSize } : {}),
  };
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
