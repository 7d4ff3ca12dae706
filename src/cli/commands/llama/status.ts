import type { Command } from "commander";
import { llamaStatus, type LlamaStatus } from "../../../llama/install/status.js";
import { colors } from "../../../term/color.js";
import { formatDuration } from "../../../term/format.js";

/** `gglib llama status`: the installed llama.cpp, and whether it runs. */
export function register(llama: Command): void {
  llama
    .command("status")
    .description("Show the installed llama.cpp and check that it runs (`llama-server --version`)")
    .option("--json", "print as JSON")
    .addHelpText(
      "after",
      "\nExit status: 0 installed and working, 1 otherwise.\n\nExamples:\n  gglib llama status\n  gglib llama status --json",
    )
    .action(async (o: { json?: boolean }) => {
      const s = await llamaStatus();
      if (o.json) process.stdout.write(JSON.stringify(s, null, 2) + "\n");
      else process.stdout.write(renderStatus(s) + "\n");
      if (!s.healthy) process.exitCode = 1;
    });
}

function renderStatus(s: LlamaStatus): string {
  const c = colors(process.stdout);
  const lines: string[] = [];
  if (!s.installed) {
    lines.push(`llama.cpp: ${c.yellow("not installed")} (${s.problem ?? ""})`);
    lines.push(`  expected at: ${s.binaryPath}`);
    lines.push("  install: gglib llama install   (offline: gglib llama install --source <dir|bundle|git URL>)");
  } else {
    lines.push(
      `llama.cpp: ${s.healthy ? c.green("installed, working") : c.red(`installed, broken: ${s.problem ?? ""}`)}`,
    );
    lines.push(`  binary:    ${s.binaryPath}`);
    const r = s.record;
    if (s.versionText) lines.push(`  --version: ${s.versionText.split("\n")[0]}`);
    if (r) {
      lines.push(`  backend:   ${r.backend}`);
      lines.push(
        `  from:      ${r.installType === "prebuilt" ? `release ${r.tag ?? ""} (${r.asset ?? r.source})` : `${r.sourceKind} ${r.source}`}`,
      );
      lines.push(`  commit:    ${r.commit}`);
      lines.push(
        `  installed: ${r.installedAt}${r.durationMs !== undefined ? ` (took ${formatDuration(r.durationMs)})` : ""}`,
      );
      if (r.cmakeFlags.length) lines.push(`  cmake:     ${r.cmakeFlags.join(" ")}`);
      if (r.patches?.length) lines.push(`  patches:   ${r.patches.join(", ")} (gglib's, src/llama/install/patches.ts)`);
      if (r.logFile) lines.push(`  build log: ${r.logFile}`);
    } else {
      lines.push(c.yellow("  no install record (installed by hand?)"));
    }
    if (!s.healthy) lines.push("  fix: gglib llama install --force");
  }
  if (s.override)
    lines.push(c.yellow(`  note: GGLIB_LLAMA_SERVER=${s.override} is set; gglib runs that binary instead`));
  return lines.join("\n");
}
