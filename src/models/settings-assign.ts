/**
 * The grammar of `gglib models set <name> key=value` (and `gglib models add`'s setting flags): the keys it accepts
 * (kebab or camel case, a few llama.cpp spellings) and how each value is read, with errors that say what a key
 * expects. Pure: the registry (src/models/registry.ts) stores what this returns.
 */
import { REASONING_FORMATS, type ReasoningFormat } from "../core/config.js";
import { GglibError } from "../core/errors.js";
import { exampleOf, expected, readNumber, type NumberRule } from "../core/units.js";
import { endpointProblem } from "../rpc/endpoint.js";
import { RPC_GROUP_NAME, type ModelSettings } from "./settings.js";

/** The settings `models set` (and `models add`'s flags) can change. */
export type SettableSetting = Exclude<keyof ModelSettings, "cacheTypeK" | "cacheTypeV" | "env">;

/** Setting keys as the CLI accepts them (kebab or camel case, and a few llama.cpp spellings) → ModelSettings keys. */
const SETTING_KEYS: Record<string, SettableSetting> = {
  ctx: "ctx",
  "ctx-size": "ctx",
  context: "ctx",
  "gpu-layers": "gpuLayers",
  gpulayers: "gpuLayers",
  ngl: "gpuLayers",
  jinja: "jinja",
  "reasoning-format": "reasoningFormat",
  reasoningformat: "reasoningFormat",
  parallel: "parallel",
  np: "parallel",
  "extra-args": "extraArgs",
  extraargs: "extraArgs",
  args: "extraArgs",
  ttl: "ttl",
  pinned: "pinned",
  pin: "pinned",
  preload: "preload",
  rpc: "rpc",
  "swa-full": "swaFull",
  swafull: "swaFull",
};

export const SETTING_NAMES = [
  "ctx",
  "gpu-layers",
  "jinja",
  "reasoning-format",
  "parallel",
  "extra-args",
  "ttl",
  "pinned",
  "preload",
  "rpc",
  "swa-full",
] as const;

function settingError(key: string, value: string, expectedText: string, example: string): GglibError {
  return new GglibError("invalid_config", `Invalid value "${value}" for ${key}: expected ${expectedText}.`, {
    hint: `Example: gglib models set <name> ${key}=${example}`,
  });
}

function parseBool(key: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (["true", "on", "yes", "1"].includes(s)) return true;
  if (["false", "off", "no", "0"].includes(s)) return false;
  throw settingError(key, v, "true or false", "true");
}

function parseNumber(key: string, v: string, rule: NumberRule): number {
  const n = readNumber(v, rule);
  if (n === undefined) throw settingError(key, v, expected(rule), exampleOf(rule));
  return n;
}

/** `90`, `90s`, `5m`, `1h` → seconds. */
export function parseDurationSeconds(key: string, v: string): number {
  return parseNumber(key, v, { kind: "seconds" });
}

/** Splits a command-line-like string: whitespace separated, '…' and "…" quote. */
export function splitArgs(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | undefined;
  let has = false;
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += ch;
    }
  }
  if (quote) throw new GglibError("invalid_config", `Unterminated quote in "${s}".`, { hint: "Close the quote." });
  if (has || cur) out.push(cur);
  return out;
}

/**
 * Parses one `key=value` of `gglib models set`. An empty value unsets the key (returns value undefined).
 * Keys: ctx, gpu-layers (or all/auto = -1), jinja, reasoning-format, parallel, extra-args, ttl, pinned, preload,
 * swa-full.
 */
export function parseSettingAssignment(assignment: string): {
  key: SettableSetting;
  value: ModelSettings[SettableSetting] | undefined;
} {
  const eq = assignment.indexOf("=");
  if (eq <= 0) {
    throw new GglibError("invalid_config", `"${assignment}" is not key=value.`, {
      hint: `Keys: ${SETTING_NAMES.join(", ")}, plus name, aliases and mmproj. Example: gglib models set tiny ctx=8192`,
    });
  }
  const rawKey = assignment.slice(0, eq).trim();
  const v = assignment.slice(eq + 1);
  const key = SETTING_KEYS[rawKey.toLowerCase()] ?? SETTING_KEYS[rawKey.replace(/_/g, "-").toLowerCase()];
  if (!key) {
    throw new GglibError("invalid_config", `Unknown setting "${rawKey}".`, {
      hint: `Keys: ${SETTING_NAMES.join(", ")}, plus name, aliases and mmproj.`,
    });
  }
  if (v.trim() === "") return { key, value: undefined };
  switch (key) {
    case "ctx":
      return { key, value: parseNumber(rawKey, v, { kind: "integer", min: 0 }) };
    case "gpuLayers":
      return {
        key,
        value: /^(all|auto)$/i.test(v.trim()) ? -1 : parseNumber(rawKey, v, { kind: "integer", min: -1 }),
      };
    case "parallel":
      return { key, value: parseNumber(rawKey, v, { kind: "integer", min: 1 }) };
    case "jinja":
    case "pinned":
    case "preload":
    case "swaFull":
      return { key, value: parseBool(rawKey, v) };
    case "reasoningFormat": {
      const f = v.trim() as ReasoningFormat;
      if (!(REASONING_FORMATS as readonly string[]).includes(f))
        throw settingError(rawKey, v, REASONING_FORMATS.join(" | "), "deepseek");
      return { key, value: f };
    }
    case "ttl":
      return { key, value: parseDurationSeconds(rawKey, v) };
    case "extraArgs":
      return { key, value: splitArgs(v) };
    case "rpc": {
      // host:port[,host:port…], or the name of a group of the config file's rpcGroups
      const list = v
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "");
      if (list.length === 1 && !list[0]!.includes(":")) {
        if (!RPC_GROUP_NAME.test(list[0]!))
          throw settingError(rawKey, v, "host:port[,host:port…] or an rpcGroups name", "192.168.1.20:50052");
        return { key, value: list[0]! };
      }
      for (const ep of list) {
        const problem = endpointProblem(ep);
        if (problem) throw settingError(rawKey, v, `host:port[,host:port…] (${problem})`, "192.168.1.20:50052");
      }
      return { key, value: list };
    }
  }
}
