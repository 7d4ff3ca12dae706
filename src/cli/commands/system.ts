import type { Command } from "commander";
import { errorMessage, isGglibError } from "../../core/errors.js";
import { resolveLlamaServer } from "../../llama/binary.js";
import { probeCapabilities } from "../../llama/capabilities.js";
import { DefaultSystemProbe } from "../../system/probe.js";
import type { SystemInfo, SystemProbe } from "../../system/types.js";
import { colors, type Colors } from "../../term/color.js";
import { formatBytes } from "../../term/format.js";

/**
 * `gglib system [--json]`: CPU, RAM, GPUs (nvidia-smi, rocm-smi, Apple Silicon, Vulkan), and the llama-server gglib
 * would use, with its version and backend.
 */

export interface LlamaServerReport {
  found: boolean;
  path?: string;
  /** env | configured | installed | path */
  source?: string;
  version?: string;
  build?: number;
  commit?: string;
  backend?: string;
  error?: string;
  hint?: string;
}

export interface SystemReport extends SystemInfo {
  llamaServer: LlamaServerReport;
  /** Plain-language remarks about the machine and the binary together. */
  advice: string[];
}

export interface SystemReportDeps {
  probe?: SystemProbe;
  env?: NodeJS.ProcessEnv;
}

export async function collectSystemReport(deps: SystemReportDeps = {}): Promise<SystemReport> {
  const probe = deps.probe ?? new DefaultSystemProbe();
  const [info, llamaServer] = await Promise.all([probe.probe({ fresh: true }), describeLlamaServer(deps.env)]);
  const advice: string[] = [];
  const backend = llamaServer.backend?.toLowerCase();
  if (llamaServer.found && backend && info.accelerator !== "cpu" && !backend.includes(info.accelerator)) {
    advice.push(
      `This machine has a ${info.accelerator.toUpperCase()} GPU but the llama-server in use reports a ${llamaServer.backend} build: the GPU goes unused. Install a ${info.accelerator} build with \`gglib llama install\`.`,
    );
  }
  return { ...info, llamaServer, advice };
}

async function describeLlamaServer(env?: NodeJS.ProcessEnv): Promise<LlamaServerReport> {
  let resolved: { path: string; source: string };
  try {
    resolved = await resolveLlamaServer(env ? { env } : {});
  } catch (e) {
    const r: LlamaServerReport = { found: false, error: errorMessage(e) };
    if (isGglibError(e) && e.details.hint) r.hint = e.details.hint;
    return r;
  }
  const r: LlamaServerReport = { found: true, path: resolved.path, source: resolved.source };
  try {
    const caps = await probeCapabilities(resolved.path);
    if (caps.version) r.version = caps.version;
    if (caps.build !== undefined) r.build = caps.build;
    if (caps.commit) r.commit = caps.commit;
    r.backend = caps.backend;
  } catch (e) {
    r.error = errorMessage(e);
    if (isGglibError(e) && e.details.hint) r.hint = e.details.hint;
  }
  return r;
}

/** The human-readable report. */
export function formatSystemReport(r: SystemReport, c: Colors): string {
  const out: string[] = [];
  const label = (s: string) => c.bold(s.padEnd(13));
  const cont = " ".repeat(13);
  const cores = `${r.cpu.availableCores} cores available${r.cpu.physicalCores !== undefined ? ` (${r.cpu.physicalCores} physical, ${r.cpu.logicalCores} logical)` : ` (${r.cpu.logicalCores} logical)`}`;
  out.push(`${label("CPU")}${r.cpu.model} · ${cores} · ${r.cpu.arch}`);
  if (r.cpu.simd.length > 0) out.push(`${cont}${c.dim("SIMD: " + r.cpu.simd.join(" "))}`);
  const limit = r.ram.cgroupLimitBytes !== undefined ? ` · container limit ${formatBytes(r.ram.cgroupLimitBytes)}` : "";
  out.push(
    `${label("RAM")}${formatBytes(r.ram.totalBytes)} total · ${formatBytes(r.ram.availableBytes)} available${limit}`,
  );
  if (r.gpus.length === 0) {
    out.push(`${label("GPU")}${c.yellow("none")}`);
  } else {
    r.gpus.forEach((g, i) => {
      const mem =
        g.totalBytes !== undefined
          ? g.freeBytes !== undefined
            ? `${formatBytes(g.freeBytes)} free of ${formatBytes(g.totalBytes)}${g.unifiedMemory ? " (unified memory share)" : ""}`
            : `${formatBytes(g.totalBytes)}`
          : "memory not reported";
      const extra = [g.driverVersion ? `driver ${g.driverVersion}` : undefined, g.architecture, `via ${g.source}`]
        .filter(Boolean)
        .join(" · ");
      out.push(
        `${label(i === 0 ? "GPU" : "")}${c.green(`${g.index}`)} ${g.name} · ${mem}${extra ? c.dim(" · " + extra) : ""}`,
      );
    });
  }
  const versions = [
    r.cudaDriverVersion ? `CUDA ${r.cudaDriverVersion} (driver)` : undefined,
    r.cudaToolkitVersion ? `CUDA toolkit ${r.cudaToolkitVersion}` : undefined,
    r.vulkanVersion ? `Vulkan ${r.vulkanVersion}` : undefined,
  ].filter(Boolean);
  out.push(
    `${label("Accelerator")}${r.accelerator === "cpu" ? "cpu" : c.green(r.accelerator)}${versions.length ? c.dim(" · " + versions.join(" · ")) : ""}`,
  );
  const ls = r.llamaServer;
  if (ls.found) {
    const meta = [ls.version ? `version ${ls.version}` : undefined, ls.backend ? `backend ${ls.backend}` : undefined]
      .filter(Boolean)
      .join(" · ");
    out.push(`${label("llama-server")}${ls.path} ${c.dim(`(${ls.source})`)}`);
    if (meta) out.push(`${cont}${meta}`);
    if (ls.error) out.push(`${cont}${c.red(ls.error)}`);
  } else {
    out.push(`${label("llama-server")}${c.red("not found")} · ${ls.error ?? ""}`);
    if (ls.hint) out.push(`${cont}${ls.hint}`);
  }
  out.push(
    `${label("Tools")}${r.tools.map((t) => (t.present ? (t.error ? c.yellow(`${t.name} !`) : c.green(`${t.name} ✓`)) : c.dim(`${t.name} –`))).join("  ")}`,
  );
  for (const n of [...r.notes, ...r.advice]) out.push(`${c.yellow("•")} ${n}`);
  return out.join("\n");
}

export function register(program: Command): void {
  program
    .command("system")
    .description("Show the machine (CPU, RAM, GPUs) and the llama-server gglib would use")
    .option("--json", "print everything as JSON")
    .addHelpText(
      "after",
      `
GPUs are found with nvidia-smi (NVIDIA), rocm-smi (AMD), sysctl (Apple Silicon) and vulkaninfo (others).
A missing tool means "not present", never an error.

Examples:
  gglib system
  gglib system --json | jq .ram.availableBytes`,
    )
    .action(async (opts: { json?: boolean }) => {
      const report = await collectSystemReport();
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      else process.stdout.write(formatSystemReport(report, colors(process.stdout)) + "\n");
    });
}
