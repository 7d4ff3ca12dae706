import type { Command } from "commander";
import { updateLlama } from "../../../llama/install/install.js";
import { CliInstallReporter, jobsOption, printResult } from "./reporter.js";

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
      const rep = new CliInstallReporter();
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once("SIGINT", onSig);
      try {
        const r = await updateLlama({
          ...(o.force ? { force: true } : {}),
          ...(o.jobs ? { jobs: o.jobs } : {}),
          reporter: rep,
          signal: ac.signal,
        });
        rep.finishBar();
        printResult(r, o.json);
      } finally {
        rep.finishBar();
        process.off("SIGINT", onSig);
      }
    });
}
