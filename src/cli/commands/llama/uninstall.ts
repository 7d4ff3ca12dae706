import type { Command } from "commander";
import { createInterface } from "node:readline/promises";
import { GglibError } from "../../../core/errors.js";
import { paths } from "../../../core/paths.js";
import { uninstallLlama } from "../../../llama/install/uninstall.js";

/** `gglib llama uninstall`: remove the llama.cpp gglib installed. */
export function register(llama: Command): void {
  llama
    .command("uninstall")
    .description("Remove the llama.cpp installed by gglib")
    .option("-y, --yes", "do not ask")
    .option("--purge", "also remove build trees and downloads from the cache")
    .option("--json", "print what was removed as JSON")
    .addHelpText("after", "\nExamples:\n  gglib llama uninstall --yes\n  gglib llama uninstall --yes --purge")
    .action(async (o: { yes?: boolean; purge?: boolean; json?: boolean }) => {
      if (!o.yes) {
        if (!process.stdin.isTTY) {
          throw new GglibError("invalid_config", "Refusing to uninstall without confirmation.", {
            hint: "Pass --yes.",
          });
        }
        if (!(await confirm(`Remove ${paths.llamaDir()}?`))) {
          process.stderr.write("Cancelled.\n");
          return;
        }
      }
      const r = await uninstallLlama({ ...(o.purge ? { purge: true } : {}) });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + "\n");
      else {
        process.stdout.write(
          r.removed ? `Removed ${r.dir}\n` : `llama.cpp is not installed (${r.dir} does not exist).\n`,
        );
        for (const p of r.purged) process.stdout.write(`Removed ${p}\n`);
      }
    });
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const a = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    return a === "y" || a === "yes";
  } finally {
    rl.close();
  }
}
