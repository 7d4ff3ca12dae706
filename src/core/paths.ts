import { homedir, platform } from "node:os";
import { join } from "node:path";

/**
 * Where gglib keeps its state. One root for everything (the seed had two that agreed only by accident):
 *   GGLIB_DATA_DIR, else $XDG_DATA_HOME/gglib, else the platform's user data dir.
 */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GGLIB_DATA_DIR) return env.GGLIB_DATA_DIR;
  const home = env.HOME || homedir();
  switch (platform()) {
    case "darwin":
      return join(home, "Library", "Application Support", "gglib");
    case "win32":
      return join(env.LOCALAPPDATA || join(home, "AppData", "Local"), "gglib");
    default:
      return join(env.XDG_DATA_HOME || join(home, ".local", "share"), "gglib");
  }
}

/** Cache root (build trees, downloads): GGLIB_CACHE_DIR, else $XDG_CACHE_HOME/gglib-runtime, else ~/.cache/gglib-runtime. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GGLIB_CACHE_DIR) return env.GGLIB_CACHE_DIR;
  const home = env.HOME || homedir();
  if (platform() === "darwin") return join(home, "Library", "Caches", "gglib-runtime");
  return join(env.XDG_CACHE_HOME || join(home, ".cache"), "gglib-runtime");
}

export const paths = {
  /** Pidfiles of running llama-servers. */
  pidsDir: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "pids"),
  /** Per-server log files. */
  logsDir: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "logs"),
  /** llama.cpp installed by `gglib llama install`: <dir>/bin/llama-server, <dir>/install.json */
  llamaDir: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "llama"),
  llamaServerBinary: (env?: NodeJS.ProcessEnv) =>
    join(dataDir(env), "llama", "bin", platform() === "win32" ? "llama-server.exe" : "llama-server"),
  llamaInstallRecord: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "llama", "install.json"),
  /** Capability probe cache (per binary path + mtime). */
  capabilityCache: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "cache", "llama-capabilities.json"),
  /** Saved KV caches of the proxy's models (one folder per model; see src/proxy/context/). */
  contextCacheDir: (env: NodeJS.ProcessEnv = process.env) =>
    env.GGLIB_CONTEXT_CACHE_DIR || join(cacheDir(env), "kv-context"),
  /** Model registry database. */
  registryDb: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "registry.sqlite"),
  /** Default models folder for the proxy. */
  modelsDir: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "models"),
  /** Default proxy config file. */
  configFile: (env?: NodeJS.ProcessEnv) => join(dataDir(env), "config.yaml"),
};
