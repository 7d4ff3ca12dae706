/**
 * Launch settings derived from the model, with the seed's precedence for each setting:
 *   explicit (the user's config or flags) → detected (from the GGUF / the machine) → llama.cpp's default (left unset).
 *
 * - a reasoning model gets `--reasoning-format deepseek` (thinking lands in `reasoning_content`);
 * - a tool-capable model gets jinja on (tool calls need the model's own template);
 * - an embedding model gets `--embeddings`, a reranker (rank pooling) `--reranking` too (llama-server's /v1/rerank
 *   refuses a server started without it);
 * - the context defaults to the largest that fits the memory budget, capped by the trained context;
 * - GPU layers are set only when the model fits partly on the GPU (llama.cpp's default offloads everything).
 *
 * Every choice comes back with its source and a reason, for `gglib models fit`, `serve --dry-run` and logs.
 */
import type { ServerConfig } from "../core/config.js";
import { GglibError } from "../core/errors.js";
import type { ModelMetadata } from "../gguf/reader.js";
import { detectCapabilities, type CapabilityInput, type ModelCapabilities } from "./capabilities.js";
import { adviseFit, type EstimatorModel, type FitAdvice, type FitBudget } from "./estimator.js";

export type ChoiceSource = "explicit" | "detected" | "default";

export type LaunchSetting = "reasoningFormat" | "jinja" | "embeddings" | "reranking" | "contextSize" | "gpuLayers";

export interface LaunchChoice {
  setting: LaunchSetting;
  /** undefined: left to llama-server's default. */
  value: ServerConfig[LaunchSetting] | undefined;
  source: ChoiceSource;
  reason: string;
}

export interface LaunchDefaultsInput {
  metadata: EstimatorModel & CapabilityInput & Partial<Pick<ModelMetadata, "path">>;
  /** What the user set (config file, flags). Wins over everything. */
  explicit?: Partial<ServerConfig>;
  /** Computed from metadata when absent. */
  capabilities?: ModelCapabilities;
  /** Memory gglib may use for this model; without it the context and layers are left to llama-server. */
  budget?: FitBudget;
  mmprojBytes?: number;
}

export interface LaunchDefaults {
  /** Only the settings that were decided here (explicit or detected); the rest stay unset. */
  config: Partial<ServerConfig>;
  choices: LaunchChoice[];
  capabilities: ModelCapabilities;
  /** The fit at the chosen context (when a budget was given). */
  fit?: FitAdvice;
}

export function launchDefaults(input: LaunchDefaultsInput): LaunchDefaults {
  const meta = input.metadata;
  const explicit = input.explicit ?? {};
  if (meta.isMmproj) {
    throw new GglibError(
      "invalid_config",
      `${meta.path ?? "This file"} is a multimodal projector (mmproj), not a model.`,
      {
        hint: "Start the language model instead; gglib passes the projector to it with --mmproj.",
      },
    );
  }
  const caps = input.capabilities ?? detectCapabilities(meta);
  const config: Partial<ServerConfig> = {};
  const choices: LaunchChoice[] = [];
  const decide = <K extends LaunchSetting>(
    setting: K,
    value: ServerConfig[K] | undefined,
    source: ChoiceSource,
    reason: string,
  ) => {
    if (source !== "default" && value !== undefined) (config as Record<string, unknown>)[setting] = value;
    choices.push({ setting, value, source, reason });
  };
  const has = (k: LaunchSetting) => explicit[k] !== undefined;

  // Reasoning format.
  if (has("reasoningFormat")) decide("reasoningFormat", explicit.reasoningFormat, "explicit", "given explicitly");
  else if (caps.reasoning.present)
    decide(
      "reasoningFormat",
      "deepseek",
      "detected",
      `reasoning model: ${caps.reasoning.evidence}; thinking goes to reasoning_content`,
    );
  else decide("reasoningFormat", undefined, "default", "not a reasoning model: llama-server's default (auto)");

  // Jinja.
  if (has("jinja")) decide("jinja", explicit.jinja, "explicit", "given explicitly");
  else if (caps.tools.present) decide("jinja", true, "detected", `tool use: ${caps.tools.evidence}`);
  else if (caps.reasoning.present)
    decide("jinja", true, "detected", "reasoning model: its template must render the thinking block");
  else decide("jinja", undefined, "default", "llama-server's default (on)");

  // Embeddings.
  if (has("embeddings")) decide("embeddings", explicit.embeddings, "explicit", "given explicitly");
  else if (caps.embedding.present)
    decide("embeddings", true, "detected", `embedding model: ${caps.embedding.evidence}`);
  else decide("embeddings", undefined, "default", "not an embedding model: off");

  // Reranking (decided only for a reranker or when set, so other models' choices stay as they were).
  if (has("reranking")) decide("reranking", explicit.reranking, "explicit", "given explicitly");
  else if (caps.reranker.present)
    decide("reranking", true, "detected", `reranker: ${caps.reranker.evidence}; /v1/rerank needs --reranking`);

  // Context and GPU layers, from the memory budget.
  let fit: FitAdvice | undefined;
  const trained = meta.contextLength;
  const fitBase = {
    metadata: meta,
    parallel: explicit.parallel,
    cacheTypeK: explicit.cacheTypeK,
    cacheTypeV: explicit.cacheTypeV,
    flashAttention: explicit.flashAttention === "off" ? false : undefined,
    embeddings: explicit.embeddings ?? caps.embedding.present,
    mmprojBytes: input.mmprojBytes,
    // "all" = every layer; "auto" lets us choose like llama.cpp's fit does.
    gpuLayers:
      explicit.gpuLayers === "all" ? -1 : typeof explicit.gpuLayers === "number" ? explicit.gpuLayers : undefined,
  };
  let ctx: number | undefined;
  if (has("contextSize") && (explicit.contextSize ?? 0) > 0) {
    ctx = explicit.contextSize;
    decide("contextSize", ctx, "explicit", "given explicitly");
  } else if (has("contextSize")) {
    ctx = trained;
    decide("contextSize", 0, "explicit", `given explicitly: 0 = the trained context${trained ? ` (${trained})` : ""}`);
  } else if (input.budget) {
    const whole = adviseFit({ ...fitBase, ctx: trained }, input.budget);
    if (whole.fits && trained !== undefined) {
      ctx = trained;
      decide("contextSize", trained, "detected", `the trained context (${trained}) fits in memory`);
    } else if (whole.maxCtx !== undefined) {
      ctx = whole.maxCtx;
      decide(
        "contextSize",
        ctx,
        "detected",
        `the largest context that fits in memory (trained: ${trained ?? "unknown"})`,
      );
    } else {
      decide(
        "contextSize",
        undefined,
        "default",
        "the model does not fit in memory at any context; llama-server will try (--fit)",
      );
    }
  } else {
    decide(
      "contextSize",
      undefined,
      "default",
      "no memory reading: llama-server's default (the trained context, fitted to free memory)",
    );
  }

  if (input.budget) fit = adviseFit({ ...fitBase, ctx }, input.budget);
  if (has("gpuLayers")) decide("gpuLayers", explicit.gpuLayers, "explicit", "given explicitly");
  else if (fit && fit.offload === "partial") {
    decide(
      "gpuLayers",
      fit.gpuLayers,
      "detected",
      `only ${fit.gpuLayers} of ${fit.estimate.layers} layers fit on the GPU`,
    );
  } else if (fit && fit.offload === "full")
    decide("gpuLayers", undefined, "default", "every layer fits on the GPU: llama-server's default (all)");
  else
    decide(
      "gpuLayers",
      undefined,
      "default",
      input.budget?.gpuBytes ? "no layer fits on the GPU; llama-server decides" : "no GPU: llama-server's default",
    );

  const out: LaunchDefaults = { config, choices, capabilities: caps };
  if (fit) out.fit = fit;
  return out;
}

/** A ServerConfig with what its model calls for added, and those choices (for the log). */
export interface DetectedSettings {
  config: ServerConfig;
  /** Only the detected ones, with their reasons. */
  choices: LaunchChoice[];
}

/**
 * The settings a model calls for where `config` leaves them unset (reasoning → deepseek + Jinja, tools → Jinja,
 * embeddings → --embeddings, a reranker → --reranking), added to it.
 */
export function withDetectedSettings(
  config: ServerConfig,
  metadata: LaunchDefaultsInput["metadata"] | undefined,
): DetectedSettings {
  if (!metadata) return { config, choices: [] };
  try {
    const d = launchDefaults({ metadata, explicit: config });
    const choices = d.choices.filter((c) => c.source === "detected" && c.value !== undefined);
    return { config: { ...config, ...d.config }, choices };
  } catch {
    return { config, choices: [] }; // e.g. a projector file: llama-server's own defaults apply and its error says the rest
  }
}

/** `withDetectedSettings` reading the model's file; one whose metadata cannot be read gets none. */
export async function detectLaunchSettings(config: ServerConfig): Promise<DetectedSettings> {
  const { readModelMetadata } = await import("../gguf/reader.js");
  return withDetectedSettings(config, await readModelMetadata(config.modelPath).catch(() => undefined));
}
