import { Option, type Command } from "commander";
import { GglibError } from "../../../core/errors.js";
import { parseDurationSeconds, type ModelSettings } from "../../../models/registry.js";

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

export function int(name: string, min: number) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v.trim()) || Number(v) < min) {
      throw new GglibError("invalid_config", `--${name} must be an integer >= ${min} (got "${v}").`, {
        hint: `Example: --${name} ${Math.max(min, 1)}`,
      });
    }
    return Number(v);
  };
}

export function addSettingsOptions(cmd: Command): Command {
  return cmd
    .option("--ctx <n>", "context size in tokens (0 = the model's trained context)", int("ctx", 0))
    .option("--gpu-layers <n>", "layers on the GPU (-1 = all)", int("gpu-layers", -1))
    .option("--jinja", "use the model's chat template (--jinja)")
    .option("--no-jinja", "do not use the chat template")
    .addOption(
      new Option("--reasoning-format <f>", "how llama-server returns thinking").choices([
        "none",
        "deepseek",
        "deepseek-legacy",
        "auto",
      ]),
    )
    .option("--parallel <n>", "slots (--parallel)", int("parallel", 1))
    .option("--ttl <duration>", "unload after this long idle (300, 5m, 1h; 0 = never)")
    .option("--pin", "never evict this model for another")
    .option("--preload", "load when the proxy starts");
}

export interface SettingsFlags {
  ctx?: number;
  gpuLayers?: number;
  jinja?: boolean;
  reasoningFormat?: ModelSettings["reasoningFormat"];
  parallel?: number;
  ttl?: string;
  pin?: boolean;
  preload?: boolean;
}

export function settingsFromFlags(f: SettingsFlags, extra: string[]): ModelSettings {
  const s: ModelSettings = {};
  if (f.ctx !== undefined) s.ctx = f.ctx;
  if (f.gpuLayers !== undefined) s.gpuLayers = f.gpuLayers;
  if (f.jinja !== undefined) s.jinja = f.jinja;
  if (f.reasoningFormat !== undefined) s.reasoningFormat = f.reasoningFormat;
  if (f.parallel !== undefined) s.parallel = f.parallel;
  if (f.ttl !== undefined) s.ttl = parseDurationSeconds("--ttl", f.ttl);
  if (f.pin) s.pinned = true;
  if (f.preload) s.preload = true;
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
