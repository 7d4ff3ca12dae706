/**
 * Where each store lives, by the tool's own rules (its environment variables first, then its default folders).
 * Pure: the environment, the home folder, the platform and a file reader are passed in, so tests point every store
 * at a temp folder and never see the real home. Without a home folder only the environment variables count (no
 * default place is read, the Linux service's folder included).
 *
 *   ollama       OLLAMA_MODELS; else ~/.ollama/models and the Linux service's /usr/share/ollama/.ollama/models
 *   lmstudio     LM Studio's home (the path in ~/.lmstudio-home-pointer, else ~/.cache/lm-studio when it exists,
 *                else ~/.lmstudio): its settings.json's downloadsFolder, else <home>/models
 *   hf-cache     HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
 *                ~/.cache/huggingface/hub (the order huggingface_hub and llama.cpp's common/hf-cache.cpp use)
 *   llama-cache  LLAMA_CACHE; else llama.cpp's fs_get_cache_directory(): XDG_CACHE_HOME/llama.cpp or
 *                ~/.cache/llama.cpp (macOS ~/Library/Caches/llama.cpp, Windows %LOCALAPPDATA%/llama.cpp)
 */
import { join } from "node:path";
import type { StoreName } from "./types.js";

export interface LocationContext {
  env: Readonly<Record<string, string | undefined>>;
  /** Undefined: no default place is read, only the folders the environment names. */
  home: string | undefined;
  platform: NodeJS.Platform;
  /** A small text file's content, or undefined when it cannot be read (LM Studio's pointer and settings). */
  readText: (path: string) => string | undefined;
  /** Whether a folder exists (LM Studio's older ~/.cache/lm-studio). */
  exists: (path: string) => boolean;
}

/** The folders each store is looked for in (all of them; a missing one is simply empty). */
export function storeRoots(ctx: LocationContext): Record<StoreName, string[]> {
  const one = (p: string | undefined) => (p === undefined ? [] : [p]);
  return {
    ollama: ollamaRoots(ctx),
    lmstudio: one(lmStudioModelsDir(ctx)),
    "hf-cache": one(hfHubCache(ctx)),
    "llama-cache": one(llamaCacheDir(ctx)),
  };
}

function set(v: string | undefined): v is string {
  return v !== undefined && v.trim() !== "";
}

export function ollamaRoots(ctx: LocationContext): string[] {
  if (set(ctx.env.OLLAMA_MODELS)) return [ctx.env.OLLAMA_MODELS];
  if (ctx.home === undefined) return [];
  const roots = [join(ctx.home, ".ollama", "models")];
  if (ctx.platform === "linux") roots.push("/usr/share/ollama/.ollama/models");
  return roots;
}

/** LM Studio's home folder (the lmstudio SDK's findLMStudioHome rule). */
export function lmStudioHome(ctx: LocationContext): string | undefined {
  if (ctx.home === undefined) return undefined;
  const pointer = ctx.readText(join(ctx.home, ".lmstudio-home-pointer"))?.trim();
  if (pointer) return pointer;
  const older = join(ctx.home, ".cache", "lm-studio");
  if (ctx.exists(older)) return older;
  return join(ctx.home, ".lmstudio");
}

/** The models folder LM Studio uses: settings.json's `downloadsFolder` ("Models Directory"), else <home>/models. */
export function lmStudioModelsDir(ctx: LocationContext): string | undefined {
  const home = lmStudioHome(ctx);
  if (home === undefined) return undefined;
  const text = ctx.readText(join(home, "settings.json"));
  if (text) {
    try {
      const s = JSON.parse(text) as unknown;
      const folder = s && typeof s === "object" ? (s as Record<string, unknown>).downloadsFolder : undefined;
      if (typeof folder === "string" && folder.trim() !== "") return folder;
    } catch {
      // an unreadable settings file: LM Studio falls back to its default too
    }
  }
  return join(home, "models");
}

export function hfHubCache(ctx: LocationContext): string | undefined {
  const e = ctx.env;
  if (set(e.HF_HUB_CACHE)) return e.HF_HUB_CACHE;
  if (set(e.HUGGINGFACE_HUB_CACHE)) return e.HUGGINGFACE_HUB_CACHE;
  if (set(e.HF_HOME)) return join(e.HF_HOME, "hub");
  if (set(e.XDG_CACHE_HOME)) return join(e.XDG_CACHE_HOME, "huggingface", "hub");
  return ctx.home === undefined ? undefined : join(ctx.home, ".cache", "huggingface", "hub");
}

export function llamaCacheDir(ctx: LocationContext): string | undefined {
  const e = ctx.env;
  if (set(e.LLAMA_CACHE)) return e.LLAMA_CACHE;
  if (ctx.home === undefined) return undefined;
  switch (ctx.platform) {
    case "darwin":
      return join(ctx.home, "Library", "Caches", "llama.cpp");
    case "win32":
      return join(set(e.LOCALAPPDATA) ? e.LOCALAPPDATA : join(ctx.home, "AppData", "Local"), "llama.cpp");
    default:
      return join(set(e.XDG_CACHE_HOME) ? e.XDG_CACHE_HOME : join(ctx.home, ".cache"), "llama.cpp");
  }
}
