/**
 * Writes the tiny test models into a folder and prints their paths, one per line:
 *
 *   npx tsx test/support/make-tiny-models.ts DIR
 *
 * tiny-a.gguf and tiny-b.gguf are ChatML chat models with different weights; tiny-think.gguf opens a <think>
 * block in its generation prompt (run it with --reasoning-format deepseek to get reasoning_content).
 *
 *   npx tsx test/support/make-tiny-models.ts DIR --families
 *
 * also writes one model of each family of test/support/archs/ (gemma3.gguf, granitehybrid.gguf, qwen3.gguf, …).
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { FAMILIES, writeArchModel, type ArchFamily } from "./archs/index.js";
import { writeTinyModel } from "./tiny-models.js";

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir || dir === "--help" || dir === "-h") {
    process.stderr.write("usage: npx tsx test/support/make-tiny-models.ts DIR [--families]\n");
    process.exitCode = dir ? 0 : 2;
    return;
  }
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  const paths = [
    await writeTinyModel(out, { name: "tiny-a", kind: "chat", seed: 1 }),
    await writeTinyModel(out, { name: "tiny-b", kind: "chat", seed: 2 }),
    await writeTinyModel(out, { name: "tiny-think", kind: "think", seed: 3 }),
  ];
  if (process.argv.includes("--families")) {
    for (const family of Object.keys(FAMILIES) as ArchFamily[]) paths.push(await writeArchModel(out, { family }));
  }
  process.stdout.write(paths.join("\n") + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(`make-tiny-models: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
