import type { Command } from "commander";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { REASONING_FORMATS } from "../../core/config.js";
import { GglibError } from "../../core/errors.js";
import {
  Registry,
  parseSettingAssignment,
  modelTags,
  SETTING_NAMES,
  type RegisteredModel,
  type SettableSetting,
  type UpdateModelInput,
} from "../../models/registry.js";
import { modelSourceOptions } from "../../models/resolve.js";
import type { ModelSettings } from "../../models/settings.js";
import { findModel, loadModelSources, scanModelsDir, type Clash, type ModelEntry } from "../../models/sources.js";
import { addOptions, choiceOption, numberOption, readOptions, switchOption, type OptionTable } from "../options.js";
import { colors, formatBytes } from "../ui.js";
import { registerFit } from "./models-fit.js";

/**
 * `gglib models …`: the model registry (SQLite in the data dir) and a merged view of every model source.
 */

interface SourceOpts {
  modelsDir?: string;
  config?: string;
}

function collect(v: string, prev: string[] = []): string[] {
  return [
    ...prev,
    ...v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

function out(json: boolean | undefined, data: unknown, human: () => string): void {
  if (json) process.stdout.write(JSON.stringify(data, null, 2) + "\n");
  else process.stdout.write(human() + "\n");
}

function withRegistry<T>(fn: (reg: Registry) => Promise<T>): Promise<T> {
  const reg = Registry.open();
  return fn(reg).finally(() => reg.close());
}

/** Facts worth a column, from whatever keys the GGUF reader produced. */
export function metadataSummary(meta: Record<string, unknown> | undefined): {
  arch?: string;
  ctx?: number;
  params?: string;
  quant?: string;
} {
  if (!meta) return {};
  const flat = meta;
  const get = (...keys: string[]): unknown => {
    for (const k of keys) {
      if (flat[k] !== undefined && flat[k] !== null) return flat[k];
    }
    return undefined;
  };
  const arch = get("architecture", "general.architecture");
  const archStr = typeof arch === "string" ? arch : undefined;
  const ctx = get(
    "contextLength",
    "context_length",
    "trainedContext",
    ...(archStr ? [`${archStr}.context_length`] : []),
  );
  const params = get("parameterCount", "parameters", "general.size_label", "sizeLabel");
  const quant = get("quantization", "fileType", "file_type", "general.file_type");
  return {
    ...(archStr ? { arch: archStr } : {}),
    ...(typeof ctx === "number" ? { ctx } : {}),
    ...(typeof params === "number" ? { params: humanCount(params) } : typeof params === "string" ? { params } : {}),
    ...(typeof quant === "string" || typeof quant === "number" ? { quant: String(quant) } : {}),
  };
}

function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function settingsText(s: ModelSettings): string {
  const parts: string[] = [];
  if (s.ctx !== undefined) parts.push(`ctx=${s.ctx}`);
  if (s.gpuLayers !== undefined) parts.push(`gpu-layers=${s.gpuLayers === -1 ? "all" : s.gpuLayers}`);
  if (s.jinja !== undefined) parts.push(`jinja=${s.jinja}`);
  if (s.reasoningFormat !== undefined) parts.push(`reasoning-format=${s.reasoningFormat}`);
  if (s.parallel !== undefined) parts.push(`parallel=${s.parallel}`);
  if (s.ttl !== undefined) parts.push(`ttl=${s.ttl}s`);
  if (s.pinned) parts.push("pinned");
  if (s.preload) parts.push("preload");
  if (s.extraArgs?.length) parts.push(`extra-args=${JSON.stringify(s.extraArgs.join(" "))}`);
  return parts.join(" ");
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => stripAnsi(r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i]! - stripAnsi(c).length)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "");
}

/** The config file (--config, else the data dir's config.yaml if it exists) and the models folder, as every command reads them. */
function loadSourcesOptions(opts: SourceOpts) {
  return modelSourceOptions({
    ...(opts.config !== undefined ? { configPath: opts.config } : {}),
    ...(opts.modelsDir !== undefined ? { modelsDir: opts.modelsDir } : {}),
    strict: true,
  }).options;
}

interface ListedModel extends ModelEntry {
  sizeBytes?: number;
  missing?: boolean;
  metadata?: Record<string, unknown>;
  metadataError?: string;
  /** Capability tags (reasoning, tools, embedding, vision…) from the cached metadata. */
  tags: string[];
  /** Clashes this model won (the entries it shadows). */
  clashes?: string[];
}

function registeredJson(m: RegisteredModel, reg: Registry): Record<string, unknown> {
  const st = reg.status(m);
  return { ...m, source: "registry", missing: st.missing };
}

/** `models add`'s settings flags, as the ModelSettings they set. */
const SETTINGS_OPTIONS: OptionTable<Pick<ModelSettings, SettableSetting>> = {
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

function settingsFromFlags(parsed: Readonly<Record<string, unknown>>, extra: string[]): ModelSettings {
  const s: ModelSettings = readOptions(SETTINGS_OPTIONS, parsed);
  if (extra.length > 0) s.extraArgs = extra;
  return s;
}

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

  // --- add
  addOptions(
    models
      .command("add")
      .description("Register a model file (or a folder holding one model: its shards and/or an mmproj file)")
      .argument("<path>", "a .gguf file (any shard of a split model) or a model folder")
      .argument("[llamaArgs...]", "extra llama-server arguments, after --")
      .option("--name <name>", "the name clients use (default: the file stem or folder name)")
      .option("--alias <alias>", "another name (repeat or comma-separate)", collect)
      .option("--mmproj <file>", "multimodal projector")
      .option("--json", "print the registered model as JSON"),
    SETTINGS_OPTIONS,
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
        o: { name?: string; alias?: string[]; mmproj?: string; json?: boolean } & Record<string, unknown>,
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

  // --- list
  models
    .command("list")
    .alias("ls")
    .description("List every model from the registry, the models dir and the proxy config, and flag name clashes")
    .option("--json", "machine-readable output: { models, clashes, warnings }")
    .option("--models-dir <dir>", "models folder to include (default: the data dir's models/ if it exists)")
    .option("--config <file>", "proxy config to include (default: the data dir's config.yaml if it exists)")
    .option("--no-refresh", "do not re-read metadata of changed files")
    .addHelpText(
      "after",
      `
Examples:
  gglib models list
  gglib models list --models-dir ~/models --json | jq '.models[].name'`,
    )
    .action(async (o: SourceOpts & { json?: boolean; refresh: boolean }) => {
      await withRegistry(async (reg) => {
        if (o.refresh) await reg.refreshStale();
        const sources = loadModelSources({ registry: reg, ...loadSourcesOptions(o) });
        const registered = new Map(reg.list().map((m) => [m.name, m]));
        const listed: ListedModel[] = sources.models.map((e) => {
          const r = e.source === "registry" ? registered.get(e.name) : undefined;
          const st = r ? reg.status(r) : undefined;
          const clashes = sources.clashes
            .filter((c) => c.winner.model === e.name && c.winner.source === e.source)
            .map((c) => c.message);
          return {
            ...e,
            ...(r?.sizeBytes !== undefined ? { sizeBytes: r.sizeBytes } : {}),
            ...(st ? { missing: st.missing } : { missing: !existsSync(e.path) }),
            ...(r?.metadata ? { metadata: r.metadata } : {}),
            ...(r?.metadataError ? { metadataError: r.metadataError } : {}),
            tags: modelTags({
              ...(r?.metadata ? { metadata: r.metadata } : {}),
              ...(e.mmproj ? { mmproj: e.mmproj } : {}),
            }),
            ...(clashes.length ? { clashes } : {}),
          };
        });
        out(o.json, { models: listed, clashes: sources.clashes, warnings: sources.warnings }, () =>
          renderList(listed, sources.clashes, sources.warnings),
        );
      });
    });

  // --- show
  models
    .command("show")
    .description("Show one model: files, settings, cached metadata")
    .argument("<name>", "name or alias")
    .option("--json", "print as JSON")
    .option("--models-dir <dir>", "also look in this models folder")
    .option("--config <file>", "also look in this proxy config")
    .action(async (name: string, o: SourceOpts & { json?: boolean }) => {
      await withRegistry(async (reg) => {
        const r = reg.get(name);
        if (r) {
          await reg.refresh(r.name);
          const m = reg.require(r.name);
          const st = reg.status(m);
          out(o.json, registeredJson(m, reg), () => renderShow(m, st.missing));
          return;
        }
        const sources = loadModelSources({ registry: reg, ...loadSourcesOptions(o) });
        const e = findModel(sources.models, name);
        if (!e) reg.require(name); // throws model_not_found with the known names
        out(o.json, e, () =>
          [
            `${e!.name}  (${e!.source})`,
            `  path: ${e!.path}`,
            ...(e!.mmproj ? [`  mmproj: ${e!.mmproj}`] : []),
            `  settings: ${settingsText(e!.settings) || "(defaults)"}`,
          ].join("\n"),
        );
      });
    });

  // --- rm
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

  // --- scan
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

  // --- set
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

  // --- fit (src/cli/commands/models-fit.ts)
  registerFit(models);
}

/** Extra llama-server args are only accepted after `--` (a stray second path is an error, not an argument). */
function checkExtraAfterDashDash(cmd: Command, extra: string[]): void {
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

function renderList(models: ListedModel[], clashes: Clash[], warnings: string[]): string {
  const c = colors(process.stdout);
  if (models.length === 0) {
    return [
      "No models yet.",
      "  gglib models add <file.gguf>      register one",
      "  gglib models scan <dir>           register a folder of them",
      ...warnings.map((w) => c.dim(`  (${w})`)),
    ].join("\n");
  }
  const rows: string[][] = [
    ["NAME", "SOURCE", "ALIASES", "SIZE", "ARCH", "CTX", "TAGS", "SETTINGS", "PATH"].map((h) => c.bold(h)),
  ];
  for (const m of models) {
    const sum = metadataSummary(m.metadata);
    const flag = m.clashes?.length ? c.yellow(" !") : "";
    rows.push([
      m.name + flag,
      m.source,
      m.aliases.join(",") || "-",
      m.sizeBytes !== undefined ? formatBytes(m.sizeBytes) : "-",
      sum.arch ?? "-",
      sum.ctx !== undefined ? String(sum.ctx) : "-",
      modelTags(m).join(",") || "-",
      settingsText(m.settings) || "-",
      m.missing ? c.red(`${m.path} (missing)`) : m.path,
    ]);
  }
  const lines = [table(rows)];
  const real = clashes.filter((x) => !x.samePath);
  const dups = clashes.filter((x) => x.samePath);
  if (real.length)
    lines.push("", c.yellow(`Name clashes (${real.length}):`), ...real.map((x) => c.yellow(`  ! ${x.message}`)));
  if (dups.length)
    lines.push(
      "",
      c.dim(
        `Duplicates (same file in two sources, listed once): ${dups.map((d) => `${d.name} (${d.loser.source})`).join(", ")}`,
      ),
    );
  for (const w of warnings) lines.push(c.dim(`warning: ${w}`));
  return lines.join("\n");
}

function renderShow(m: RegisteredModel, missing: boolean): string {
  const c = colors(process.stdout);
  const lines = [
    `${c.bold(m.name)}  (registry)`,
    `  aliases:  ${m.aliases.join(", ") || "-"}`,
    `  path:     ${m.path}${missing ? c.red("  (missing!)") : ""}`,
  ];
  if (m.shards.length > 1) lines.push(`  shards:   ${m.shards.length}`);
  if (m.mmproj) lines.push(`  mmproj:   ${m.mmproj}`);
  if (m.sizeBytes !== undefined) lines.push(`  size:     ${formatBytes(m.sizeBytes)}`);
  lines.push(`  settings: ${settingsText(m.settings) || "(defaults)"}`);
  const caps = m.metadata?.capabilities as Record<string, { present?: boolean; evidence?: string }> | undefined;
  if (caps) {
    const present = Object.entries(caps).filter(([k, v]) => k !== "tags" && v.present);
    lines.push(
      `  can:      ${present.length ? present.map(([k, v]) => `${k} (${v.evidence ?? ""})`).join("; ") : "chat"}`,
    );
  }
  lines.push(`  added:    ${m.addedAt}`);
  if (m.metadataError) lines.push(c.yellow(`  metadata: not readable: ${m.metadataError}`));
  if (m.metadata) {
    lines.push("  metadata:");
    for (const [k, v] of Object.entries(m.metadata)) {
      if (k === "capabilities" || k === "layerBytes" || k === "chatTemplates") continue;
      const s = typeof v === "string" ? v : JSON.stringify(v);
      lines.push(`    ${k}: ${s.length > 100 ? s.slice(0, 97) + "..." : s}`);
    }
  }
  return lines.join("\n");
}
