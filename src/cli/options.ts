/**
 * Command-line options as data. A command describes its options in a table keyed by the fields of the settings
 * they fill (ServerConfig for `serve`, ModelSettings for `models add`, ProxyOptions for `proxy`…), so the type
 * checker holds each option's parsed value to its field's type; `addOptions` registers the table with commander
 * and `readOptions` turns what commander parsed back into those settings.
 *
 * Every number goes through one parser (src/core/units.ts: counts, ports, sizes like 20GiB, seconds like 5m) and
 * fails with the same message: `--ctx must be an integer >= 0 (got "big").` plus an example.
 */
import { Option, type Command } from "commander";
import { GglibError } from "../core/errors.js";
import { exampleOf, expected, readNumber, type NumberRule } from "../core/units.js";

/** One option: its flags, its help, and how its value is read. */
export interface OptionSpec<T> {
  /** commander's flags: `-c, --ctx <tokens>`, `--pin`. */
  flags: string;
  description: string;
  /** Reads the option's text; none for a switch. (A method: a spec for a narrower type fits a wider field.) */
  parse?(this: void, text: string, flag: string, previous: T | undefined): T;
  choices?: readonly string[];
  /** Used when the option is not given. */
  defaultValue?: T;
  /** Help for a `--no-…` form that turns the switch off. */
  negation?: string;
}

/** Options typed by the settings they fill: the value of the option under key K is a `C[K]`. */
export type OptionTable<C> = { [K in keyof C]?: OptionSpec<NonNullable<C[K]>> };

function invalid(flag: string, text: string, expectedText: string, example: string): GglibError {
  return new GglibError("invalid_config", `${flag} must be ${expectedText} (got "${text}").`, {
    hint: `Example: ${flag} ${example}`,
  });
}

/** The one numeric option parser: the rule's value, or a clear error naming the flag. */
export function parseNumberOption(flag: string, text: string, rule: NumberRule): number {
  const n = readNumber(text, rule);
  if (n === undefined) throw invalid(flag, text, expected(rule), exampleOf(rule));
  return n;
}

export function numberOption(flags: string, description: string, rule: NumberRule): OptionSpec<number> {
  return { flags, description, parse: (text, flag) => parseNumberOption(flag, text, rule) };
}

/** A number, or one of a few words (`--ngl all`). */
export function numberOrWordOption<W extends string>(
  flags: string,
  description: string,
  rule: NumberRule,
  words: readonly W[],
): OptionSpec<number | W> {
  return {
    flags,
    description,
    parse: (text, flag) => {
      const word = words.find((w) => w === text.trim());
      if (word !== undefined) return word;
      const n = readNumber(text, rule);
      if (n === undefined) throw invalid(flag, text, `${expected(rule)} or ${words.join(" or ")}`, exampleOf(rule));
      return n;
    },
  };
}

export function choiceOption<T extends string>(flags: string, description: string, choices: readonly T[]) {
  const spec: OptionSpec<T> = { flags, description, choices, parse: (text) => text as T };
  return spec;
}

export function textOption(flags: string, description: string, defaultValue?: string): OptionSpec<string> {
  return { flags, description, parse: (text) => text, ...(defaultValue !== undefined ? { defaultValue } : {}) };
}

/** Repeatable: each use adds one value. */
export function listOption(flags: string, description: string): OptionSpec<string[]> {
  return { flags, description, parse: (text, _flag, previous) => [...(previous ?? []), text] };
}

/**
 * `-o key=value`, repeatable, gathered into one object: a value that is JSON (numbers, booleans, objects) is
 * parsed, any other is kept as text.
 */
export function parseKeyValue(
  text: string,
  flag: string,
  previous: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const eq = text.indexOf("=");
  if (eq <= 0) throw invalid(flag, text, "key=value", "seed=42");
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  return { ...(previous ?? {}), [text.slice(0, eq).trim()]: value };
}

/** A switch; with `negation`, also its `--no-…` form. */
export function switchOption(flags: string, description: string, negation?: string): OptionSpec<boolean> {
  return { flags, description, ...(negation !== undefined ? { negation } : {}) };
}

function optionsOf<T>(spec: OptionSpec<T>): Option[] {
  const o = new Option(spec.flags, spec.description);
  const flag = o.long ?? o.short ?? spec.flags;
  if (spec.choices) o.choices(spec.choices);
  else if (spec.parse) {
    const parse = spec.parse;
    o.argParser((text: string, previous: T | undefined) => parse(text, flag, previous));
  }
  if (spec.defaultValue !== undefined) o.default(spec.defaultValue);
  const out = [o];
  if (spec.negation !== undefined) out.push(new Option(`--no-${o.long!.replace(/^--/, "")}`, spec.negation));
  return out;
}

/** Registers every option of the table, in its order. */
export function addOptions<C>(cmd: Command, table: OptionTable<C>): Command {
  for (const spec of Object.values(table) as OptionSpec<unknown>[]) for (const o of optionsOf(spec)) cmd.addOption(o);
  return cmd;
}

/** What commander parsed (`cmd.opts()` or the action's options) → the settings the table fills. */
export function readOptions<C>(table: OptionTable<C>, parsed: Readonly<Record<string, unknown>>): Partial<C> {
  const out: Partial<C> = {};
  for (const [key, spec] of Object.entries(table) as [keyof C & string, OptionSpec<unknown>][]) {
    const value = parsed[new Option(spec.flags).attributeName()];
    if (value !== undefined) out[key] = value as C[keyof C & string];
  }
  return out;
}
