import type { Command } from "commander";
import { GglibError } from "../../../core/errors.js";
import { findModel, loadModelSources } from "../../../models/sources.js";
import { notOursMessage } from "../../../models/stores/index.js";
import { out } from "./output.js";
import { loadSourcesOptions, withRegistry } from "./sources.js";

/** `gglib models rm <name>`: unregister a model (the file stays). */
export function register(models: Command): void {
  models
    .command("rm")
    .alias("remove")
    .description("Remove a model from the registry (the file stays)")
    .argument("<name>", "name or alias")
    .option("--json", "print the removed model as JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      await withRegistry(async (reg) => {
        if (!reg.get(name)) {
          const e = findModel(loadModelSources(loadSourcesOptions({})).models, name);
          const notOurs = e ? notOursMessage(e) : undefined;
          if (notOurs) {
            throw new GglibError("invalid_config", `${notOurs}.`, {
              hint: "Or hide that tool's models from gglib: --skip-store, or `stores:` in the config file.",
            });
          }
          if (e) {
            throw new GglibError(
              "model_not_found",
              `"${name}" is not registered: it is the file ${e.path} in the models dir.`,
              {
                hint: "Delete or move the file to remove it from the proxy.",
              },
            );
          }
        }
        const m = reg.remove(name);
        out(o.json, m, () => `Removed ${m.name} (the file ${m.path} is untouched)`);
      });
    });
}
