#!/usr/bin/env node
// `npm test`: lint, typecheck, build (the TypeScript and the dashboard in dist/ui), make sure the real llama-server
// for the e2e tests exists (built once from the llama.cpp source shipped in node-llama-cpp, cached outside the repo), then run every test file with node's
// test runner, and close with a plain "N passed, N failed" line.
//
//   node scripts/test.mjs                 everything
//   node scripts/test.mjs --only unit     only test/unit (no llama-server needed)
//   node scripts/test.mjs --skip-checks   skip lint/typecheck/build
//   node scripts/test.mjs test/e2e/x.test.ts   just these files
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const skipChecks = args.includes("--skip-checks");
const explicit = args.filter((a, i) => a.endsWith(".ts") && args[i - 1] !== "--only");
const bin = (name) => join(root, "node_modules", ".bin", name);

function step(title, cmd, cmdArgs, opts = {}) {
  const t0 = Date.now();
  process.stdout.write(`\n== ${title}\n`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: "inherit", ...opts });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    process.stdout.write(`== ${title}: FAILED (exit ${r.status ?? r.signal}) after ${secs}s\n`);
    process.stdout.write(`0 passed, 1 failed\n`);
    process.exit(1);
  }
  process.stdout.write(`== ${title}: ok (${secs}s)\n`);
  return r;
}

if (!skipChecks) {
  step("format (prettier --check)", bin("prettier"), ["--check", "--log-level", "warn", "."]);
  step("lint (eslint)", bin("eslint"), ["."]);
  step("typecheck (tsc)", bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]);
  step("typecheck the dashboard (tsc -p web)", bin("tsc"), ["-p", "web/tsconfig.json", "--noEmit"]);
  step("typecheck the fake llama-server (tsc --checkJs)", bin("tsc"), ["-p", "test/support/fake-llama/tsconfig.json"]);
  // `npm run build`: from a clean dist, the compiled TypeScript and the dashboard (scripts/build.ts)
  step("build (tsc → dist/src, esbuild → dist/ui)", process.execPath, ["--import", "tsx", "scripts/build.ts"]);
}

function findTests(dir) {
  let out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(findTests(p));
    else if (e.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const suites = only ? [only] : ["unit", "integration", "e2e"];
const files = explicit.length > 0 ? explicit : suites.flatMap((s) => findTests(join(root, "test", s)));
const needsLlama =
  files.some((f) => f.includes(`${"/"}e2e${"/"}`)) ||
  files.some((f) => readFileSync(f, "utf8").includes("ensureLlamaServer"));

const env = { ...process.env };
// saved KV caches of the proxies the tests start stay inside this checkout (not in the user's cache dir)
env.GGLIB_CONTEXT_CACHE_DIR ??= join(root, ".tmp", "kv-context");
// never the user's Ollama / LM Studio / HF cache / llama.cpp cache: the store tests point each store at a temp dir
env.GGLIB_STORES ??= "none";
if (needsLlama && !env.GGLIB_TEST_LLAMA_SERVER) {
  const r = step(
    "real llama-server for the e2e tests (first run builds it: 10-20 min on 2 cores; then cached)",
    process.execPath,
    [
      "--import",
      "tsx",
      join(root, "test/support/ensure-llama-server-cli.ts"),
      "--print-path-to",
      join(root, ".tmp/llama-server-path"),
    ],
  );
  void r;
  env.GGLIB_TEST_LLAMA_SERVER = readFileSync(join(root, ".tmp/llama-server-path"), "utf8").trim();
  process.stdout.write(`llama-server: ${env.GGLIB_TEST_LLAMA_SERVER}\n`);
}

mkdirSync(join(root, ".tmp"), { recursive: true });
// one file per run: several runs at once (developers, agents) must not count each other's results
const tapFile = join(root, ".tmp", `test-results-${process.pid}.tap`);
process.stdout.write(`\n== tests (${files.length} files)\n`);
const r = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    "--test-concurrency=1",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    "--test-reporter=tap",
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { cwd: root, stdio: "inherit", env },
);
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const tap = readFileSync(tapFile, "utf8");
  passed = Number(/^# pass (\d+)/m.exec(tap)?.[1] ?? 0);
  failed = Number(/^# fail (\d+)/m.exec(tap)?.[1] ?? 0) + Number(/^# cancelled (\d+)/m.exec(tap)?.[1] ?? 0);
  skipped = Number(/^# skipped (\d+)/m.exec(tap)?.[1] ?? 0);
} catch {
  failed = Math.max(failed, 1);
}
rmSync(tapFile, { force: true });
if (r.status !== 0 && failed === 0) failed = 1;
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exit(r.status === 0 && failed === 0 ? 0 : 1);
