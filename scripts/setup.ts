// `npm run setup`: what a fresh machine needs before `npm start` (= `gglib proxy`):
//  1. the build (scripts/build.ts, the same steps as `npm run build`): the compiled CLI and the dashboard that the
//     proxy serves at /ui,
//  2. a llama-server: kept if one resolves (GGLIB_LLAMA_SERVER, the install in the data dir, PATH); otherwise the
//     test rig's build when `npm test` already built what a source install would build here (same commit, backend
//     and flags: one build per machine, not two); otherwise `gglib llama install`, which downloads the prebuilt
//     release when online, and else builds llama.cpp from the source that the npm package node-llama-cpp ships
//     (registry only; 10-20 min on 2 cores),
//  3. a models folder (<data dir>/models); when it holds no model, three tiny demo models (random weights: they
//     answer gibberish, but fast) so the endpoint can be tried at once. Put real GGUF files there.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { paths } from "../src/core/paths.js";
import { resolveLlamaServer } from "../src/llama/binary.js";
import { detectBackend } from "../src/llama/install/detect.js";
import { adoptBuild } from "../src/llama/install/install.js";
import { fetchLlamaSourceBundle } from "../src/llama/install/npm-bundle.js";
import { rigBuildFor, rigInstallDir } from "../test/support/llama-server.js";
import { writeTinyModel } from "../test/support/tiny-models.js";
import { BUILD_STEPS, DIST_DIR } from "./build.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const say = (s: string) => process.stdout.write(`setup: ${s}\n`);
const gglib = (args: string[]) => spawnSync(process.execPath, ["bin/gglib.js", ...args], { stdio: "inherit" });

export interface SetupStep {
  title: string;
  run(): Promise<void>;
}

/** The build from scratch (npm run build's steps), then llama-server, then the models folder. */
export const SETUP_STEPS: readonly SetupStep[] = [
  ...BUILD_STEPS.map((s) => ({ title: s.title, run: () => s.run(DIST_DIR) })),
  { title: "find or install llama-server", run: ensureLlamaServer },
  { title: "models folder", run: ensureModels },
];

async function ensureLlamaServer(): Promise<void> {
  try {
    say(`llama-server: ${(await resolveLlamaServer()).path}`);
    return;
  } catch {
    /* none yet: install one */
  }
  const rig = await rigBuildFor((await detectBackend()).backend);
  if (rig) {
    // `npm test` already built this commit with these flags: install that build instead of compiling it again
    const r = await adoptBuild({ from: rigInstallDir(), record: rig });
    say(`installed the test rig's llama.cpp build (${r.record.version}, ${r.record.backend}): ${r.record.binaryPath}`);
  } else {
    say("no llama-server found: installing llama.cpp");
    await installLlamaCpp();
  }
}

async function installLlamaCpp(): Promise<void> {
  let r = gglib(["llama", "install"]);
  if (r.status !== 0) {
    say("the prebuilt download is not available here; building llama.cpp from source instead");
    const bundle = await fetchLlamaSourceBundle({ log: say });
    r = gglib(["llama", "install", "--source", bundle]);
    if (r.status !== 0)
      throw new Error(`gglib llama install --source failed (exit ${r.status ?? r.signal}); see above.`);
  }
}

async function ensureModels(): Promise<void> {
  const models = paths.modelsDir();
  mkdirSync(models, { recursive: true });
  const hasModel = readdirSync(models, { recursive: true }).some((f) => String(f).endsWith(".gguf"));
  if (hasModel) {
    say(`models folder: ${models}`);
    return;
  }
  await writeTinyModel(models, { name: "demo-chat", kind: "chat" });
  await writeTinyModel(models, { name: "demo-think", kind: "think", seed: 3 });
  // a 64k context and a template that takes tools: what `gglib launch claude|codex|opencode` needs
  await writeTinyModel(models, {
    name: "demo-agent",
    kind: "chat",
    seed: 5,
    contextLength: 65536,
    chatTemplate: readFileSync(join(ROOT, "test/fixtures/templates/chatml-tools.jinja"), "utf8"),
  });
  writeFileSync(
    join(models, "README.txt"),
    "demo-chat.gguf, demo-think.gguf and demo-agent.gguf are tiny random-weight models written by `npm run setup`\n" +
      "so the proxy has something to serve (demo-agent: a 64k context and a tool template, for `gglib launch`).\n" +
      "They answer gibberish. Put real GGUF models in this folder and delete them.\n",
  );
  say(`wrote demo models demo-chat, demo-think and demo-agent into ${models}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    for (const s of SETUP_STEPS) {
      say(`${s.title}…`);
      await s.run();
    }
  } catch (e) {
    say(`failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
  say("done. Start the proxy with `npm start`: http://127.0.0.1:8080/v1, the dashboard at http://127.0.0.1:8080/ui/.");
}
