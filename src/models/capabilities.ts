/**
 * What a model can do, read from its GGUF metadata (mostly its chat template). Each answer carries the evidence,
 * so `gglib models show`/`fit` and the launch defaults can say why.
 *
 * - reasoning: the template opens a thinking block (`<think>`, `<seed:think>`, `<|START_THINKING|>`,
 *   gpt-oss's analysis channel …) or knows `enable_thinking` / `reasoning_content` / `thinking_forced_open`.
 * - tools: the template reads a `tools` variable inside a Jinja tag, or emits a tool-call marker.
 * - embedding: a pooling type (mean/cls/last/rank) or an encoder architecture (BERT family, T5 encoder…).
 * - reranker: pooling type "rank".
 * - vision/audio: a projector (mmproj) file, or a model that embeds a vision encoder.
 */
import type { ModelMetadata } from "../gguf/reader.js";

export type CapabilityName = "reasoning" | "tools" | "embedding" | "reranker" | "vision" | "audio";

export interface Capability {
  readonly present: boolean;
  /** Why we think so (the marker found), or why not. */
  readonly evidence: string;
}

export type ModelCapabilities = Readonly<Record<CapabilityName, Capability>> & {
  /** Names of the present capabilities, as registry tags (seed compatible: tools → also "agent"). */
  readonly tags: readonly string[];
};

export type CapabilityInput = Pick<
  ModelMetadata,
  | "architecture"
  | "chatTemplate"
  | "chatTemplates"
  | "poolingType"
  | "causalAttention"
  | "isMmproj"
  | "hasVisionEncoder"
  | "hasAudioEncoder"
  | "name"
>;

/** Architectures llama.cpp runs as encoders (bidirectional attention, no chat): always embedding/rerank models. */
export const ENCODER_ARCHITECTURES: ReadonlySet<string> = new Set([
  "bert",
  "nomic-bert",
  "nomic-bert-moe",
  "jina-bert-v2",
  "jina-bert-v3",
  "neo-bert",
  "modern-bert",
  "eurobert",
  "t5encoder",
]);

/** Thinking-block openers and thinking switches, in the order they are reported. */
const REASONING_MARKERS: readonly string[] = [
  "<think>",
  "<seed:think>",
  "<|START_THINKING|>",
  "<|begin_of_thought|>",
  "[THINK]",
  "<|channel|>analysis",
  "<|inner_prefix|>",
  "enable_thinking",
  "thinking_forced_open",
  "reasoning_content",
];

const TOOL_MARKERS: readonly string[] = [
  "<tool_call>",
  "[TOOL_CALLS]",
  "<|python_tag|>",
  "<｜tool▁calls▁begin｜>",
  "<|tool_call_begin|>",
  "<|tool_calls_section_begin|>",
  "functools[",
  "<|tool_call|>",
  "<tool_calls>",
  "<|START_ACTION|>",
];

/** Every `{% … %}` and `{{ … }}` of a Jinja template. */
function jinjaTags(template: string): string[] {
  return template.match(/\{%-?[\s\S]*?-?%\}|\{\{-?[\s\S]*?-?\}\}/g) ?? [];
}

export function detectReasoning(template: string | undefined, name?: string): Capability {
  if (template) {
    for (const m of REASONING_MARKERS)
      if (template.includes(m)) return { present: true, evidence: `chat template contains ${m}` };
    return { present: false, evidence: "chat template has no thinking block or thinking switch" };
  }
  // No template: the name is the only hint (llama.cpp would fall back to a built-in template anyway).
  const n = (name ?? "").toLowerCase();
  for (const hint of ["deepseek-r1", "qwq", "-thinking", "reasoning"]) {
    if (n.includes(hint)) return { present: true, evidence: `no chat template; the name contains "${hint}"` };
  }
  return { present: false, evidence: "no chat template" };
}

export function detectTools(template: string | undefined, namedTemplates?: Record<string, string>): Capability {
  if (namedTemplates && "tool_use" in namedTemplates)
    return { present: true, evidence: "the file has a tool_use chat template" };
  if (!template) return { present: false, evidence: "no chat template" };
  for (const tag of jinjaTags(template)) {
    if (/\b(?:xml_|python_)?tools\b/.test(tag))
      return { present: true, evidence: `chat template reads tools (${tag.replace(/\s+/g, " ").slice(0, 60)})` };
  }
  for (const m of TOOL_MARKERS)
    if (template.includes(m)) return { present: true, evidence: `chat template contains ${m}` };
  return { present: false, evidence: "chat template never reads tools" };
}

export function detectEmbedding(
  meta: Pick<CapabilityInput, "architecture" | "poolingType" | "causalAttention">,
): Capability {
  if (meta.poolingType !== undefined && meta.poolingType > 0) {
    return {
      present: true,
      evidence: `pooling type ${meta.poolingType} (${["none", "mean", "cls", "last", "rank"][meta.poolingType] ?? "?"})`,
    };
  }
  if (ENCODER_ARCHITECTURES.has(meta.architecture))
    return { present: true, evidence: `encoder architecture ${meta.architecture}` };
  if (meta.causalAttention === false) return { present: true, evidence: "non-causal attention (an encoder)" };
  return { present: false, evidence: "no pooling type, decoder architecture" };
}

export function detectCapabilities(meta: CapabilityInput): ModelCapabilities {
  const embedding = detectEmbedding(meta);
  // An encoder has no chat: its template (if any) says nothing about reasoning or tools.
  const reasoning = embedding.present
    ? { present: false, evidence: "embedding model" }
    : detectReasoning(meta.chatTemplate, meta.name);
  const tools = embedding.present
    ? { present: false, evidence: "embedding model" }
    : detectTools(meta.chatTemplate, meta.chatTemplates);
  const reranker: Capability =
    meta.poolingType === 4
      ? { present: true, evidence: "pooling type 4 (rank)" }
      : { present: false, evidence: "pooling type is not rank" };
  const vision: Capability = meta.hasVisionEncoder
    ? { present: true, evidence: "has a vision encoder (clip.has_vision_encoder)" }
    : meta.isMmproj && meta.hasAudioEncoder !== true
      ? { present: true, evidence: "multimodal projector" }
      : { present: false, evidence: "no vision encoder" };
  const audio: Capability = meta.hasAudioEncoder
    ? { present: true, evidence: "has an audio encoder" }
    : { present: false, evidence: "no audio encoder" };
  const tags: string[] = [];
  if (reasoning.present) tags.push("reasoning");
  if (tools.present) tags.push("tools", "agent");
  if (embedding.present) tags.push("embedding");
  if (reranker.present) tags.push("reranker");
  if (vision.present) tags.push("vision");
  if (audio.present) tags.push("audio");
  return { reasoning, tools, embedding, reranker, vision, audio, tags };
}

/** Capability tags of a registered model (from its metadata; an mmproj makes it multimodal). */
export function modelTags(m: { metadata?: Readonly<Record<string, unknown>>; mmproj?: string }): string[] {
  const caps = m.metadata?.capabilities as { tags?: unknown } | undefined;
  const tags = Array.isArray(caps?.tags) ? caps.tags.filter((t): t is string => typeof t === "string") : [];
  if (m.mmproj && !tags.includes("vision") && !tags.includes("audio")) tags.push("vision");
  return tags;
}
