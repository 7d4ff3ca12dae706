/**
 * Numbers as people write them, parsed by one set of rules for every command-line option, `models set key=value`
 * and the config file: counts and ports (integers in a range), sizes (`24GiB`, `512 MiB`, `8G`, bytes) and
 * durations in seconds (`90`, `90s`, `5m`, `1h`, `0.5`). Callers word the error around `expected(rule)`.
 * And the one way gglib writes a byte size for people: `formatBytes`.
 */

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** A byte size for people, in binary units: 512 B, 12.0 KiB, 320 MiB, 1.5 GiB, 2.0 TiB (3 significant digits). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** A size: bytes, or a number with K/M/G/T (binary units, with or without "i" and "B"). */
export const SIZE_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)([iI]?[bB]?)\s*$/;
const SECONDS_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$/i;

/**
 * integer: whole numbers in [min, max]; number: any finite number in [min, max]; size: bytes (SIZE_PATTERN);
 * seconds: a duration with an optional unit s, m or h, at least min. `example`: a typical value, for hints.
 */
export type NumberRule = { example?: string } & (
  | { kind: "integer"; min?: number; max?: number }
  | { kind: "number"; min?: number; max?: number }
  | { kind: "size" }
  | { kind: "seconds"; min?: number }
);

/** A TCP port; 0 = any free one (where a command allows it). */
export const PORT = { kind: "integer", min: 0, max: 65535, example: "8080" } as const satisfies NumberRule;

/** What a rule accepts, for messages: "an integer >= 1", "a size like 24GiB"… */
export function expected(rule: NumberRule): string {
  switch (rule.kind) {
    case "integer":
    case "number": {
      const what = rule.kind === "integer" ? "an integer" : "a number";
      if (rule.min !== undefined && rule.max !== undefined) return `${what} from ${rule.min} to ${rule.max}`;
      if (rule.min !== undefined) return `${what} >= ${rule.min}`;
      return rule.max !== undefined ? `${what} <= ${rule.max}` : what;
    }
    case "size":
      return "a size like 512MiB, 24GiB or a number of bytes";
    case "seconds":
      return `seconds like 300, 5m or 1h${rule.min ? ` (at least ${rule.min}s)` : ""}`;
  }
}

/** A value the rule accepts, for hints. */
export function exampleOf(rule: NumberRule): string {
  if (rule.example !== undefined) return rule.example;
  switch (rule.kind) {
    case "integer":
    case "number":
      return String(Math.max(rule.min ?? 1, Math.min(1, rule.max ?? 1)));
    case "size":
      return "24GiB";
    case "seconds":
      return "300";
  }
}

/** The value of `text` under `rule`, or undefined when it does not follow it. */
export function readNumber(text: string, rule: NumberRule): number | undefined {
  switch (rule.kind) {
    case "integer":
    case "number": {
      const s = text.trim();
      const shape = rule.kind === "integer" ? /^[-+]?\d+$/ : /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
      if (!shape.test(s)) return undefined;
      const n = Number(s);
      if (!Number.isFinite(n) || (rule.kind === "integer" && !Number.isSafeInteger(n))) return undefined;
      if ((rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max)) return undefined;
      return n;
    }
    case "size": {
      const m = SIZE_PATTERN.exec(text);
      if (!m) return undefined;
      const unit = (m[2] ?? "").toLowerCase();
      const mult = unit === "k" ? 1024 : unit === "m" ? MiB : unit === "g" ? GiB : unit === "t" ? 1024 * GiB : 1;
      return Math.floor(Number(m[1]) * mult);
    }
    case "seconds": {
      const m = SECONDS_PATTERN.exec(text);
      if (!m) return undefined;
      const unit = (m[2] ?? "s").toLowerCase();
      const n = Number(m[1]) * (unit.startsWith("h") ? 3600 : unit.startsWith("m") ? 60 : 1);
      return rule.min !== undefined && n < rule.min ? undefined : n;
    }
  }
}

/** Parses `24GiB`, `512 MiB`, `8G`, `1.5 GB`, `1000000` (bytes). Throws for anything else. */
export function parseSize(text: string | number): number {
  if (typeof text === "number") {
    if (!Number.isFinite(text) || text < 0) throw new Error(`Invalid size: ${text}`);
    return Math.floor(text);
  }
  const n = readNumber(text, { kind: "size" });
  if (n === undefined)
    throw new Error(`Invalid size "${text}": use a number of bytes or a value like 512MiB, 24GiB, 8G.`);
  return n;
}
