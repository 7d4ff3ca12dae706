import type { Command } from "commander";
import { GglibError } from "../../../core/errors.js";
import type { UpdateModelInput } from "../../../models/registry.js";
import { parseSettingAssignment, SETTING_NAMES } from "../../../models/settings-assign.js";
import { collect } from "./flags.js";
import { out, settingsText, registeredJson } from "./output.js";
import { withRegistry } from "./sources.js";

/** `gglib models set <name> key=value…`: change a registered model. */
export function register(models: Command): void {
  models
    .command("set")
    .description("Change a registered model's settings, name, aliases or mmproj")
    .argument("<name>", "name or alias")
    .argument(
      "<assignments...>",
      `key=value pairs; an empty value unsets. Keys: ${SETTING_NAMES.join(", ")}, name, aliases, mmproj`,
    )
    .option("--json", "print the updated model as JSON")
    .addHelpText(
      "after",
      `
Examples:
  gglib models set tiny ctx=8192 gpu-layers=all jinja=on
  gglib models set tiny ttl=5m pinned=true
  gglib models set tiny "extra-args=--temp 0.2 --top-k 40"
  gglib models set tiny name=tiny-chat aliases=t,tc
  gglib models set big rpc=192.168.1.20:50052,192.168.1.21:50052   (RPC workers, or an rpcGroups name)
  gglib models set tiny ctx=          (unset: back to the default)`,
    )
    .action(async (name: string, assignments: string[], o: { json?: boolean }) => {
      await withRegistry(async (reg) => {
        const patch: UpdateModelInput = {};
        const settings: NonNullable<UpdateModelInput["settings"]> = {};
        for (const a of assignments) {
          const eq = a.indexOf("=");
          const k = eq > 0 ? a.slice(0, eq).trim().toLowerCase() : "";
          const v = eq > 0 ? a.slice(eq + 1).trim() : "";
          if (k === "name") {
            if (!v) throw new GglibError("invalid_config", "name= needs a value.", { hint: "Example: name=tiny-chat" });
            patch.name = v;
          } else if (k === "aliases" || k === "alias") {
            patch.aliases = collect(v);
          } else if (k === "mmproj") {
            patch.mmproj = v ? v : null;
          } else {
            const { key, value } = parseSettingAssignment(a);
            Object.assign(settings, { [key]: value });
          }
        }
        patch.settings = settings;
        const m = reg.update(name, patch);
        out(
          o.json,
          registeredJson(m, reg),
          () =>
            `Updated ${m.name}: ${settingsText(m.settings) || "(default settings)"}${m.aliases.length ? `; aliases: ${m.aliases.join(", ")}` : ""}`,
        );
      });
    });
}
