/**
 * The config file on disk: reading it with clear errors (the schema is src/models/settings.ts), resolving its
 * relative paths against its folder, and its models as model-source entries. The proxy, the chat and
 * `gglib models` read it through here.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { GglibError } from "../core/errors.js";
import { ProxyConfigSchema, resolveRpcGroups, type ProxyConfigFile } from "./settings.js";
import type { ConfigModel } from "./sources.js";
import type { Preset } from "./presets.js";

export interface LoadedConfig {
  config: ProxyConfigFile;
  /** Folder relative paths resolve against. */
  baseDir: string;
  path: string;
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

/** The config file's models as model-source entries: every setting kept, paths resolved against its folder. */
export function configModelsOf(loaded: LoadedConfig): ConfigModel[] {
  return Object.entries(loaded.config.models ?? {}).map(([name, entry]) => {
    const { path, aliases, mmproj, ...settings } = entry;
    // an rpc group name becomes its list of workers here (the schema has checked that it exists)
    const rpc = resolveRpcGroups(settings.rpc, loaded.config.rpcGroups, name);
    if (rpc) settings.rpc = rpc;
    const c: ConfigModel = { name, path: resolvePath(loaded.baseDir, path), settings };
    if (aliases) c.aliases = aliases;
    if (mmproj) c.mmproj = resolvePath(loaded.baseDir, mmproj);
    return c;
  });
}

/** The config file's presets (src/models/presets.ts). */
export function configPresetsOf(loaded: LoadedConfig): Preset[] {
  return Object.entries(loaded.config.presets ?? {}).map(([name, def]) => ({ ...def, name, source: "config" }));
}
