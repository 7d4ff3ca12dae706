#!/usr/bin/env node
// Entry point of the `gglib` command. Runs the compiled CLI (dist/, from `npm run build`) when it is at least as
// new as the TypeScript sources; otherwise (a development checkout with edits not yet built) the sources through
// tsx, so a stale build is never run by mistake.
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const compiled = join(root, "dist", "src", "cli", "main.js");
const srcDir = join(root, "src");

function newestSource() {
  let newest = 0;
  for (const f of readdirSync(srcDir, { recursive: true })) {
    if (!String(f).endsWith(".ts")) continue;
    const m = statSync(join(srcDir, String(f))).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

const useCompiled = existsSync(compiled) && (!existsSync(srcDir) || statSync(compiled).mtimeMs >= newestSource());
if (useCompiled) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(join(srcDir, "cli", "main.ts")).href);
}
