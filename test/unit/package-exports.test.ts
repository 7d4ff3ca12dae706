/**
 * The package's exports map stays true: the root export and every subpath (`gglib-runtime/<area>`, one file per
 * area in src/api/) import from the built dist under the package's own name, with the same names as the source,
 * and have their type declarations. Needs `npm run build` (npm test builds first).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  exports: Record<string, string | { types: string; import: string }>;
  files: string[];
};
const areas = readdirSync(join(root, "src/api"))
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.slice(0, -3));

/** Each public specifier with the source file it is built from. */
const entries: { spec: string; source: string; js: string; dts: string }[] = [
  { spec: pkg.name, source: "src/index.ts", js: "dist/src/index.js", dts: "dist/src/index.d.ts" },
  ...areas.map((a) => ({
    spec: `${pkg.name}/${a}`,
    source: `src/api/${a}.ts`,
    js: `dist/src/api/${a}.js`,
    dts: `dist/src/api/${a}.d.ts`,
  })),
];

test("the exports map sends the root to src/index and each subpath to src/api/<area>", () => {
  const star = pkg.exports["./*"];
  assert.ok(typeof star === "object", 'package.json "exports" has a "./*" pattern');
  assert.equal(star.import, "./dist/src/api/*.js");
  assert.equal(star.types, "./dist/src/api/*.d.ts");
  assert.ok(pkg.files.includes("dist/src"));
  assert.ok(areas.length >= 9, `areas: ${areas.join(", ")}`);
});

for (const e of entries) {
  test(`${e.spec} imports from the built dist with the source's names`, async () => {
    assert.ok(existsSync(join(root, e.js)), `${e.js} is missing: run npm run build`);
    assert.ok(existsSync(join(root, e.dts)), `${e.dts} is missing: run npm run build`);
    const built = (await import(e.spec)) as Record<string, unknown>;
    const source = (await import(pathToFileURL(join(root, e.source)).href)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(built).sort(), Object.keys(source).sort(), `${e.js} is stale: run npm run build`);
    assert.ok(Object.keys(built).length > 0);
  });
}

test("the GGUF writer (a test tool) is not part of the package", () => {
  assert.ok(!existsSync(join(root, "src/gguf/writer.ts")));
  const packed = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: root, encoding: "utf8" })) as {
    files: { path: string }[];
  }[];
  const files = packed[0]!.files.map((f) => f.path);
  assert.ok(files.includes("dist/src/index.js"), "the package holds the build");
  assert.deepEqual(
    files.filter((f) => /writer|^test\//.test(f)),
    [],
    "stale build output: run npm run build (it starts from a clean dist)",
  );
  for (const e of entries) {
    const text = readFileSync(join(root, e.source), "utf8");
    assert.doesNotMatch(text, /writer/, e.source);
  }
});
