// @ts-check
// arguments: every flag of the recorded --help text, with its value placeholder and env variable
import fs from "node:fs";
import path from "node:path";
import { ENV, FIXTURES } from "./knobs.mjs";
import { setVerbosity } from "./log.mjs";

export function loadFlagTable() {
  const table = new Map();
  let cur = null;
  for (const line of fs.readFileSync(path.join(FIXTURES, "server-help.txt"), "utf8").split("\n")) {
    if (line.startsWith("-----")) {
      cur = null;
      continue;
    }
    if (line.startsWith("-")) {
      const spec = line
        .replace(/,\s+/g, ", ")
        .split(/\s{2,}/)[0]
        .trim();
      const names = spec.split(", ");
      const last = names[names.length - 1];
      const sp = last.indexOf(" ");
      let placeholder = null;
      if (sp >= 0) {
        placeholder = last.slice(sp + 1);
        names[names.length - 1] = last.slice(0, sp);
      }
      const canonical = names.find((n) => n.startsWith("--") && !n.startsWith("--no-")) ?? names[0];
      cur = { names, placeholder, canonical, env: null, usage: [line] };
      for (const n of names) table.set(n, cur);
      const m = /\(env: ([A-Z0-9_]+)\)/.exec(line);
      if (m) cur.env = m[1];
    } else if (cur && line.startsWith(" ")) {
      cur.usage.push(line);
      const m = /\(env: ([A-Z0-9_]+)\)/.exec(line);
      if (m) cur.env = m[1];
    } else {
      cur = null;
    }
  }
  return table;
}

export function stoi(s) {
  const m = /^\s*[+-]?\d+/.exec(s);
  if (!m) return null;
  return parseInt(m[0], 10);
}

export function argError(msg, entry) {
  let out = `error while handling argument "${msg.flag}": ${msg.what}\n\nusage:\n`;
  if (entry) out += entry.usage.join("\n") + "\n";
  out += "\n\nto show complete usage, run with -h\n";
  process.stderr.write(out);
  process.exit(1);
}

export function parseArgs(argv) {
  const table = loadFlagTable();
  const values = new Map();
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const entry = table.get(a);
    if (!entry) {
      process.stderr.write(`error: invalid argument: ${a}\n`);
      process.exit(1);
    }
    if (entry.canonical === "--help") {
      help = true;
      continue;
    }
    if (entry.canonical === "--version") {
      version = true;
      continue;
    }
    if (entry.placeholder === null) {
      values.set(entry.canonical, !a.startsWith("--no-"));
      continue;
    }
    if (i + 1 >= argv.length) argError({ flag: a, what: "expected value for argument" }, entry);
    const v = argv[++i];
    if (/^(N|PORT)$/.test(entry.placeholder) && stoi(v) === null) argError({ flag: a, what: "stoi" }, entry);
    const choices = /^\[([a-z0-9-]+(?:\|[a-z0-9-]+)+)\]$/.exec(entry.placeholder);
    if (choices && !choices[1].split("|").includes(v)) {
      argError({ flag: a, what: `error: unknown value for ${entry.canonical}: '${v}'\n` }, entry);
    }
    values.set(entry.canonical, v);
  }
  // env fallbacks (LLAMA_ARG_*), the way llama.cpp reads them for flags not given on the command line
  for (const entry of new Set(table.values())) {
    if (!entry.env || values.has(entry.canonical)) continue;
    const v = ENV[entry.env];
    if (v === undefined) continue;
    if (entry.placeholder === null) values.set(entry.canonical, /^(1|true|on|enabled|yes)$/i.test(v));
    else values.set(entry.canonical, v);
  }
  return { values, help, version };
}

export const parsed = parseArgs(process.argv.slice(2));
if (parsed.help) {
  process.stdout.write(fs.readFileSync(path.join(FIXTURES, "server-help.txt")));
  process.exit(0);
}
if (parsed.version) {
  process.stderr.write(fs.readFileSync(path.join(FIXTURES, "server-version.txt")));
  process.exit(0);
}
export const A = parsed.values;
export const argStr = (k, d) => (A.has(k) && typeof A.get(k) === "string" ? A.get(k) : d);
export const argInt = (k, d) => (A.has(k) ? (stoi(String(A.get(k))) ?? d) : d);
export const argBool = (k) => A.get(k) === true;

setVerbosity(argInt("--verbosity", 3));
export const opt = {
  model: argStr("--model", ""),
  host: argStr("--host", "127.0.0.1"),
  port: argInt("--port", 8080),
  ctxSize: argInt("--ctx-size", 0),
  parallel: argInt("--parallel", -1),
  kvUnified: A.has("--kv-unified") ? argBool("--kv-unified") : undefined,
  aliases: argStr("--alias", "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
  apiKeys: argStr("--api-key", "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
  metrics: argBool("--metrics"),
  embeddings: argBool("--embedding"),
  reranking: argBool("--rerank"),
  props: argBool("--props"),
  slotSavePath: argStr("--slot-save-path", ""),
  reasoningFormat: argStr("--reasoning-format", "auto"),
  reasoning: argStr("--reasoning", "auto"),
  reasoningBudget: argInt("--reasoning-budget", -1),
  nPredict: argInt("--predict", -1),
  cacheTypeK: argStr("--cache-type-k", "f16"),
  cacheTypeV: argStr("--cache-type-v", "f16"),
  mmap: A.has("--mmap") ? argBool("--mmap") : true,
  cacheRamMib: argInt("--cache-ram", 8192),
  cacheIdleSlots: A.has("--cache-idle-slots") ? argBool("--cache-idle-slots") : true,
};
if (A.has("--api-key-file")) {
  try {
    for (const l of fs.readFileSync(String(A.get("--api-key-file")), "utf8").split("\n")) {
      const k = l.trim();
      if (k && !k.startsWith("#")) opt.apiKeys.push(k);
    }
  } catch {
    /* llama-server would fail here; the fake keeps going */
  }
}
export const routerMode = !opt.model;
