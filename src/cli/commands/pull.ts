import type { Command } from "commander";
import { GglibError, isGglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import type { PullOptions, PullProgress, PullResult } from "../../hub/pull.js";
import { colors } from "../../term/color.js";
import { formatBytes, formatDuration } from "../../term/format.js";
import { ProgressLine } from "../../term/progress.js";
import { defaultHubCache } from "../../models/stores/index.js";

/**
 * `gglib pull <user>/<repo>[:<quant or file>]`: a GGUF model from Hugging Face into the models folder, registered
 * (src/hub/pull.ts does the work). A progress line per file with speed and ETA on a terminal, sparse plain lines
 * otherwise, NDJSON with --json.
 */

interface PullCliOptions {
  modelsDir?: string;
  name?: string;
  mmproj?: string | boolean;
  revision?: string;
  hubUrl?: string;
  token?: string;
  register?: boolean;
  dryRun?: boolean;
  json?: boolean;
  hfCache?: boolean;
}

/** `12.0 MiB / 80.0 MiB · 5.1 MiB/s · 13 s left` */
export function progressDetail(p: PullProgress): string {
  const parts: string[] = [];
  if (p.completed !== undefined && p.total !== undefined)
    parts.push(`${formatBytes(p.completed)} / ${formatBytes(p.total)}`);
  if (p.bytesPerSecond && p.bytesPerSecond > 0) {
    parts.push(`${formatBytes(p.bytesPerSecond)}/s`);
    if (p.completed !== undefined && p.total !== undefined && p.total > p.completed)
      parts.push(`${formatDuration(((p.total - p.completed) / p.bytesPerSecond) * 1000)} left`);
  }
  return parts.join(" · ");
}

function summary(r: PullResult, dryRun: boolean): string {
  const c = colors(process.stdout);
  const files = r.files.filter((f) => f.role === "model").length;
  const lines: string[] = [];
  const what = `${formatBytes(r.totalBytes)}, ${files} file${files === 1 ? "" : "s"}${r.mmproj ? " + mmproj" : ""}`;
  if (dryRun) lines.push(`${c.bold(r.repo)} → ${c.bold(r.name)} (${what}): would be pulled into ${r.dir}`);
  else {
    const fetched = r.transferredBytes > 0 ? `${formatBytes(r.transferredBytes)} downloaded` : "already here";
    lines.push(`${c.green("✓")} ${c.bold(r.repo)} → ${c.bold(r.name)} (${what}; ${fetched})`);
  }
  lines.push(`  ${c.dim(r.reason)}`);
  for (const w of r.warnings) lines.push(`  ${c.yellow("•")} ${w}`);
  if (!dryRun) {
    lines.push(`  ${c.dim("in")} ${r.dir}`);
    if (r.registered) {
      const aka = r.aliases.length > 0 ? ` ${c.dim(`(also ${r.aliases.join(", ")})`)}` : "";
      lines.push(`  registered as ${c.bold(r.name)}${aka}`);
    }
    lines.push(`  ${c.dim("use it:")} gglib chat ${r.name}   ·   gglib proxy ${c.dim(`(serves it as "${r.name}")`)}`);
  } else {
    for (const f of r.files) lines.push(`  ${f.repoPath} ${c.dim(formatBytes(f.size))}`);
  }
  return lines.join("\n");
}

export function register(program: Command): void {
  program
    .command("pull")
    .description("Download a GGUF model from Hugging Face into the models folder and register it")
    .argument("<model>", "<user>/<repo>[:<quantization or file>], e.g. bartowski/Qwen3-4B-GGUF:Q4_K_M")
    .option("--models-dir <dir>", `where the files go (default: ${paths.modelsDir()}, the proxy's default)`)
    .option("--name <name>", "model name (default: the file name without .gguf)")
    .option("--mmproj <file>", "which multimodal projector (a quantization like F16, or a file name)")
    .option("--no-mmproj", "leave the projector out")
    .option("--revision <rev>", "branch, tag or commit (default main; also <user>/<repo>@<rev>)")
    .option("--hub-url <url>", "hub endpoint (default: HF_ENDPOINT, else https://huggingface.co)")
    .option("--token <token>", "access token for private and gated repos (default: HF_TOKEN)")
    .option("--no-register", "place the files only (the models-folder scan still finds them)")
    .option(
      "--hf-cache",
      "into the Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub; or --models-dir) in its own layout, shared with other tools; not registered: listed as <user>/<repo>:<quant>",
    )
    .option("--dry-run", "show what would be downloaded, then stop")
    .option("--json", "progress and the result as NDJSON on stdout")
    .addHelpText(
      "after",
      `
Without a quantization, gglib picks the first of Q4_K_M, Q4_K_S, IQ4_XS, Q4_0, …, Q3_K_M, …, Q2_K, …, Q5_K_M,
Q6_K, Q8_0, F16 that the repo has and that fits this machine's free memory at 4096 tokens (the estimator of
\`gglib models fit\`, on the model's header read from the hub). Shards and the mmproj file of a multimodal model
come along. Each file is checked against the hub's SHA-256; an interrupted pull resumes where it stopped when run
again. Files go to <models-dir>/<user>/<repo>/<name>/.

Examples:
  gglib pull bartowski/Qwen3-4B-GGUF                  the default quantization for this machine
  gglib pull bartowski/Qwen3-4B-GGUF:Q8_0             a quantization
  gglib pull unsloth/gemma-3-4b-it-GGUF:UD-Q4_K_XL    a vision model: its mmproj comes along
  gglib pull user/repo:sub/dir/model-f16.gguf         a file
  HF_TOKEN=hf_… gglib pull meta-llama/…-GGUF          a gated repo (accept its terms on the hub first)
  gglib pull bartowski/Qwen3-4B-GGUF --dry-run --json
  gglib pull bartowski/Qwen3-4B-GGUF:Q4_K_M --hf-cache   shared with huggingface_hub and llama.cpp

Environment:
  HF_TOKEN       access token (private and gated repos)
  HF_ENDPOINT    hub URL (a mirror)`,
    )
    .action(async (ref: string, o: PullCliOptions) => {
      process.exitCode = await runPull(ref, o);
    });
}

async function runPull(ref: string, o: PullCliOptions): Promise<number> {
  const { pullModel } = await import("../../hub/pull.js");
  const ac = new AbortController();
  const onSigint = () => ac.abort(new GglibError("download_failed", "Stopped."));
  process.once("SIGINT", onSigint);
  let registry: PullOptions["registry"];
  const json = o.json === true;
  const line = (x: unknown) => process.stdout.write(JSON.stringify(x) + "\n");
  let bar: ProgressLine | undefined;
  let barFile: string | undefined;
  const err = colors(process.stderr);
  try {
    const hubCache = o.hfCache ? (o.modelsDir ?? defaultHubCache()) : undefined;
    if (o.hfCache && hubCache === undefined)
      throw new GglibError("invalid_config", "No Hugging Face cache folder: HOME is not set.", {
        hint: "Set HF_HUB_CACHE (or HF_HOME), or pass --models-dir <hub cache folder>.",
      });
    if (o.register !== false && !o.dryRun && !o.hfCache) {
      const { Registry } = await import("../../models/registry.js");
      registry = Registry.open();
    }
    const opts: PullOptions = {
      modelsDir: hubCache ?? o.modelsDir ?? paths.modelsDir(),
      ...(o.hfCache ? { hfCache: true } : {}),
      signal: ac.signal,
      onProgress: (p) => {
        if (json) {
          line({ event: "progress", ...p });
          return;
        }
        if (p.phase === "download" && p.file && p.total !== undefined) {
          if (barFile !== p.file) {
            bar?.done();
            barFile = p.file;
            const n = p.fileCount && p.fileCount > 1 ? ` (${p.fileIndex}/${p.fileCount})` : "";
            bar = new ProgressLine(`${p.file}${n}`, { stream: process.stderr });
          }
          bar!.update(p.total > 0 ? (p.completed ?? 0) / p.total : 1, progressDetail(p));
        } else if (p.phase === "verify") {
          bar?.done(`${err.green("✓")} ${p.file} ${err.dim(`verified (${formatBytes(p.total ?? 0)})`)}`);
          bar = undefined;
          barFile = undefined;
        }
      },
    };
    if (o.name !== undefined) opts.name = o.name;
    if (o.mmproj !== undefined && o.mmproj !== true) opts.mmproj = o.mmproj;
    if (o.revision !== undefined) opts.revision = o.revision;
    if (o.hubUrl !== undefined) opts.hubUrl = o.hubUrl;
    if (o.token !== undefined) opts.token = o.token;
    if (registry) opts.registry = registry;
    if (o.dryRun) opts.dryRun = true;
    const r = await pullModel(ref, opts);
    bar?.done();
    if (json) line({ event: "result", ...r });
    else process.stdout.write(summary(r, o.dryRun === true) + "\n");
    return 0;
  } catch (e) {
    bar?.done();
    const aborted = ac.signal.aborted;
    if (json) {
      line({
        event: "error",
        kind: isGglibError(e) ? e.kind : "internal",
        message: e instanceof Error ? e.message : String(e),
        ...(isGglibError(e) && e.details.hint ? { hint: e.details.hint } : {}),
      });
      return aborted ? 130 : 1;
    }
    if (aborted) {
      process.stderr.write("gglib: pull stopped. Run the same command again to resume.\n");
      return 130;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    registry?.close();
  }
}
