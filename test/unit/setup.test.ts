// `npm ci && npm run setup && npm start` (README's first command) must leave everything `npm start` advertises
// working: the compiled CLI and the dashboard at /ui. Setup, `npm run build` and `npm test` share one build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultUiDir } from "../../src/proxy/routes/ui.js";
import { BUILD_STEPS, DIST_DIR } from "../../scripts/build.js";
import { SETUP_STEPS } from "../../scripts/setup.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../..");

test("npm run setup runs every build step first, the dashboard's included", () => {
  const titles = SETUP_STEPS.map((s) => s.title);
  assert.deepEqual(
    titles.slice(0, BUILD_STEPS.length),
    BUILD_STEPS.map((s) => s.title),
  );
  assert.ok(titles.length > BUILD_STEPS.length, "then llama-server and the models folder");
});

test("the build writes what npm start reads: the compiled CLI and the dashboard's index.html", () => {
  const produced = BUILD_STEPS.flatMap((s) => (s.produces ? [join(DIST_DIR, s.produces)] : []));
  // bin/gglib.js runs dist/src/cli/main.js; the proxy serves defaultUiDir() at /ui
  assert.match(readFileSync(join(root, "bin", "gglib.js"), "utf8"), /"dist", "src", "cli", "main\.js"/);
  assert.ok(produced.includes(join(root, "dist", "src", "cli", "main.js")), produced.join(", "));
  assert.ok(produced.includes(join(defaultUiDir(), "index.html")), produced.join(", "));
});

test("npm run build and npm test run the same build (scripts/build.ts)", () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.build!, /scripts\/build\.ts/);
  assert.match(pkg.scripts.setup!, /scripts\/setup\.ts/);
  assert.match(readFileSync(join(root, "scripts", "test.mjs"), "utf8"), /"scripts\/build\.ts"/);
});
