import { Command, Option } from "commander";
import { createInterface } from "node:readline/promises";
import { GglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import { parseNumberOption } from "../options.js";
import {
  BACKENDS,
  checkDependencies,
  detectBackend,
  formatDependencies,
  systemProbe,
  type BackendChoice,
} from "../../llama/install/detect.js";
import {
  installLlama,
  llamaStatus,
  uninstallLlama,
  updateLlama,
  type InstallReporter,
  type InstallResult,
  type LlamaStatus,
} from "../../llama/install/install.js";
import { classifySource } from "../../llama/install/source-build.js";
import { colors, formatDuration, ProgressLine } from "../ui.js";

/**
 * `gglib llama install | status | update | uninstall | detect`: llama.cpp under the data dir.
 * Progress and messages go to stderr; with --json the result goes to stdout as JSON.
 */

/** Draws steps, a progress bar per step, and messages on stderr. */
export class CliInstallReporter implements InstallReporter {
  private bar: ProgressLine | undefined;
  private label = "";
  private readonly c = colors(process.stderr);

  step(message: string): void {
    this.finishBar();
    this.label = message;
    process.stderr.write(`${this.c.cyan("→")} ${message}\n`);
  }

  progress(fraction: number, detail: string): void {
    if (!this.bar) this.bar = new ProgressLine(`  ${this.label}`, { stream: process.stderr, plainStepPercent: 10 });
    this.bar.update(fraction, detail);
  }

  info(message: string): void {
    this.finishBar();
    process.stderr.write(this.c.dim(message) + "\n");
  }

  warn(message: string): void {
    this.finishBar();
    process.stderr.write(this.c.yellow(`warning: ${message}`) + "\n");
  }

  finishBar(): void {
    this.bar?.done();
    this.bar = undefined;
  }
}

function int(v: string): number {
  return parseNumberOption("--jobs", v, { kind: "integer", min: 1, example: "4" });
}

function printResult(r: InstallResult, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(
      JSON.stringify(
        { changed: r.changed, record: r.record, ...(r.versionText ? { versionText: r.versionText } : {}) },
        null,
        2,
      ) + "\n",
    );
    return;
  }
  if (!r.changed) return;
  const c = colors(process.stderr);
  const rec = r.record;
  process.stderr.write(
    [
      `${c.green("✓")} llama.cpp ${rec.version} (${rec.backend}) installed${rec.durationMs !== undefined ? ` in ${formatDuration(rec.durationMs)}` : ""}`,
      `  binary: ${rec.binaryPath}`,
      `  record: ${paths.llamaInstallRecord()}`,
      ...(rec.logFile ? [`  build log: ${rec.logFile}`] : []),
      "",
    ].join("\n"),
  );
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

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const a = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    return a === "y" || a === "yes";
  } finally {
    rl.close();
  }
}

export function register(program: Command): void {
  // `llama install --version <tag>` must reach the subcommand, not the program's own -V/--version
  program.enablePositionalOptions();
  const llama = program
    .command("llama")
    .description("Install and manage llama.cpp (llama-server) in gglib's data dir")
    .addHelpText(
      "after",
      `
Examples:
  gglib llama install                              prebuilt release for this machine (online)
  gglib llama install --source ~/src/llama.cpp     build offline from a folder
  gglib llama install --source llama.bundle        build from a git bundle
  gglib llama install --source https://github.com/ggml-org/llama.cpp --version b7000 --backend cuda
  gglib llama status
  gglib llama update
  gglib llama uninstall --yes`,
    );

  llama
    .command("install")
    .description("Download a prebuilt llama-server, or build one from source with --source")
    .option(
      "--source <dir|bundle|url>",
      "build from a llama.cpp folder, a git bundle or a git URL (works offline for folder/bundle)",
    )
    .addOption(new Option("--backend <backend>", "compute backend").choices(["auto", ...BACKENDS]).default("auto"))
    .option("--version <tag>", "release tag (prebuilt) or git ref (--source URL/bundle), e.g. b7000")
    .option("-f, --force", "reinstall even if llama.cpp is installed")
    .option("-j, --jobs <n>", "parallel build jobs (default: all cores)", int)
    .option("--json", "print the install record as JSON on stdout")
    .argument("[cmakeFlags...]", "extra cmake -D flags for a source build, after --")
    .addHelpText(
      "after",
      `
Backends: auto picks Metal on Apple Silicon, CUDA when nvcc and an NVIDIA GPU are present, Vulkan when its SDK,
glslc and a GPU are present, else CPU. A source build needs cmake and a C++ compiler (and git for a bundle or URL);
missing tools are listed with the command that installs them. The full build log is kept; its path is printed
when a build fails.

Environment:
  GGLIB_LLAMA_RELEASES_URL   releases API (default https://api.github.com/repos/ggml-org/llama.cpp/releases)
  GGLIB_CACHE_DIR            build trees, downloads and build logs

Examples:
  gglib llama install
  gglib llama install --backend vulkan
  gglib llama install --source ./llama.cpp -- -DGGML_NATIVE=OFF
  gglib llama install --source /tmp/llama.bundle --json`,
    )
    .action(
      async (
        cmakeFlags: string[],
        o: {
          source?: string;
          backend: BackendChoice;
          version?: string;
          force?: boolean;
          jobs?: number;
          json?: boolean;
        },
      ) => {
        if (cmakeFlags.length > 0 && !o.source) {
          throw new GglibError("invalid_config", "cmake flags are only used when building from source.", {
            hint: "Add --source <dir|bundle|git URL>, or drop the extra arguments.",
          });
        }
        const bad = cmakeFlags.find((f) => !f.startsWith("-D"));
        if (bad)
          throw new GglibError("invalid_config", `"${bad}" is not a cmake -D flag.`, {
            hint: "Pass cmake flags after --, e.g. -- -DGGML_NATIVE=OFF",
          });
        const rep = new CliInstallReporter();
        const ac = new AbortController();
        const onSig = () => ac.abort();
        process.once("SIGINT", onSig);
        try {
          const r = await installLlama({
            ...(o.source ? { source: o.source } : {}),
            backend: o.backend,
            ...(o.version ? { version: o.version } : {}),
            ...(o.force ? { force: true } : {}),
            ...(o.jobs ? { jobs: o.jobs } : {}),
            ...(cmakeFlags.length ? { cmakeFlags } : {}),
            reporter: rep,
            signal: ac.signal,
          });
          rep.finishBar();
          printResult(r, o.json);
        } finally {
          rep.finishBar();
          process.off("SIGINT", onSig);
        }
      },
    );

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

  llama
    .command("update")
    .description("Update llama.cpp from where it came: the latest release, or its source (a git URL is fetched again)")
    .option("-f, --force", "rebuild / re-download even if up to date")
    .option("-j, --jobs <n>", "parallel build jobs", int)
    .option("--json", "print the install record as JSON on stdout")
    .addHelpText("after", "\nExamples:\n  gglib llama update\n  gglib llama update --force")
    .action(async (o: { force?: boolean; jobs?: number; json?: boolean }) => {
      const rep = new CliInstallReporter();
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once("SIGINT", onSig);
      try {
        const r = await updateLlama({
          ...(o.force ? { force: true } : {}),
          ...(o.jobs ? { jobs: o.jobs } : {}),
          reporter: rep,
          signal: ac.signal,
        });
        rep.finishBar();
        printResult(r, o.json);
      } finally {
        rep.finishBar();
        process.off("SIGINT", onSig);
      }
    });

  llama
    .command("uninstall")
    .description("Remove the llama.cpp installed by gglib")
    .option("-y, --yes", "do not ask")
    .option("--purge", "also remove build trees and downloads from the cache")
    .option("--json", "print what was removed as JSON")
    .addHelpText("after", "\nExamples:\n  gglib llama uninstall --yes\n  gglib llama uninstall --yes --purge")
    .action(async (o: { yes?: boolean; purge?: boolean; json?: boolean }) => {
      if (!o.yes) {
        if (!process.stdin.isTTY) {
          throw new GglibError("invalid_config", "Refusing to uninstall without confirmation.", {
            hint: "Pass --yes.",
          });
        }
        if (!(await confirm(`Remove ${paths.llamaDir()}?`))) {
          process.stderr.write("Cancelled.\n");
          return;
        }
      }
      const r = await uninstallLlama({ ...(o.purge ? { purge: true } : {}) });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + "\n");
      else {
        process.stdout.write(
          r.removed ? `Removed ${r.dir}\n` : `llama.cpp is not installed (${r.dir} does not exist).\n`,
        );
        for (const p of r.purged) process.stdout.write(`Removed ${p}\n`);
      }
    });

  llama
    .command("detect")
    .description("Show the backend `install` would pick and whether the build tools are there")
    .addOption(
      new Option("--backend <backend>", "check the tools for this backend")
        .choices(["auto", ...BACKENDS])
        .default("auto"),
    )
    .option("--source <dir|bundle|url>", "check the tools for building from this source")
    .option("--json", "print as JSON")
    .addHelpText("after", "\nExamples:\n  gglib llama detect\n  gglib llama detect --backend vulkan --json")
    .action(async (o: { backend: BackendChoice; source?: string; json?: boolean }) => {
      const probe = systemProbe();
      const detection = await detectBackend(probe);
      const backend = o.backend === "auto" ? detection.backend : o.backend;
      const deps = await checkDependencies(
        { backend, needGit: o.source ? classifySource(o.source) !== "dir" : true },
        probe,
      );
      if (o.json) {
        process.stdout.write(JSON.stringify({ detected: detection, backend, dependencies: deps }, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        [
          `Backend: ${backend}${o.backend === "auto" ? "" : ` (asked; auto would pick ${detection.backend})`}`,
          ...detection.reasons.map((r) => `  ${r}`),
          "",
          "Build tools:",
          formatDependencies(deps),
        ].join("\n") + "\n",
      );
    });
}
