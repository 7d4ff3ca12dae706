import type { Command } from "commander";
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { KvCacheType, ServerConfig } from "../../../core/config.js";
import { GglibError } from "../../../core/errors.js";
import { findMmproj, readModelMetadata, type ModelMetadata } from "../../../gguf/reader.js";
import {
  adviseFit,
  budgetFromSnapshot,
  DEFAULT_HEADROOM_BYTES,
  type FitAdvice,
  type FitBudget,
} from "../../../models/estimator.js";
import { launchDefaults, type LaunchDefaults } from "../../../models/launch-defaults.js";
import { DefaultSystemProbe } from "../../../system/probe.js";
import type { MemorySnapshot, SystemProbe } from "../../../system/types.js";
import { colors, type Colors } from "../../../term/color.js";
import { formatBytes, formatCount } from "../../../term/format.js";

/**
 * `gglib models fit <model> [--ctx N]`: the memory a model needs on this machine (weights, KV cache, compute,
 * output), whether it fits, how many layers go on the GPU, the largest context that fits, and the launch
 * settings gglib would pick. `<model>` is a .gguf path or a registered name/alias.
 */

const KV_TYPES: readonly KvCacheType[] = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"];

export interface FitOptions {
  ctx?: number;
  parallel?: number;
  cacheTypeK?: KvCacheType;
  cacheTypeV?: KvCacheType;
  gpuLayers?: number;
  /** Headroom left free on each device (default 1 GiB, like llama.cpp's --fit). */
  headroomBytes?: number;
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
}

interface ResolvedModel {
  name: string;
  path: string;
  mmproj?: string;
  explicit: Partial<ServerConfig>;
}

async function resolveModel(ref: string): Promise<ResolvedModel> {
  const asPath = resolve(ref);
  if (existsSync(asPath) && statSync(asPath).isFile()) {
    const r: ResolvedModel = { name: ref, path: asPath, explicit: {} };
    const mm = await findMmproj(asPath);
    if (mm && mm !== asPath) r.mmproj = mm;
    return r;
  }
  // Loaded only here: a path needs no database.
  const { Registry } = await import("../../../models/registry.js");
  const reg = Registry.open();
  try {
    const m = reg.get(ref);
    if (!m) {
      throw new GglibError("model_not_found", `No model "${ref}": it is neither a file nor a registered name.`, {
        hint: "Give a path to a .gguf file, or register it first: gglib models add <path> --name <name>.",
      });
    }
    const s = m.settings;
    const explicit: Partial<ServerConfig> = {};
    if (s.ctx !== undefined) explicit.contextSize = s.ctx;
    if (s.gpuLayers !== undefined) explicit.gpuLayers = s.gpuLayers;
    if (s.jinja !== undefined) explicit.jinja = s.jinja;
    if (s.reasoningFormat !== undefined) explicit.reasoningFormat = s.reasoningFormat;
    if (s.parallel !== undefined) explicit.parallel = s.parallel;
    const r: ResolvedModel = { name: m.name, path: m.path, explicit };
    if (m.mmproj) r.mmproj = m.mmproj;
    return r;
  } finally {
    reg.close();
  }
}

export async function fitReport(
  ref: string,
  opts: FitOptions = {},
  probe: SystemProbe = new DefaultSystemProbe(),
): Promise<FitReport> {
  const model = await resolveModel(ref);
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
  const explicit: Partial<ServerConfig> = { ...model.explicit };
  if (opts.ctx !== undefined) explicit.contextSize = opts.ctx;
  if (opts.parallel !== undefined) explicit.parallel = opts.parallel;
  if (opts.cacheTypeK) explicit.cacheTypeK = opts.cacheTypeK;
  if (opts.cacheTypeV) explicit.cacheTypeV = opts.cacheTypeV;
  if (opts.gpuLayers !== undefined) explicit.gpuLayers = opts.gpuLayers;
  const memory = await probe.memory({ fresh: true });
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
  row("weights", e.weightsBytes, e.gpu.weights > 0 ? `${formatBytes(e.gpu.weights)} on the GPU` : "");
  row("KV cache", e.kvBytes, `${formatBytes(e.kvBytesPerToken)} per token`);
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

function intOption(name: string, min: number) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v.trim()) || Number(v) < min) {
      throw new GglibError("invalid_config", `--${name} must be an integer >= ${min} (got "${v}").`, {
        hint: `Example: --${name} ${Math.max(min, 1) * (name === "ctx" ? 4096 : 1)}`,
      });
    }
    return Number(v);
  };
}

function kvType(name: string) {
  return (v: string): KvCacheType => {
    if (!(KV_TYPES as readonly string[]).includes(v)) {
      throw new GglibError("invalid_config", `--${name} must be one of ${KV_TYPES.join(", ")} (got "${v}").`);
    }
    return v as KvCacheType;
  };
}

/** `gglib models fit <model>`: adds `fit` to the `models` command. */
export function register(models: Command): void {
  models
    .command("fit")
    .description("Estimate the memory a model needs here, whether it fits, and the settings gglib would use")
    .argument("<model>", "a .gguf file (any shard) or a registered model name")
    .option("-c, --ctx <n>", "context size in tokens (default: the trained context)", intOption("ctx", 1))
    .option("--parallel <n>", "slots (default: llama-server's auto, 4 sharing one cache)", intOption("parallel", 1))
    .option("--gpu-layers <n>", "layers on the GPU (-1 = all; default: as many as fit)", intOption("gpu-layers", -1))
    .option("--cache-type-k <type>", `K cache type (${KV_TYPES.join(", ")})`, kvType("cache-type-k"))
    .option("--cache-type-v <type>", "V cache type", kvType("cache-type-v"))
    .option("--json", "print the report as JSON")
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
    .action(
      async (
        ref: string,
        o: {
          ctx?: number;
          parallel?: number;
          gpuLayers?: number;
          cacheTypeK?: KvCacheType;
          cacheTypeV?: KvCacheType;
          json?: boolean;
        },
      ) => {
        const opts: FitOptions = {};
        if (o.ctx !== undefined) opts.ctx = o.ctx;
        if (o.parallel !== undefined) opts.parallel = o.parallel;
        if (o.gpuLayers !== undefined) opts.gpuLayers = o.gpuLayers;
        if (o.cacheTypeK) opts.cacheTypeK = o.cacheTypeK;
        if (o.cacheTypeV) opts.cacheTypeV = o.cacheTypeV;
        const report = await fitReport(ref, opts);
        if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
        else process.stdout.write(formatFitReport(report, colors(process.stdout)) + "\n");
        if (!report.advice.fits) process.exitCode = 2;
      },
    );
}
