import type { Command } from "commander";
import type { RegisteredModel } from "../../../models/registry.js";
import { findModel, loadModelSources } from "../../../models/sources.js";
import { colors } from "../../../term/color.js";
import { formatBytes } from "../../../term/format.js";
import { out, settingsText, registeredJson } from "./output.js";
import { loadSourcesOptions, withRegistry, type SourceOpts } from "./sources.js";
import { collectValues, SKIP_STORE_FLAG, SKIP_STORE_HELP } from "../../stores-flag.js";
import type { StoreInfo } from "../../../models/stores/index.js";

/** `gglib models show <name>`: one model in full. */
export function register(models: Command): void {
  models
    .command("show")
    .description("Show one model: files, settings, cached metadata")
    .argument("<name>", "name or alias")
    .option("--json", "print as JSON")
    .option("--models-dir <dir>", "also look in this models folder")
    .option("--config <file>", "also look in this proxy config")
    .option(SKIP_STORE_FLAG, SKIP_STORE_HELP, collectValues)
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
            ...(e!.aliases.length ? [`  aliases: ${e!.aliases.join(", ")}`] : []),
            `  settings: ${settingsText(e!.settings) || "(defaults)"}`,
            ...storeLines(e!.store),
          ].join("\n"),
        );
      });
    });
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

/** A store model's store, and what the store says about it (shown only: llama-server runs the GGUF's own template). */
function storeLines(info: StoreInfo | undefined): string[] {
  if (!info) return [];
  const lines = [`  store:    ${info.root} (${info.ref}); read-only`];
  if (info.params) lines.push(`  params:   ${JSON.stringify(info.params)} (the store's; not applied)`);
  if (info.system) lines.push(`  system:   ${JSON.stringify(info.system.slice(0, 200))} (the store's; not applied)`);
  if (info.template)
    lines.push(
      `  template: ${JSON.stringify(info.template.slice(0, 200))}${info.template.length > 200 ? "…" : ""} (the store's; the GGUF's own is used)`,
    );
  return lines;
}
