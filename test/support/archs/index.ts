/**
 * Tiny random-weight GGUF models of the architectures people run, for the real llama-server: each loads in well
 * under a second, chats with the family's real chat template (read from the rig's llama.cpp source,
 * models/templates/) and generates valid UTF-8 only (the bias-dimension trick of common.ts).
 *
 *   const path = await writeArchModel(dir, { family: "gemma3", name: "g3" });
 *   const hybrid = await writeArchModel(dir, { family: "granitehybrid", name: "gh", seed: 2 });
 *   const wide = await writeArchModel(dir, { family: "gemma3", embd: 384, layers: 12 }); // for benchmarks
 *
 * Tensor names, shapes and metadata keys follow the rig's llama.cpp (src/llama-arch.cpp, src/models/<arch>.cpp):
 *
 * | family          | architecture    | what it exercises                                                       |
 * | --------------- | --------------- | ----------------------------------------------------------------------- |
 * | `gemma3`        | `gemma3`        | sliding-window (window 128) + global layers, 5:1 like Gemma 3           |
 * | `gemma4`        | `gemma4`        | per-layer SWA pattern, wider global heads, shared KV, per-layer embeddings |
 * | `granitehybrid` | `granitehybrid` | Mamba-2 layers with attention every third layer (Granite 4.0-H)         |
 * | `qwen3`         | `qwen3`         | dense, q/k norms, Qwen3 `<think>` + `<tool_call>` template              |
 * | `qwen3moe`      | `qwen3moe`      | mixture of experts (8 experts, 2 used)                                  |
 * | `qwen35`        | `qwen35`        | Gated DeltaNet layers with full attention every fourth layer (Qwen3.5)  |
 * | `gpt-oss`       | `gpt-oss`       | SWA every other layer, MoE with biases, attention sinks, harmony format |
 * | `lfm2`          | `lfm2`          | short-convolution layers with attention every third layer (lfm2.ts)     |
 * | `embed`         | `bert`          | bidirectional encoder, mean pooling (an embedding model)                |
 * | `rerank`        | `bert`          | encoder with a classification head, rank pooling (a reranker)           |
 *
 * Gemma 3's own template is not in that source; `gemma3` uses google-gemma-2-2b-it.jinja, the same turn format
 * (`<start_of_turn>user … <end_of_turn>`), which refuses a system message.
 *
 * How they behave: no model stops on its own (requests end at max_tokens, a stop string or a grammar) and none
 * opens a `<think>` block (Qwen3.5's template opens it, so everything it writes there is thinking). `gpt-oss`
 * writes a whole harmony turn: `<|channel|>analysis<|message|>plan<|end|>`, then the final channel. The Qwen and
 * Granite models open a `<tool_call>` about every 20–30 tokens (plain text without tools; with tools llama-server's
 * grammar writes the call) and end the turn after `</tool_call>`. See families.ts and common.ts for the weights
 * that do this.
 */
import { join } from "node:path";
import { writeGguf, type GgufDocument } from "../gguf-writer.js";
import { llamaTemplate } from "../llama-source.js";
import { FAMILIES, type ArchFamily, type FamilySpec } from "./families.js";

export { FAMILIES, GPT_OSS_THOUGHT, type ArchFamily, type FamilySpec } from "./families.js";

export interface ArchModelOptions {
  family: ArchFamily;
  /** File name without .gguf (also general.name). Default: the family name. */
  name?: string;
  /** PRNG seed for the weights. Default 1. */
  seed?: number;
  /** `<arch>.context_length`. Default 8192. */
  contextLength?: number;
  /** Jinja chat template text instead of the family's real one. */
  chatTemplate?: string;
  /** Embedding width (default 64) and layer count, to make a slower model: gemma3, granitehybrid, qwen35, gpt-oss. */
  embd?: number;
  layers?: number;
}

/** The family's real chat template text (undefined for models without one: embedding and rerank). */
export async function familyTemplate(family: ArchFamily): Promise<string | undefined> {
  const file = (FAMILIES[family] as FamilySpec).template;
  return file ? llamaTemplate(file) : undefined;
}

export async function archModelDocument(o: ArchModelOptions): Promise<GgufDocument> {
  const spec: FamilySpec = FAMILIES[o.family];
  const template = o.chatTemplate ?? (await familyTemplate(o.family));
  return spec.document({
    name: o.name ?? o.family,
    seed: o.seed ?? 1,
    contextLength: o.contextLength ?? 8192,
    template,
    embd: o.embd,
    layers: o.layers,
  });
}

/** Writes `<dir>/<name>.gguf` and returns its path. The same options give the same bytes. */
export async function writeArchModel(dir: string, o: ArchModelOptions): Promise<string> {
  const name = (o.name ?? o.family).replace(/\.gguf$/, "");
  const path = join(dir, `${name}.gguf`);
  await writeGguf(path, await archModelDocument({ ...o, name }));
  return path;
}
