import type { Command } from "commander";
import { REASONING_FORMATS } from "../../../core/config.js";
import { GglibError } from "../../../core/errors.js";
import type { SettableSetting } from "../../../models/settings-assign.js";
import type { ModelSettings } from "../../../models/settings.js";
import { choiceOption, numberOption, readOptions, switchOption, type OptionTable } from "../../options.js";

/** Options shared by `gglib models add` and friends: the settings flags, lists, extra llama-server arguments. */
export function collect(v: string, prev: string[] = []): string[] {
  return [
    ...prev,
    ...v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** `models add`'s settings flags, as the ModelSettings they set. */
export const SETTINGS_OPTIONS: OptionTable<Pick<ModelSettings, SettableSetting>> = {
  ctx: numberOption("--ctx <n>", "context size in tokens (0 = the model's trained context)", {
    kind: "integer",
    min: 0,
    example: "4096",
  }),
  gpuLayers: numberOption("--gpu-layers <n>", "layers on the GPU (-1 = all)", { kind: "integer", min: -1 }),
  jinja: switchOption("--jinja", "use the model's chat template (--jinja)", "do not use the chat template"),
  reasoningFormat: choiceOption("--reasoning-format <f>", "how llama-server returns thinking", REASONING_FORMATS),
  parallel: numberOption("--parallel <n>", "slots (--parallel)", { kind: "integer", min: 1 }),
  ttl: numberOption("--ttl <duration>", "unload after this long idle (300, 5m, 1h; 0 = never)", { kind: "seconds" }),
  pinned: switchOption("--pin", "never evict this model for another"),
  preload: switchOption("--preload", "load when the proxy starts"),
};

export function settingsFromFlags(parsed: Readonly<Record<string, unknown>>, extra: string[]): ModelSettings {
  const s: ModelSettings = readOptions(SETTINGS_OPTIONS, parsed);
  if (extra.length > 0) s.extraArgs = extra;
  return s;
}

/** Extra llama-server args are only accepted after `--` (a stray second path is an error, not an argument). */
export function checkExtraAfterDashDash(cmd: Command, extra: string[]): void {
  if (extra.length === 0) return;
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv;
  const dd = raw.indexOf("--");
  const afterDd = dd >= 0 ? raw.slice(dd + 1) : [];
  const before = extra.filter((x) => !afterDd.includes(x));
  if (dd < 0 || before.length > 0) {
    throw new GglibError(
      "invalid_config",
      `Unexpected argument "${(before[0] ?? extra[0])!}" for \`gglib ${cmd.parent?.name() ?? "models"} ${cmd.name()}\`.`,
      {
        hint: "Put extra llama-server arguments after --, e.g. gglib models add m.gguf -- --temp 0.2",
      },
    );
  }
}
