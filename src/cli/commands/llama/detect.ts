import { Option, type Command } from "commander";
import {
  BACKENDS,
  checkDependencies,
  detectBackend,
  formatDependencies,
  systemProbe,
  type BackendChoice,
} from "../../../llama/install/detect.js";
import { classifySource } from "../../../llama/install/source-build.js";

/** `gglib llama detect`: the backend `install` would pick, and the build tools. */
export function register(llama: Command): void {
  llama
    .command("detect")
    .description("Show the backend `install` would pick and whether the build tools are there")
    .addOption(
      new Option("--backend <backend>", "check the tools for this backend")
        .choices(["auto", ...BACKENDS])
        .default("auto"),
    )
    .option("--source <dir|bundle|url>", "check the tools for building from this source")
    .option("--json", "print as JSON")
    .addHelpText("after", "\nExamples:\n  gglib llama detect\n  gglib llama detect --backend vulkan --json")
    .action(async (o: { backend: BackendChoice; source?: string; json?: boolean }) => {
      const probe = systemProbe();
      const detection = await detectBackend(probe);
      const backend = o.backend === "auto" ? detection.backend : o.backend;
      const deps = await checkDependencies(
        { backend, needGit: o.source ? classifySource(o.source) !== "dir" : true },
        probe,
      );
      if (o.json) {
        process.stdout.write(JSON.stringify({ detected: detection, backend, dependencies: deps }, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        [
          `Backend: ${backend}${o.backend === "auto" ? "" : ` (asked; auto would pick ${detection.backend})`}`,
          ...detection.reasons.map((r) => `  ${r}`),
          "",
          "Build tools:",
          formatDependencies(deps),
        ].join("\n") + "\n",
      );
    });
}
