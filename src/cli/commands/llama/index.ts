import type { Command } from "commander";
import * as detect from "./detect.js";
import * as install from "./install.js";
import * as status from "./status.js";
import * as uninstall from "./uninstall.js";
import * as update from "./update.js";

/**
 * `gglib llama install | status | update | uninstall | detect`: llama.cpp under the data dir. One file per
 * subcommand, each exporting `register(llama)`. Progress and messages go to stderr; with --json the result goes to
 * stdout as JSON.
 */
export function register(program: Command): void {
  // `llama install --version <tag>` must reach the subcommand, not the program's own -V/--version
  program.enablePositionalOptions();
  const llama = program
    .command("llama")
    .description("Install and manage llama.cpp (llama-server) in gglib's data dir")
    .addHelpText(
      "after",
      `
Examples:
  gglib llama install                              prebuilt release for this machine (online)
  gglib llama install --source ~/src/llama.cpp     build offline from a folder
  gglib llama install --source llama.bundle        build from a git bundle
  gglib llama install --source https://github.com/ggml-org/llama.cpp --version b7000 --backend cuda
  gglib llama status
  gglib llama update
  gglib llama uninstall --yes`,
    );

  for (const sub of [install, status, update, uninstall, detect]) sub.register(llama);
}
