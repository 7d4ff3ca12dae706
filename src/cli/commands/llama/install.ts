import { Option, type Command } from "commander";
import { GglibError } from "../../../core/errors.js";
import { BACKENDS, type BackendChoice } from "../../../llama/install/detect.js";
import { installLlama } from "../../../llama/install/install.js";
import { jobsOption, runInstall } from "./reporter.js";

/** `gglib llama install`: a prebuilt llama-server, or one built from source with --source. */
export function register(llama: Command): void {
  llama
    .command("install")
    .description("Download a prebuilt llama-server, or build one from source with --source")
    .option(
      "--source <dir|bundle|url>",
      "build from a llama.cpp folder, a git bundle or a git URL (works offline for folder/bundle)",
    )
    .addOption(new Option("--backend <backend>", "compute backend").choices(["auto", ...BACKENDS]).default("auto"))
    .option("--version <tag>", "release tag (prebuilt) or git ref (--source URL/bundle), e.g. b7000")
    .option("-f, --force", "reinstall even if llama.cpp is installed")
    .option("-j, --jobs <n>", "parallel build jobs (default: all cores)", jobsOption)
    .option("--json", "print the install record as JSON on stdout")
    .argument("[cmakeFlags...]", "extra cmake -D flags for a source build, after --")
    .addHelpText(
      "after",
      `
Backends: auto picks Metal on Apple Silicon, CUDA when nvcc and an NVIDIA GPU are present, Vulkan when its SDK,
glslc and a GPU are present, else CPU. A source build needs cmake and a C++ compiler (and git for a bundle or URL);
missing tools are listed with the command that installs them. The full build log is kept; its path is printed
when a build fails.

Environment:
  GGLIB_LLAMA_RELEASES_URL   releases API (default https://api.github.com/repos/ggml-org/llama.cpp/releases)
  GGLIB_CACHE_DIR            build trees, downloads and build logs

Examples:
  gglib llama install
  gglib llama install --backend vulkan
  gglib llama install --source ./llama.cpp -- -DGGML_NATIVE=OFF
  gglib llama install --source /tmp/llama.bundle --json`,
    )
    .action(
      async (
        cmakeFlags: string[],
        o: {
          source?: string;
          backend: BackendChoice;
          version?: string;
          force?: boolean;
          jobs?: number;
          json?: boolean;
        },
      ) => {
        if (cmakeFlags.length > 0 && !o.source) {
          throw new GglibError("invalid_config", "cmake flags are only used when building from source.", {
            hint: "Add --source <dir|bundle|git URL>, or drop the extra arguments.",
          });
        }
        const bad = cmakeFlags.find((f) => !f.startsWith("-D"));
        if (bad)
          throw new GglibError("invalid_config", `"${bad}" is not a cmake -D flag.`, {
            hint: "Pass cmake flags after --, e.g. -- -DGGML_NATIVE=OFF",
          });
        await runInstall(o.json, (reporter, signal) =>
          installLlama({
            ...(o.source ? { source: o.source } : {}),
            backend: o.backend,
            ...(o.version ? { version: o.version } : {}),
            ...(o.force ? { force: true } : {}),
            ...(o.jobs ? { jobs: o.jobs } : {}),
            ...(cmakeFlags.length ? { cmakeFlags } : {}),
            reporter,
            signal,
          }),
        );
      },
    );
}
