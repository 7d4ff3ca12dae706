/**
 * Ollama's Modelfile, both ways, and `/api/create`'s request as a preset (src/models/presets.ts). Pure.
 *
 * - `parseModelfile(text)`: FROM, PARAMETER, SYSTEM, MESSAGE, TEMPLATE, ADAPTER, LICENSE, REQUIRES; `#` comments;
 *   values bare, "quoted" or """multi-line"""; instructions case-insensitive; repeated `PARAMETER stop` collect.
 * - `presetFromCreate(body)`: the structured fields the `ollama` clients send today (`model`, `from`, `system`,
 *   `parameters`, `messages`, …) or the older `modelfile` text → what the preset changes, or the reason it cannot
 *   be one (a template, an adapter, a quantization, a blob upload, a load-time parameter).
 * - `presetModelfile(...)`: a preset as the Modelfile `/api/show` returns.
 */
import type { PresetDef, PresetMessage } from "../models/presets.js";
import { DROPPED_OPTIONS, LOAD_TIME_OPTIONS, mapOptions, OptionsError } from "./options.js";

export interface Modelfile {
  from?: string;
  system?: string;
  template?: string;
  /** Ollama option names → values (numbers, booleans, strings; `stop` a list). */
  parameters: Record<string, unknown>;
  messages: PresetMessage[];
  adapters: string[];
  license: string[];
}

export class ModelfileError extends Error {
  override name = "ModelfileError";
}

const INSTRUCTIONS = new Set(["from", "parameter", "system", "template", "message", "adapter", "license", "requires"]);
const ROLES = new Set(["system", "user", "assistant"]);

/** Parses a Modelfile's text. Throws ModelfileError naming the line and the problem. */
export function parseModelfile(text: string): Modelfile {
  const out: Modelfile = { parameters: {}, messages: [], adapters: [], license: [] };
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    const cmd = m[1]!.toLowerCase();
    if (!INSTRUCTIONS.has(cmd))
      throw new ModelfileError(
        `Modelfile line ${lineNo}: unknown instruction "${m[1]}" (known: ${[...INSTRUCTIONS].map((s) => s.toUpperCase()).join(", ")})`,
      );
    let rest = m[2]!;
    // a PARAMETER's and a MESSAGE's first word is its name / role
    let key: string | undefined;
    if (cmd === "parameter" || cmd === "message") {
      const k = /^(\S+)\s*([\s\S]*)$/.exec(rest);
      if (!k) throw new ModelfileError(`Modelfile line ${lineNo}: ${cmd.toUpperCase()} needs a name and a value`);
      key = k[1]!;
      rest = k[2]!;
    }
    let value: string;
    if (rest.startsWith('"""')) {
      // """ … """, possibly over several lines
      let body = rest.slice(3);
      let end = body.indexOf('"""');
      while (end < 0 && i + 1 < lines.length) {
        body += "\n" + lines[++i]!;
        end = body.indexOf('"""');
      }
      if (end < 0) throw new ModelfileError(`Modelfile line ${lineNo}: a """ is never closed`);
      value = body.slice(0, end);
    } else if (rest.length >= 2 && rest.startsWith('"') && rest.endsWith('"')) {
      value = rest.slice(1, -1).replace(/\\"/g, '"');
    } else value = rest;
    if (value === "" && cmd !== "system" && cmd !== "message")
      throw new ModelfileError(`Modelfile line ${lineNo}: ${cmd.toUpperCase()} needs a value`);
    switch (cmd) {
      case "from":
        out.from = value;
        break;
      case "system":
        out.system = value;
        break;
      case "template":
        out.template = value;
        break;
      case "adapter":
        out.adapters.push(value);
        break;
      case "license":
        out.license.push(value);
        break;
      case "requires":
        break;
      case "message": {
        const role = key!.toLowerCase();
        if (!ROLES.has(role))
          throw new ModelfileError(
            `Modelfile line ${lineNo}: MESSAGE role "${key}" is not one of system, user, assistant`,
          );
        out.messages.push({ role: role as PresetMessage["role"], content: value });
        break;
      }
      case "parameter": {
        const name = key!.toLowerCase();
        const v = parameterValue(value);
        if (name === "stop") out.parameters.stop = [...((out.parameters.stop as string[] | undefined) ?? []), value];
        else out.parameters[name] = v;
        break;
      }
    }
  }
  return out;
}

/** A PARAMETER's value: a number, true/false, or the text. */
function parameterValue(v: string): unknown {
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  if (v === "true" || v === "false") return v === "true";
  return v;
}

type Obj = Record<string, unknown>;

/** What `/api/create` asks for, as a preset: its base model (`from`) and its changes. */
export interface CreatePlan {
  /** The model (or preset) name, or a GGUF path / blob, the preset runs on. */
  from: string;
  /** The preset's changes (without `model`). */
  def: Omit<PresetDef, "model">;
}

/**
 * `/api/create`'s body → the preset it asks for. Throws ModelfileError with the reason for what a preset cannot
 * be: a TEMPLATE (the chat template is the model's, fixed when it loads), an ADAPTER (a LoRA is loaded with the
 * model), a quantization (gglib does not write model files), uploaded blobs, or a load-time parameter.
 */
export function presetFromCreate(body: Obj): CreatePlan {
  let mf: Modelfile = { parameters: {}, messages: [], adapters: [], license: [] };
  if (typeof body.modelfile === "string" && body.modelfile.trim() !== "") mf = parseModelfile(body.modelfile);
  const from = str(body.from) ?? mf.from;
  const template = str(body.template) ?? mf.template;
  if (template !== undefined && template !== "")
    throw new ModelfileError(
      "a TEMPLATE cannot be set: a preset runs on its model's process, whose chat template is fixed when it loads (set `chat_template_kwargs` in a preset of the config file, or give the model its template with extraArgs --chat-template-file)",
    );
  const adapters = body.adapters;
  if (mf.adapters.length > 0 || (adapters && typeof adapters === "object" && Object.keys(adapters).length > 0))
    throw new ModelfileError(
      "an ADAPTER cannot be applied: a LoRA adapter is loaded with the model, and a preset shares its model's process (add --lora to the model's extraArgs in the config instead)",
    );
  if (str(body.quantize) ?? str(body.quantization))
    throw new ModelfileError(
      "quantizing is not supported: gglib does not write model files (quantize with llama.cpp's llama-quantize, then put the GGUF in the models folder)",
    );
  const files = body.files;
  if (files && typeof files === "object" && Object.keys(files).length > 0)
    throw new ModelfileError(
      "uploaded blobs cannot be used: gglib takes no blob uploads; give FROM a model name, or the path of a GGUF on this machine",
    );
  if (!from)
    throw new ModelfileError(
      'a preset needs a base model: send "from" (or a Modelfile with FROM <model or .gguf path>)',
    );
  const def: Omit<PresetDef, "model"> = {};
  const system = str(body.system) ?? mf.system;
  // like Ollama's SYSTEM: used when the conversation brings no system message of its own
  if (system !== undefined) {
    def.system = system;
    def.systemMode = "default";
  }
  const params: Obj = { ...mf.parameters, ...(isObj(body.parameters) ? body.parameters : {}) };
  const set = setOf(params);
  if (Object.keys(set).length > 0) def.set = set;
  const messages = [...mf.messages, ...messagesOf(body.messages)];
  if (messages.length > 0) def.messages = messages;
  return { from, def };
}

/** Ollama parameters → the preset's `set` (llama-server's names); a load-time or unknown one is refused. */
function setOf(params: Obj): Obj {
  const refused = Object.keys(params).filter((k) => LOAD_TIME_OPTIONS.has(k));
  if (refused.length > 0)
    throw new ModelfileError(
      `${refused.join(", ")} ${refused.length > 1 ? "are" : "is"} fixed when the model loads, and a preset shares its model's process: set ctx / gpuLayers / extraArgs for the model in the config instead`,
    );
  let mapped;
  try {
    mapped = mapOptions(params);
  } catch (e) {
    if (e instanceof OptionsError) throw new ModelfileError(`PARAMETER: ${e.message}`);
    throw e;
  }
  const unknown = mapped.ignored.filter((k) => !DROPPED_OPTIONS.has(k));
  if (unknown.length > 0)
    throw new ModelfileError(`unknown PARAMETER ${unknown.join(", ")} (see Ollama's Modelfile parameters)`);
  return mapped.params;
}

function messagesOf(v: unknown): PresetMessage[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ModelfileError('"messages" must be a list of {role, content}');
  return v.map((m, i) => {
    if (!isObj(m) || typeof m.role !== "string" || !ROLES.has(m.role) || typeof m.content !== "string")
      throw new ModelfileError(`messages[${i}] must be {"role": "system" | "user" | "assistant", "content": "…"}`);
    return { role: m.role as PresetMessage["role"], content: m.content };
  });
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** llama-server parameter → Ollama's name, for the Modelfile `/api/show` writes. */
const OLLAMA_NAME: Readonly<Record<string, string>> = { max_tokens: "num_predict", n_keep: "num_keep" };

/** A preset as a Modelfile: FROM its model, its parameters, its system prompt and messages. */
export function presetModelfile(name: string, def: PresetDef): string {
  const lines = [`# Modelfile generated by "ollama show"`, `# gglib preset ${name}`, `FROM ${def.model}`];
  for (const [k, v] of Object.entries(def.set ?? {})) {
    const key = OLLAMA_NAME[k] ?? k;
    if (Array.isArray(v)) for (const x of v) lines.push(`PARAMETER ${key} ${quoted(String(x))}`);
    else if (typeof v === "object" && v !== null) lines.push(`# set ${k}: ${JSON.stringify(v)}`);
    else lines.push(`PARAMETER ${key} ${String(v)}`);
  }
  for (const k of def.strip ?? []) lines.push(`# strip ${k}`);
  if (def.system !== undefined) {
    if (def.systemMode !== "default")
      lines.push(
        `# the system prompt is ${def.systemMode === "replace" ? "used instead of" : "put before"} the client's`,
      );
    lines.push(`SYSTEM ${tripleQuoted(def.system)}`);
  }
  for (const m of def.messages ?? []) lines.push(`MESSAGE ${m.role} ${tripleQuoted(m.content)}`);
  return lines.join("\n") + "\n";
}

/** Ollama's `parameters` text of /api/show: one `name value` per line. */
export function presetParametersText(def: PresetDef): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(def.set ?? {})) {
    const key = (OLLAMA_NAME[k] ?? k).padEnd(30);
    if (Array.isArray(v)) for (const x of v) out.push(`${key} ${quoted(String(x))}`);
    else if (typeof v !== "object" || v === null) out.push(`${key} ${String(v)}`);
  }
  return out.join("\n");
}

const quoted = (s: string) => `"${s.replace(/"/g, '\\"')}"`;
const tripleQuoted = (s: string) => (s.includes("\n") || s.includes('"') || s !== s.trim() ? `"""${s}"""` : s);
