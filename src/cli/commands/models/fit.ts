import type { Command } from "commander";
import { existsSync, statSync } from "node:fs";
import { KV_CACHE_TYPES, type KvCacheType, type ServerConfig } from "../../../core/config.js";
import { GglibError } from "../../../core/errors.js";
import { readModelMetadata, type ModelMetadata } from "../../../gguf/reader.js";
import {
  adviseFit,
  budgetFromSnapshot,
  DEFAULT_HEADROOM_BYTES,
  estimateMemory,
  type FitAdvice,
  type FitBudget,
} from "../../../models/estimator.js";
import { launchDefaults, type LaunchDefaults } from "../../../models/launch-defaults.js";
import { resolveModelRef } from "../../../models/resolve.js";
import { describeRepack } from "../../../models/repack.js";
import { serverConfigOf } from "../../../models/settings.js";
import { cpuFeaturesForEstimates, DefaultSystemProbe } from "../../../system/probe.js";
import type { MemorySnapshot, SystemProbe } from "../../../system/types.js";
import { addOptions, choiceOption, numberOption, readOptions, switchOption, type OptionTable } from "../../options.js";
import { colors, type Colors } from "../../../term/color.js";
import { formatBytes, formatCount } from "../../../term/format.js";

/**
 * `gglib models fit <model> [--ctx N]`: the memory a model needs on this machine (weights, KV cache, compute,
 * output), whether it fits, how many layers go on the GPU, the largest context that fits, and the launch
 * settings gglib would pick. `<model>` is what `gglib chat` and `gglib serve` take: a .gguf path, a model folder,
 * or a name/alias from the config, the registry or the models folder (src/models/resolve.ts).
 */

export interface FitOptions {
  ctx?: number;
  parallel?: number;
  cacheTypeK?: KvCacheType;
  cacheTypeV?: KvCacheType;
  gpuLayers?: number;
  /** Headroom left free on each device (default 1 GiB, like llama.cpp's --fit). */
  headroomBytes?: number;
  /** Where names are looked up (default: the process's environment). */
  env?: NodeJS.ProcessEnv;
}

export interface FitReport {
  model: {
    name: string;
    path: string;
    files: string[];
    mmproj?: string;
    architecture: string;
    sizeLabel?: string;
    parameterCount: number;
    quantization?: string;
    sizeBytes: number;
    trainedContext?: number;
    layers?: number;
  };
  capabilities: string[];
  memory: MemorySnapshot;
  budget: FitBudget;
  advice: FitAdvice;
  launch: Pick<LaunchDefaults, "config" | "choices">;
  /** A model with RPC workers: its planned share here (what must fit this machine) and on the workers. */
  rpc?: { workers: string[]; localBytes: number; remoteBytes: number };
}

export async function fitReport(
  ref: string,
  opts: FitOptions = {},
  probe: SystemProbe = new DefaultSystemProbe(),
): Promise<FitReport> {
  const { entry: model } = resolveModelRef(ref, opts.env ? { env: opts.env } : {});
  let meta: ModelMetadata;
  try {
    meta = await readModelMetadata(model.path);
  } catch (e) {
    throw new GglibError("model_not_found", `Cannot read ${model.path}: ${(e as Error).message}`, {
      modelPath: model.path,
      hint: "Check that the file is a complete .gguf model (a download may have stopped early).",
    });
  }
  const mmprojBytes = model.mmproj && existsSync(model.mmproj) ? statSync(model.mmproj).size : undefined;
  // the model's own settings, by the mapping every command uses, then the flags
  const explicit: Partial<ServerConfig> = serverConfigOf(model);
  if (opts.ctx !== undefined) explicit.contextSize = opts.ctx;
  if (opts.parallel !== undefined) explicit.parallel = opts.parallel;
  if (opts.cacheTypeK) explicit.cacheTypeK = opts.cacheTypeK;
  if (opts.cacheTypeV) explicit.cacheTypeV = opts.cacheTypeV;
  if (opts.gpuLayers !== undefined) explicit.gpuLayers = opts.gpuLayers;
  const memory = await probe.memory({ fresh: true });
  const cpu = await cpuFeaturesForEstimates(probe);
  const budget = budgetFromSnapshot(memory, opts.headroomBytes ?? DEFAULT_HEADROOM_BYTES);
  const launch = launchDefaults({
    metadata: meta,
    explicit,
    budget,
    ...(mmprojBytes !== undefined ? { mmprojBytes } : {}),
  });
  const ctx = typeof explicit.contextSize === "number" && explicit.contextSize > 0 ? explicit.contextSize : undefined;
  const gl = explicit.gpuLayers;
  const advice = adviseFit(
    {
      metadata: meta,
      ctx,
      parallel: explicit.parallel,
      cacheTypeK: explicit.cacheTypeK,
      cacheTypeV: explicit.cacheTypeV,
      embeddings: launch.capabilities.embedding.present,
      gpuLayers: gl === "all" ? -1 : typeof gl === "number" ? gl : undefined,
      ...(mmprojBytes !== undefined ? { mmprojBytes } : {}),
      ...(cpu ? { cpu } : {}),
    },
    budget,
  );
  const report: FitReport = {
    model: {
      name: model.name,
      path: meta.path,
      files: meta.files,
      architecture: meta.architecture,
      parameterCount: meta.parameterCount,
      sizeBytes: meta.totalBytes,
    },
    capabilities: [...launch.capabilities.tags],
    memory,
    budget,
    advice,
    launch: { config: launch.config, choices: launch.choices },
  };
  if (explicit.rpc && explicit.rpc.length > 0) {
    // the layers -ngl offloads (all by default) go to the workers: only the rest must fit here
    const split = estimateMemory({
      metadata: meta,
      ...(ctx !== undefined ? { ctx } : {}),
      ...(explicit.parallel !== undefined ? { parallel: explicit.parallel } : {}),
      ...(explicit.cacheTypeK ? { cacheTypeK: explicit.cacheTypeK } : {}),
      ...(explicit.cacheTypeV ? { cacheTypeV: explicit.cacheTypeV } : {}),
      ...(mmprojBytes !== undefined ? { mmprojBytes } : {}),
      gpuLayers: typeof gl === "number" ? gl : -1,
      gpuBackend: true,
      // RPC devices claim every op, so flash attention "auto" is on for them
      flashAttention: true,
    });
    report.rpc = { workers: [...explicit.rpc], localBytes: split.hostBytes, remoteBytes: split.gpuBytes };
  }
  if (model.mmproj) report.model.mmproj = model.mmproj;
  if (meta.sizeLabel) report.model.sizeLabel = meta.sizeLabel;
  if (meta.quantization) report.model.quantization = meta.quantization;
  if (meta.contextLength !== undefined) report.model.trainedContext = meta.contextLength;
  if (meta.blockCount !== undefined) report.model.layers = meta.blockCount;
  return report;
}

export function formatFitReport(r: FitReport, c: Colors): string {
  const m = r.model;
  const e = r.advice.estimate;
  const out: string[] = [];
  const facts = [
    m.architecture,
    m.sizeLabel ?? `${formatCount(m.parameterCount)} params`,
    m.quantization,
    formatBytes(m.sizeBytes),
    m.trainedContext ? `trained ctx ${m.trainedContext}` : undefined,
    m.layers ? `${m.layers} layers` : undefined,
    m.files.length > 1 ? `${m.files.length} shards` : undefined,
    m.mmproj ? "mmproj" : undefined,
  ];
  out.push(`${c.bold(m.name)}  ${c.dim(facts.filter(Boolean).join(" · "))}`);
  if (r.capabilities.length > 0) out.push(`Capabilities: ${r.capabilities.filter((t) => t !== "agent").join(", ")}`);
  out.push("");
  out.push(c.bold(`Memory at ${e.ctx} tokens (${e.kvCells} KV cells):`));
  const row = (k: string, v: number, extra = "") =>
    out.push(`  ${k.padEnd(9)}${formatBytes(v).padStart(10)}${extra ? c.dim("  " + extra) : ""}`);
  const repacked = e.repack
    ? `incl. ${describeRepack(e.repack.buffers, formatBytes)} repacked for this CPU (beside the mapped file)`
    : "";
  row("weights", e.weightsBytes, e.gpu.weights > 0 ? `${formatBytes(e.gpu.weights)} on the GPU` : repacked);
  const kvNotes = [`${formatBytes(e.kvBytesPerToken)} per token`];
  if (e.swa) kvNotes.push(`${e.swa.layers} sliding-window layers at ${e.swa.cells} cells`);
  if (e.recurrentBytes > 0) kvNotes.push(`incl. ${formatBytes(e.recurrentBytes)} recurrent state`);
  row("KV cache", e.kvBytes, kvNotes.join(" · "));
  row("compute", e.computeBytes);
  row("output", e.outputBytes);
  if (e.mmprojBytes > 0) row("mmproj", e.mmprojBytes);
  row("total", e.totalBytes, `GPU ${formatBytes(e.gpuBytes)} · RAM ${formatBytes(e.hostBytes)}`);
  out.push("");
  const gpu =
    r.budget.gpuBytes !== undefined
      ? `${r.budget.gpuName ?? "GPU"} ${formatBytes(r.budget.gpuBytes)} usable`
      : "no GPU";
  out.push(
    `${c.bold("Machine:")} RAM ${formatBytes(r.budget.hostBytes)} usable · ${gpu} ${c.dim("(free memory minus headroom)")}`,
  );
  out.push("");
  out.push(c.bold("Advice:"));
  r.advice.messages.forEach((msg, i) =>
    out.push(`  ${i === 0 ? (r.advice.fits ? c.green("✓") : c.red("✗")) : c.yellow("•")} ${msg}`),
  );
  if (r.rpc) {
    const here = r.rpc.localBytes <= r.budget.hostBytes + (r.budget.gpuBytes ?? 0);
    out.push(
      `  ${here ? c.green("✓") : c.red("✗")} Split over RPC (${r.rpc.workers.join(", ")}): ~${formatBytes(r.rpc.localBytes)} here` +
        ` + ~${formatBytes(r.rpc.remoteBytes)} on the workers (shared by their free memory; \`gglib proxy\` checks them before each load). Only the part here must fit this machine.`,
    );
  }
  out.push("");
  out.push(c.bold("Launch settings:"));
  for (const ch of r.launch.choices) {
    const v = (ch.value === undefined ? "–" : String(ch.value)).padEnd(10);
    out.push(
      `  ${ch.setting.padEnd(16)}${ch.value === undefined ? c.dim(v) : v}  ${c.dim(`${ch.source}: ${ch.reason}`)}`,
    );
  }
  return out.join("\n");
}

const FIT_OPTIONS: OptionTable<FitOptions & { json: boolean }> = {
  ctx: numberOption("-c, --ctx <n>", "context size in tokens (default: the trained context)", {
    kind: "integer",
    min: 1,
    example: "4096",
  }),
  parallel: numberOption("--parallel <n>", "slots (default: llama-server's auto, 4 sharing one cache)", {
    kind: "integer",
    min: 1,
  }),
  gpuLayers: numberOption("--gpu-layers <n>", "layers on the GPU (-1 = all; default: as many as fit)", {
    kind: "integer",
    min: -1,
  }),
  cacheTypeK: choiceOption("--cache-type-k <type>", `K cache type`, KV_CACHE_TYPES),
  cacheTypeV: choiceOption("--cache-type-v <type>", "V cache type", KV_CACHE_TYPES),
  json: switchOption("--json", "print the report as JSON"),
};

/** `gglib models fit <model>`: adds `fit` to the `models` command. */
export function register(models: Command): void {
  const fit = models
    .command("fit")
    .description("Estimate the memory a model needs here, whether it fits, and the settings gglib would use")
    .argument("<model>", "a .gguf file (any shard), a model folder, or a model name or alias");
  addOptions(fit, FIT_OPTIONS)
    .addHelpText(
      "after",
      `
Memory is weights + KV cache (n_layer × n_head_kv × head_dim × ctx × bytes per element, K and V) + llama.cpp's
compute buffer + the logits buffer. The budget is free GPU memory and free RAM minus 1 GiB each.

Examples:
  gglib models fit ./Qwen3-8B-Q4_K_M.gguf
  gglib models fit qwen3 --ctx 32768 --cache-type-k q8_0 --cache-type-v q8_0
  gglib models fit ./big-00001-of-00003.gguf --json`,
    )
    .action(async (ref: string, o: Record<string, unknown>) => {
      const { json, ...opts } = readOptions(FIT_OPTIONS, o);
      const report = await fitReport(ref, opts);
      if (json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      else process.stdout.write(formatFitReport(report, colors(process.stdout)) + "\n");
      if (!report.advice.fits) process.exitCode = 2;
    });
}
