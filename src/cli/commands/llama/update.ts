import type { Command } from "commander";
import { updateLlama } from "../../../llama/install/update.js";
import { jobsOption, runInstall } from "./reporter.js";

/** `gglib llama update`: update llama.cpp from where it came. */
export function register(llama: Command): void {
  llama
    .command("update")
    .description("Update llama.cpp from where it came: the latest release, or its source (a git URL is fetched again)")
    .option("-f, --force", "rebuild / re-download even if up to date")
    .option("-j, --jobs <n>", "parallel build jobs", jobsOption)
    .option("--json", "print the install record as JSON on stdout")
    .addHelpText("after", "\nExamples:\n  gglib llama update\n  gglib llama update --force")
    .action(async (o: { force?: boolean; jobs?: number; json?: boolean }) => {
      await runInstall(o.json, (reporter, signal) =>
        updateLlama({
          ...(o.force ? { force: true } : {}),
          ...(o.jobs ? { jobs: o.jobs } : {}),
          reporter,
          signal,
        }),
      );
    });
}
