/**
 * Builds the dashboard (web/) into dist/ui: app.js (Preact + the views, one minified ES module), app.css,
 * index.html and favicon.svg. A step of scripts/build.ts (`npm run build`, `npm run setup`, `npm test`); the proxy
 * serves the result at /ui.
 *
 *   npx tsx scripts/build-ui.ts [--out DIR]      prints the files and their gzipped sizes
 */
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const UI_OUT_DIR = join(root, "dist", "ui");

export interface UiBuildReport {
  outDir: string;
  files: Array<{ name: string; bytes: number; gzipBytes: number }>;
  totalGzipBytes: number;
}

export async function buildUi(outDir: string = UI_OUT_DIR): Promise<UiBuildReport> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: join(root, "web", "src", "main.tsx") },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2022"],
    platform: "browser",
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
    logLevel: "warning",
    tsconfig: join(root, "web", "tsconfig.json"),
  });
  for (const f of ["index.html", "favicon.svg"]) copyFileSync(join(root, "web", f), join(outDir, f));
  const files = readdirSync(outDir)
    .sort()
    .map((name) => {
      const body = readFileSync(join(outDir, name));
      return { name, bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length };
    });
  return { outDir, files, totalGzipBytes: files.reduce((a, f) => a + f.gzipBytes, 0) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf("--out");
  const r = await buildUi(i > 0 ? process.argv[i + 1] : undefined);
  for (const f of r.files) process.stdout.write(`${f.name.padEnd(12)} ${f.bytes} B (gzip ${f.gzipBytes} B)\n`);
  process.stdout.write(`dashboard → ${r.outDir} (gzip total ${(r.totalGzipBytes / 1024).toFixed(1)} KiB)\n`);
}
