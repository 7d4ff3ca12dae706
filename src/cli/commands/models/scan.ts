import type { Command } from "commander";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { GglibError } from "../../../core/errors.js";
import { scanModelsDir } from "../../../models/sources.js";
import { colors } from "../../../term/color.js";
import { out } from "./output.js";
import { withRegistry } from "./sources.js";

/** `gglib models scan <dir>`: register every model in a folder. */
export function register(models: Command): void {
  models
    .command("scan")
    .description("Register every model found in a folder (files, shard sets, model folders with mmproj)")
    .argument("<dir>", "folder to scan (3 levels deep)")
    .option("--dry-run", "show what would be added")
    .option("--json", "print { added, skipped, warnings } as JSON")
    .addHelpText("after", `\nExamples:\n  gglib models scan ~/models\n  gglib models scan ~/models --dry-run`)
    .action(async (dir: string, o: { dryRun?: boolean; json?: boolean }) => {
      const abs = resolve(dir);
      if (!existsSync(abs))
        throw new GglibError("model_not_found", `Folder ${abs} does not exist.`, { hint: "Check the path." });
      await withRegistry(async (reg) => {
        const found = scanModelsDir(abs);
        const added: { name: string; path: string }[] = [];
        const skipped: { name: string; path: string; reason: string }[] = [];
        for (const f of found.models) {
          const existing = reg.findByPath(f.path);
          if (existing) {
            skipped.push({ name: f.name, path: f.path, reason: `already registered as "${existing.name}"` });
            continue;
          }
          if (reg.get(f.name)) {
            skipped.push({ name: f.name, path: f.path, reason: `the name "${f.name}" is taken; add it with --name` });
            continue;
          }
          if (o.dryRun) {
            added.push({ name: f.name, path: f.path });
            continue;
          }
          try {
            const m = await reg.add({ path: f.path, name: f.name, ...(f.mmproj ? { mmproj: f.mmproj } : {}) });
            added.push({ name: m.name, path: m.path });
          } catch (e) {
            skipped.push({ name: f.name, path: f.path, reason: e instanceof GglibError ? e.message : String(e) });
          }
        }
        out(o.json, { added, skipped, warnings: found.warnings, dryRun: Boolean(o.dryRun) }, () => {
          const c = colors(process.stdout);
          const lines = [
            ...added.map((a) => `${c.green(o.dryRun ? "would add" : "added")}  ${a.name}  ${c.dim(a.path)}`),
            ...skipped.map((s) => `${c.yellow("skipped")}  ${s.name}  ${c.dim(s.reason)}`),
            ...found.warnings.map((w) => c.yellow(`warning: ${w}`)),
            `${added.length} ${o.dryRun ? "to add" : "added"}, ${skipped.length} skipped`,
          ];
          return lines.join("\n");
        });
      });
    });
}
