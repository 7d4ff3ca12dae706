import type { Command } from "commander";
import * as add from "./add.js";
import * as fit from "./fit.js";
import * as list from "./list.js";
import * as rm from "./rm.js";
import * as scan from "./scan.js";
import * as set from "./set.js";
import * as show from "./show.js";

/**
 * `gglib models …`: the model registry (SQLite in the data dir) and a merged view of every model source. One file
 * per subcommand, each exporting `register(models)`; to add one: a file and an entry in the list below.
 */
export function register(program: Command): void {
  const models = program
    .command("models")
    .description("Manage the model registry and see every model the proxy can serve")
    .addHelpText(
      "after",
      `
Sources (a higher one wins a name): the proxy config > the registry > the models dir.

Examples:
  gglib models add ./tiny.gguf --alias t --ctx 4096
  gglib models add ./Qwen3-4B/ --name qwen3 -- --temp 0.6 --top-k 20
  gglib models list --json
  gglib models set qwen3 ctx=8192 jinja=on ttl=10m
  gglib models scan ~/models
  gglib models fit qwen3 --ctx 32768
  gglib models rm qwen3`,
    );

  for (const sub of [add, list, show, rm, scan, set, fit]) sub.register(models);
}
