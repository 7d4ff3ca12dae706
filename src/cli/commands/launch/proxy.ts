/**
 * The proxy a launched agent talks to: the one answering at the URL, or one started in this process for the
 * agent's lifetime (only on a loopback URL). The started proxy reads the same sources as `gglib proxy` (the config
 * file, the registry, the models folder); a model the agent needs with a larger context gets it through an entry
 * in front of the registry (the same file, `ctx` set), applied with a reload before the model ever loads. Closing
 * it stops every llama-server it started.
 */
import { existsSync } from "node:fs";
import { GglibError } from "../../../core/errors.js";
import { paths } from "../../../core/paths.js";
import { loadConfigFile } from "../../../models/config-file.js";
import { Registry, type RegisteredModel } from "../../../models/registry.js";
import { startProxy, type ProxyOptions, type RunningProxy } from "../../../proxy/index.js";

export const DEFAULT_PROXY_URL = "http://127.0.0.1:8080";

/** The URL to use: --url, else $GGLIB_PROXY_URL, else the config file's host and port, else the default. */
export function proxyUrlOf(flag: string | undefined, env: NodeJS.ProcessEnv, configPath: string | undefined): string {
  if (flag) return flag.replace(/\/+$/, "").replace(/\/v1$/, "");
  if (env.GGLIB_PROXY_URL) return env.GGLIB_PROXY_URL.replace(/\/+$/, "").replace(/\/v1$/, "");
  const file = configPath ?? (existsSync(paths.configFile()) ? paths.configFile() : undefined);
  if (file) {
    try {
      const c = loadConfigFile(file).config;
      const host = !c.host || c.host === "0.0.0.0" || c.host === "::" ? "127.0.0.1" : c.host;
      return `http://${host.includes(":") ? `[${host}]` : host}:${c.port ?? 8080}`;
    } catch {
      // an unreadable config: the proxy started below reports it
    }
  }
  return DEFAULT_PROXY_URL;
}

export function isLoopbackUrl(url: string): boolean {
  try {
    const h = new URL(url).hostname;
    return h === "localhost" || h === "[::1]" || h === "::1" || /^127\./.test(h);
  } catch {
    return false;
  }
}

export type ProbeResult =
  { kind: "gglib" } | { kind: "none"; error: string } | { kind: "auth" } | { kind: "other"; status: number };

/** Whether a gglib proxy answers at `url` (GET /api/status, 2 s). */
export async function probeProxy(url: string, apiKey: string | undefined): Promise<ProbeResult> {
  try {
    const r = await fetch(`${url}/api/status`, {
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      signal: AbortSignal.timeout(2_000),
    });
    await r.arrayBuffer().catch(() => undefined);
    if (r.status === 401) return { kind: "auth" };
    if (!r.ok) return { kind: "other", status: r.status };
    return { kind: "gglib" };
  } catch (e) {
    return { kind: "none", error: (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message };
  }
}

/** A proxy started by the launch: its URL, its key (when its config sets keys), a way to set a model's context. */
export interface OwnProxy {
  url: string;
  apiKey?: string | undefined;
  proxy: RunningProxy;
  /** Loads `model` (file `path`) with `ctx` tokens from now on (a reload; the model must not be running). */
  setContext(model: string, path: string, ctx: number): Promise<void>;
  close(): Promise<void>;
}

export interface OwnProxyOptions {
  url: string;
  configPath?: string | undefined;
  modelsDir?: string | undefined;
  log?: (line: string) => void;
}

export async function startOwnProxy(o: OwnProxyOptions): Promise<OwnProxy> {
  const u = new URL(o.url);
  const opts: ProxyOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port || (u.protocol === "https:" ? 443 : 80)),
    watchConfig: false,
    ...(o.log ? { log: o.log } : {}),
  };
  const configPath = o.configPath ?? (existsSync(paths.configFile()) ? paths.configFile() : undefined);
  if (configPath) opts.configPath = configPath;
  if (o.modelsDir) opts.modelsDir = o.modelsDir;
  else if (!configPath && existsSync(paths.modelsDir())) opts.modelsDir = paths.modelsDir();
  let registry: Registry | undefined;
  if (existsSync(paths.registryDb())) {
    try {
      registry = Registry.open();
    } catch (e) {
      o.log?.(`model registry not readable, skipped: ${(e as Error).message}`);
    }
  }
  // entries in front of the registry's: the same file with the context the agent needs (a registry entry of
  // the same name and file wins over the models folder's; a config entry still wins over it, which is checked)
  const overrides = new Map<string, RegisteredModel>();
  opts.registry = { list: () => [...overrides.values(), ...(registry?.list() ?? [])] };
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(opts);
  } catch (e) {
    registry?.close();
    if (e instanceof GglibError && e.kind === "port_in_use") {
      throw new GglibError("port_in_use", `Nothing answers as a gglib proxy at ${o.url}, and its port is taken.`, {
        hint: "Point --url at the running gglib proxy, or free the port.",
      });
    }
    throw e;
  }
  let apiKey: string | undefined;
  try {
    apiKey = configPath ? loadConfigFile(configPath).config.apiKeys?.[0] : undefined;
  } catch {
    apiKey = undefined;
  }
  const now = new Date().toISOString();
  return {
    url: proxy.url,
    apiKey,
    proxy,
    async setContext(model, path, ctx) {
      const existing = registry?.list().find((m) => m.name === model);
      // a models-folder model keeps what the catalog found beside it (its projector, its shards)
      const served = proxy.controller.catalog().find((m) => m.name === model)?.entry;
      const shards = existing?.shards ?? served?.shards ?? [path];
      const mmproj = existing?.mmproj ?? served?.mmproj;
      overrides.set(model, {
        id: -1,
        name: model,
        aliases: existing?.aliases ?? [],
        path,
        shards,
        ...(mmproj ? { mmproj } : {}),
        settings: { ...(existing?.settings ?? {}), ctx },
        addedAt: now,
        updatedAt: now,
      });
      await proxy.reload("gglib launch: the agent's context");
    },
    async close() {
      await proxy.close(10_000);
      registry?.close();
    },
  };
}
