import type { Command } from "commander";
import { existsSync } from "node:fs";
import { modelTags } from "../../../models/capabilities.js";
import { loadModelSources, type Clash, type ModelEntry } from "../../../models/sources.js";
import { colors } from "../../../term/color.js";
import { formatBytes } from "../../../term/format.js";
import { table } from "../../../term/text.js";
import { out, metadataSummary, settingsText } from "./output.js";
import { loadSourcesOptions, withRegistry, type SourceOpts } from "./sources.js";

/** `gglib models list`: every model from every source, with name clashes. */
export function register(models: Command): void {
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
