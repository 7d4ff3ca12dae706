/**
 * The build: from an empty dist/, the compiled TypeScript (tsc → dist/src, what bin/gglib.js runs) and the
 * dashboard (esbuild → dist/ui, what the proxy serves at /ui). One list of steps, run by `npm run build`,
 * by `npm run setup` (before `npm start`) and by `npm test`, so none of them can leave out a part.
 *
 *   npx tsx scripts/build.ts
 */
import { spawnSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildUi } from "./build-ui.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const DIST_DIR = join(root, "dist");

export interface BuildStep {
  title: string;
  /** A file the step writes, relative to dist/: the sign that the step ran. */
  produces?: string;
  run(dist: string): Promise<void>;
}

/** tsc with tsconfig.build.json into <dist>/src. */
function compile(dist: string): Promise<void> {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", dist], {
    cwd: root,
    stdio: "inherit",
  });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
    return Promise.reject(new Error(`tsc failed (${why}); fix the type errors it printed above and build again.`));
  }
  return Promise.resolve();
}

export const BUILD_STEPS: readonly BuildStep[] = [
  // from an empty dist/: a file removed from src/ must not linger there (and be packed)
  { title: "clean dist/", run: (dist) => Promise.resolve(rmSync(dist, { recursive: true, force: true })) },
  { title: "compile the TypeScript (tsc → dist/src)", produces: "src/cli/main.js", run: compile },
  {
    // our llama.cpp source patches (src/llama/install/patches.ts reads them beside its compiled module)
    title: "copy the llama.cpp patches (→ dist/src/llama/install/patches)",
    produces: "src/llama/install/patches/slot-checkpoints.patch",
    run: (dist) =>
      Promise.resolve(
        cpSync(join(root, "src/llama/install/patches"), join(dist, "src/llama/install/patches"), { recursive: true }),
      ),
  },
  {
    title: "build the dashboard (esbuild → dist/ui)",
    produces: "ui/index.html",
    run: async (dist) => {
      await buildUi(join(dist, "ui"));
    },
  },
];

/** Every step, in order, into `dist`. */
export async function build(
  log: (line: string) => void = (s) => process.stdout.write(`${s}\n`),
  dist: string = DIST_DIR,
): Promise<void> {
  for (const s of BUILD_STEPS) {
    log(`${s.title}…`);
    await s.run(dist);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    await build();
  } catch (e) {
    process.stderr.write(`build: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
