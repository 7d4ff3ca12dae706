import type { Command } from "commander";
import { loadModelSources } from "../../../models/sources.js";
import { colors } from "../../../term/color.js";
import { formatBytes } from "../../../term/format.js";
import {
  collect,
  addSettingsOptions,
  type SettingsFlags,
  settingsFromFlags,
  checkExtraAfterDashDash,
} from "./flags.js";
import { metadataSummary, out, registeredJson, settingsText } from "./output.js";
import { loadSourcesOptions, withRegistry } from "./sources.js";

/** `gglib models add <path>`: register a model file or folder. */
export function register(models: Command): void {
  addSettingsOptions(
    models
      .command("add")
      .description("Register a model file (or a folder holding one model: its shards and/or an mmproj file)")
      .argument("<path>", "a .gguf file (any shard of a split model) or a model folder")
      .argument("[llamaArgs...]", "extra llama-server arguments, after --")
      .option("--name <name>", "the name clients use (default: the file stem or folder name)")
      .option("--alias <alias>", "another name (repeat or comma-separate)", collect)
      .option("--mmproj <file>", "multimodal projector")
      .option("--json", "print the registered model as JSON"),
  )
    .addHelpText(
      "after",
      `
Examples:
  gglib models add ./tiny.gguf --alias t
  gglib models add ~/dl/gemma-3-4b/ --name gemma3 --ctx 8192 --jinja
  gglib models add ./m.gguf -- --temp 0.2 --top-k 40`,
    )
    .action(
      async (
        path: string,
        llamaArgs: string[],
        o: SettingsFlags & { name?: string; alias?: string[]; mmproj?: string; json?: boolean },
        cmd: Command,
      ) => {
        checkExtraAfterDashDash(cmd, llamaArgs);
        await withRegistry(async (reg) => {
          const m = await reg.add({
            path,
            ...(o.name ? { name: o.name } : {}),
            aliases: o.alias ?? [],
            ...(o.mmproj ? { mmproj: o.mmproj } : {}),
            settings: settingsFromFlags(o, llamaArgs),
          });
          const sources = loadModelSources({ registry: reg, ...loadSourcesOptions({}) });
          const clashes = sources.clashes.filter(
            (c) => !c.samePath && (c.loser.model === m.name || c.winner.model === m.name),
          );
          out(o.json, { ...registeredJson(m, reg), clashes }, () => {
            const c = colors(process.stdout);
            const sum = metadataSummary(m.metadata);
            const lines = [
              `${c.green("Added")} ${c.bold(m.name)}${m.aliases.length ? ` (aliases: ${m.aliases.join(", ")})` : ""} → ${m.path}`,
              `  ${[sum.arch, sum.params, sum.quant, sum.ctx ? `ctx ${sum.ctx}` : undefined, m.sizeBytes !== undefined ? formatBytes(m.sizeBytes) : undefined, m.shards.length > 1 ? `${m.shards.length} shards` : undefined, m.mmproj ? "mmproj" : undefined].filter(Boolean).join(", ")}`,
            ];
            if (m.metadataError) lines.push(c.yellow(`  metadata not read: ${m.metadataError}`));
            const st = settingsText(m.settings);
            if (st) lines.push(`  settings: ${st}`);
            for (const cl of clashes) lines.push(c.yellow(`  ! ${cl.message}`));
            return lines.join("\n");
          });
        });
      },
    );
}
