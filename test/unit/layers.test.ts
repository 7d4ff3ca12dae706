/**
 * The source tree's layers, checked on the import graph (type-only imports included):
 *  - each folder of src/ has a level; a file imports its own folder or a lower level, never a sibling or a level
 *    above (so chat cannot reach into the proxy or the CLI, and nothing but the CLI reaches the CLI);
 *  - a few finer rules (the `gglib models` commands do not import the proxy);
 *  - no import cycle anywhere in src/.
 * A new folder under src/ must be given a level here: one line in LEVELS.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cycles, importEdges, sourceFiles, type ImportEdge } from "../support/import-graph.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../..");

/** Lower first. A folder may import only its own files and folders of a strictly lower level. */
const LEVELS: Record<string, number> = {
  core: 0,
  term: 1, // terminal output: colours, tables, numbers for people (core/units.ts formats bytes)
  process: 1,
  gguf: 1,
  system: 2,
  rpc: 2, // llama.cpp RPC workers: addresses, the protocol probe, the split arithmetic (core only)
  llama: 3,
  models: 3,
  runner: 4,
  hub: 4, // Hugging Face downloads: models, gguf, system below; the proxy (Ollama /api/pull) and the CLI above
  peers: 4, // other hosts (issue 13): peer config, names across hosts, placement, the peer client; the proxy forwards
  agents: 4, // coding agents (gglib launch): each agent's settings, the model and context they get (pure)
  ollama: 4, // Ollama's API: pure translation; the HTTP side is src/proxy/routes/ollama/ (over the relay)
  chat: 5,
  proxy: 5,
  cli: 6,
  "(root)": 7, // src/index.ts, the package's root export
  api: 7, // the package's subpath exports (package.json "exports")
};

/** Finer rules inside a level: files under `from` must not import files under any of `not`. */
const FORBIDDEN: { from: string; not: string[]; why: string }[] = [
  { from: "src/cli/commands/models", not: ["src/proxy/"], why: "`gglib models` reads settings, not the proxy" },
  { from: "src/chat/", not: ["src/proxy/", "src/cli/"], why: "chat runs beside the proxy, not on it" },
];

/**
 * Imports that break a rule today and are being removed by the helper that owns the file (issue 9). An entry
 * here is allowed, not required: delete it once the import is gone.
 */
const KNOWN: ReadonlySet<string> = new Set([]);
const KNOWN_CYCLES: ReadonlySet<string> = new Set([]);

const folderOf = (file: string): string => {
  const parts = file.split("/");
  return parts.length > 2 ? parts[1]! : "(root)";
};
const key = (e: ImportEdge): string => `${e.from} -> ${e.to}`;

const edges = importEdges(root, sourceFiles(root, "src"));

test("every folder of src/ has a level", () => {
  const unknown = [...new Set(edges.flatMap((e) => [e.from, e.to]).map(folderOf))].filter((f) => !(f in LEVELS));
  assert.deepEqual(
    unknown,
    [],
    `give these folders a level in LEVELS (test/unit/layers.test.ts): ${unknown.join(", ")}`,
  );
});

test("no file imports a sibling folder or a folder above its own", () => {
  const bad = edges.filter((e) => {
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    return a !== b && (LEVELS[b] ?? 0) >= (LEVELS[a] ?? 0) && !KNOWN.has(key(e));
  });
  assert.deepEqual(
    bad.map(key),
    [],
    "levels: " +
      Object.entries(LEVELS)
        .map(([f, l]) => `${f}=${l}`)
        .join(" "),
  );
});

test("the finer rules hold (chat, gglib models)", () => {
  const bad = edges.filter(
    (e) =>
      !KNOWN.has(key(e)) && FORBIDDEN.some((r) => e.from.startsWith(r.from) && r.not.some((n) => e.to.startsWith(n))),
  );
  assert.deepEqual(bad.map(key), []);
});

test("no import cycle in src/, type-only imports included", () => {
  const found = cycles(edges)
    .map((c) => c.join(" ~ "))
    .filter((c) => !KNOWN_CYCLES.has(c));
  assert.deepEqual(found, []);
});

test("the cycle finder finds a cycle through a type-only import (it can fail)", () => {
  const edges: ImportEdge[] = [
    { from: "a.ts", to: "b.ts" },
    { from: "b.ts", to: "c.ts" },
    { from: "c.ts", to: "a.ts" },
    { from: "c.ts", to: "d.ts" },
  ];
  assert.deepEqual(cycles(edges), [["a.ts", "b.ts", "c.ts"]]);
  assert.deepEqual(cycles([{ from: "x.ts", to: "x.ts" }]), [["x.ts"]]);
  assert.deepEqual(cycles([{ from: "x.ts", to: "y.ts" }]), []);
});

test("the graph reader sees type-only imports, re-exports and dynamic imports", () => {
  const files = sourceFiles(root, "src");
  const all = importEdges(root, files).map(key);
  // import type … from
  assert.ok(all.includes("src/models/sources.ts -> src/models/settings.ts"));
  // export … from (the root export)
  assert.ok(all.includes("src/index.ts -> src/core/errors.ts"));
  // await import("…") (the CLI loads a command only when it runs)
  assert.ok(all.some((e) => e.startsWith("src/cli/main.ts -> src/cli/commands/")));
});

test("test/fixtures/ holds data only (code that serves tests lives in test/support/)", () => {
  const code = sourceFiles(root, "test/fixtures");
  const scripts = (dir: string): string[] =>
    readdirSync(join(root, dir), { recursive: true })
      .map(String)
      .filter((f) => /\.(m?js|cjs|mts|sh)$/.test(f));
  assert.deepEqual([...code, ...scripts("test/fixtures")], []);
});
