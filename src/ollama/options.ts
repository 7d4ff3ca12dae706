/**
 * Ollama's `options` (Modelfile parameters) → llama-server's sampling parameters. llama-server takes its own names
 * on the OpenAI endpoints too, so the result is merged into the upstream body. Options that need a reload in
 * Ollama (num_ctx, num_gpu, num_thread, …) are fixed per model here (the config file's ctx/gpuLayers/extraArgs):
 * they are reported as ignored (response header `x-gglib-ignored-options`), as are options llama.cpp dropped
 * (tfs_z, penalize_newline) and unknown ones (Ollama ignores those too).
 */

export class OptionsError extends Error {
  override name = "OptionsError";
}

type Kind = "int" | "float" | "bool" | "stop";

/** Ollama option → [llama-server parameter, type]. */
const SAMPLING: Readonly<Record<string, readonly [string, Kind]>> = {
  temperature: ["temperature", "float"],
  top_p: ["top_p", "float"],
  top_k: ["top_k", "int"],
  min_p: ["min_p", "float"],
  typical_p: ["typical_p", "float"],
  seed: ["seed", "int"],
  num_predict: ["max_tokens", "int"],
  stop: ["stop", "stop"],
  repeat_penalty: ["repeat_penalty", "float"],
  repeat_last_n: ["repeat_last_n", "int"],
  presence_penalty: ["presence_penalty", "float"],
  frequency_penalty: ["frequency_penalty", "float"],
  mirostat: ["mirostat", "int"],
  mirostat_tau: ["mirostat_tau", "float"],
  mirostat_eta: ["mirostat_eta", "float"],
  num_keep: ["n_keep", "int"],
};

/** Options fixed when the model is loaded (set them per model in the config instead). */
export const LOAD_TIME_OPTIONS: ReadonlySet<string> = new Set([
  "num_ctx",
  "num_batch",
  "num_gpu",
  "main_gpu",
  "low_vram",
  "f16_kv",
  "logits_all",
  "vocab_only",
  "use_mmap",
  "use_mlock",
  "num_thread",
  "numa",
  "embedding_only",
]);

/** Sampling options llama.cpp no longer has. */
export const DROPPED_OPTIONS: ReadonlySet<string> = new Set(["tfs_z", "penalize_newline"]);

export interface MappedOptions {
  /** llama-server parameters to merge into the upstream body. */
  params: Record<string, unknown>;
  /** Options that had no effect (load-time, dropped by llama.cpp, unknown). */
  ignored: string[];
}

function typeName(k: Kind): string {
  return k === "int" ? "integer" : k === "float" ? "float" : k === "bool" ? "boolean" : "array of strings";
}

export function mapOptions(options: unknown): MappedOptions {
  const out: MappedOptions = { params: {}, ignored: [] };
  if (options === undefined || options === null) return out;
  if (typeof options !== "object" || Array.isArray(options)) throw new OptionsError("options must be a JSON object");
  for (const [key, value] of Object.entries(options as Record<string, unknown>)) {
    if (value === null || value === undefined) continue;
    const m = SAMPLING[key];
    if (!m) {
      out.ignored.push(key);
      continue;
    }
    const [param, kind] = m;
    const bad = () => new OptionsError(`option "${key}" must be of type ${typeName(kind)}`);
    switch (kind) {
      case "int":
        if (typeof value !== "number" || !Number.isFinite(value)) throw bad();
        out.params[param] = Math.trunc(value);
        break;
      case "float":
        if (typeof value !== "number" || !Number.isFinite(value)) throw bad();
        out.params[param] = value;
        break;
      case "bool":
        if (typeof value !== "boolean") throw bad();
        out.params[param] = value;
        break;
      case "stop":
        if (typeof value === "string") out.params[param] = [value];
        else if (Array.isArray(value) && value.every((s) => typeof s === "string")) {
          if (value.length > 0) out.params[param] = value;
        } else throw bad();
        break;
    }
  }
  // Ollama: -1 = no limit, -2 = until the context is full; llama-server: -1 = no limit (it stops at the context end)
  const max = out.params.max_tokens;
  if (typeof max === "number" && max < 0) out.params.max_tokens = -1;
  return out;
}
