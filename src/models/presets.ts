/**
 * Presets: a name over a model plus changes to the requests that name it — `set` (fields written into the body:
 * sampling, `chat_template_kwargs` such as `enable_thinking`, `reasoning_effort`, `max_tokens`), `strip` (fields
 * removed) and a system prompt (prepended to the client's, or replacing it), and example `messages` put before the
 * conversation. A preset runs on its model's process: the same queue, slots and context cache; only the body of a
 * request that names the preset is rewritten (`applyPreset`, pure), once, before it is forwarded.
 *
 * Defined in the config file (`presets:`) or created over Ollama's `/api/create` (kept in the registry).
 */
import { z } from "zod";

/** One example message of a preset (Ollama's MESSAGE). */
export const PresetMessageSchema = z
  .object({
    role: z.enum(["system", "user", "assistant"]),
    content: z.string(),
  })
  .strict();

/** What a preset changes, without its name. The config file's `presets.<name>` entry. */
export const PresetDefSchema = z
  .object({
    model: z.string().min(1).describe("The model (name or alias) the preset runs on: its process is shared."),
    set: z
      .record(z.string().min(1), z.unknown())
      .optional()
      .describe(
        "Fields written into every request body that names the preset, replacing the client's (e.g. temperature, max_tokens, reasoning_effort); chat_template_kwargs is merged key by key.",
      ),
    strip: z
      .array(z.string().min(1))
      .optional()
      .describe("Fields removed from the request body before `set` applies (e.g. [tools, logit_bias])."),
    system: z.string().optional().describe("A system prompt for chat requests."),
    systemMode: z
      .enum(["prepend", "replace", "default"])
      .optional()
      .describe(
        "prepend (the default): the preset's system prompt goes before the client's; replace: the client's is dropped; default: used only when the client sends none (Ollama's SYSTEM).",
      ),
    messages: z
      .array(PresetMessageSchema)
      .optional()
      .describe("Example messages put before the conversation (after the system prompt)."),
    description: z.string().optional().describe("Shown in the model lists."),
  })
  .strict();

export type PresetDef = z.infer<typeof PresetDefSchema>;
export type PresetMessage = z.infer<typeof PresetMessageSchema>;

/** A preset with its name and where it was defined. */
export interface Preset extends PresetDef {
  name: string;
  source: "config" | "registry";
}

/** Fields a preset may not set or strip: they route or frame the request, not the model's behaviour. */
const FIXED_FIELDS = new Set(["model", "stream", "messages", "prompt", "input"]);

/** Problems with a preset's definition, as sentences (empty when it is usable). Pure. */
export function presetProblems(def: PresetDef): string[] {
  const out: string[] = [];
  for (const k of Object.keys(def.set ?? {}))
    if (FIXED_FIELDS.has(k)) out.push(`set.${k}: a preset cannot set "${k}" (it is the request's own)`);
  for (const k of def.strip ?? [])
    if (FIXED_FIELDS.has(k)) out.push(`strip: a preset cannot remove "${k}" (it is the request's own)`);
  return out;
}

/** How a request carries its system prompt: by the API its path belongs to. */
export type PromptShape = "chat" | "anthropic" | "responses" | "none";

/** The shape of a request's body by its path (OpenAI chat, Anthropic messages, OpenAI responses, or neither). */
export function promptShapeOf(path: string): PromptShape {
  if (path.endsWith("/chat/completions")) return "chat";
  if (path.endsWith("/messages")) return "anthropic";
  if (path.endsWith("/responses")) return "responses";
  return "none";
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The body a request for `preset` is forwarded with: `strip`, then `set` (`chat_template_kwargs` merged key by
 * key over the client's), then the system prompt and example messages for the body's shape, and `model` = the
 * preset's model's catalog name. Returns a new object; `body` is not changed (its nested values are shared).
 */
export function applyPreset(body: Obj, preset: PresetDef, model: string, shape: PromptShape): Obj {
  const out: Obj = { ...body };
  for (const k of preset.strip ?? []) delete out[k];
  for (const [k, v] of Object.entries(preset.set ?? {})) {
    const cur = out[k];
    out[k] = k === "chat_template_kwargs" && isObj(v) && isObj(cur) ? { ...cur, ...v } : v;
  }
  const mode = preset.systemMode ?? "prepend";
  if (shape === "chat" && Array.isArray(out.messages)) {
    out.messages = withSystem(out.messages as unknown[], preset.system, mode, preset.messages ?? []);
  } else if (shape === "anthropic" && preset.system !== undefined) {
    out.system = joinedSystem(out.system, preset.system, mode, "anthropic");
  } else if (shape === "responses" && preset.system !== undefined) {
    out.instructions = joinedSystem(out.instructions, preset.system, mode, "responses");
  }
  if (shape === "anthropic" && preset.messages?.length && Array.isArray(out.messages)) {
    // Anthropic's messages have no system role: the examples' user/assistant turns go first
    const turns = preset.messages.filter((m) => m.role !== "system");
    out.messages = [...turns, ...(out.messages as unknown[])];
  }
  out.model = model;
  return out;
}

type SystemMode = NonNullable<PresetDef["systemMode"]>;

const isSystem = (m: unknown): m is Obj => isObj(m) && (m.role === "system" || m.role === "developer");

/**
 * An OpenAI chat's messages with the preset's system prompt: prepended to the client's leading system message
 * (one system message, which every chat template accepts) or put first; `replace` drops the client's system
 * messages; `default` keeps the client's when it sends one. The examples follow the system message.
 */
function withSystem(messages: unknown[], system: string | undefined, mode: SystemMode, examples: PresetMessage[]) {
  const first = messages[0];
  let head: unknown[] = isSystem(first) ? [first] : [];
  let rest = isSystem(first) ? messages.slice(1) : messages;
  if (system !== undefined) {
    if (mode === "replace") {
      rest = rest.filter((m) => !isSystem(m));
      head = [{ role: "system", content: system }];
    } else if (!isSystem(first)) head = [{ role: "system", content: system }];
    else if (mode === "prepend") head = [{ ...first, content: prependText(system, first.content) }];
  }
  return [...head, ...examples.map((m) => ({ role: m.role, content: m.content })), ...rest];
}

/** A message's content with `text` before it (a string, or an array of content parts). */
function prependText(text: string, content: unknown): unknown {
  if (typeof content === "string") return content === "" ? text : `${text}\n\n${content}`;
  if (Array.isArray(content)) return [{ type: "text", text }, ...(content as unknown[])];
  return text;
}

/** Anthropic's `system` (a string or text blocks) or Responses' `instructions` (a string) with the preset's. */
function joinedSystem(cur: unknown, system: string, mode: SystemMode, shape: "anthropic" | "responses"): unknown {
  if (mode === "replace" || cur === undefined || cur === null || cur === "") return system;
  if (mode === "default") return cur;
  if (typeof cur === "string") return `${system}\n\n${cur}`;
  if (shape === "anthropic" && Array.isArray(cur)) return [{ type: "text", text: system }, ...(cur as unknown[])];
  return system;
}
