/**
 * Ollama requests → llama-server requests (pure). `/api/chat` and `/api/generate` become an OpenAI chat completion
 * (`/v1/chat/completions`: templating, images, tools, reasoning and JSON grammars all happen in llama-server);
 * `/api/generate` with `raw`, `template` or `context` becomes a raw completion (`/completion`), the only form that
 * takes a prompt verbatim or as tokens. Every field is validated; what cannot be honoured is an OllamaRequestError
 * (an HttpError, 400, written in Ollama's `{"error"}` shape), never silently dropped.
 */
import { HttpError } from "../core/errors.js";
import { mapOptions, OptionsError } from "./options.js";
import { parseKeepAlive, KeepAliveError, type KeepAlive } from "./keep-alive.js";

/** A request Ollama's API cannot honour: an HttpError (400 unless told), written in Ollama's `{"error"}` shape. */
export class OllamaRequestError extends HttpError {
  override name = "OllamaRequestError";
  constructor(message: string, status = 400) {
    super(status, "invalid_request", message);
  }
}

export type Think = undefined | boolean | "high" | "medium" | "low";

export interface OllamaToolCall {
  id?: string;
  function: { index?: number; name: string; arguments: Record<string, unknown> };
}

/** What every translated request shares. */
export interface Common {
  /** Ollama's default is to stream. */
  stream: boolean;
  keepAlive: KeepAlive;
  think: Think;
  /** Options that had no effect. */
  ignoredOptions: string[];
}

export interface ChatTranslation extends Common {
  kind: "chat";
  /** The upstream body (`/v1/chat/completions`); undefined for the load/unload idiom (no messages). */
  body: Record<string, unknown> | undefined;
  /** The request asks for thinking output (think: true or a level). */
  wantsThinking: boolean;
  hasTools: boolean;
  hasImages: boolean;
}

export interface CompletionTranslation extends Common {
  kind: "completion";
  /** `/completion` body (prompt: string, or tokens then text). */
  body: Record<string, unknown>;
  /** The prompt text as sent after the context tokens (for the returned `context`). */
  promptText: string;
  context: number[];
  /** `raw: true`: the prompt is sent verbatim and no `context` is returned (as in Ollama). */
  raw: boolean;
  /** A non-raw prompt without `template` must be rendered with the model's chat template first (`/apply-template`). */
  needsTemplate: { system?: string; prompt: string } | undefined;
}

export type GenerateTranslation = (ChatTranslation & { generate: true }) | (CompletionTranslation & { generate: true });

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(o: Obj, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new OllamaRequestError(`"${key}" must be a string`);
  return v;
}

function parseStream(o: Obj): boolean {
  const s = o.stream;
  if (s === undefined || s === null) return true;
  if (typeof s !== "boolean") throw new OllamaRequestError(`"stream" must be true or false`);
  return s;
}

export function parseThink(v: unknown): Think {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "boolean") return v;
  if (v === "high" || v === "medium" || v === "low") return v;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new OllamaRequestError(
    `invalid think value: ${JSON.stringify(v)} (must be "high", "medium", "low", true, or false)`,
  );
}

function common(o: Obj): Common & { params: Record<string, unknown> } {
  let keepAlive: KeepAlive;
  let mapped;
  try {
    keepAlive = parseKeepAlive(o.keep_alive);
    mapped = mapOptions(o.options);
  } catch (e) {
    if (e instanceof KeepAliveError || e instanceof OptionsError) throw new OllamaRequestError(e.message);
    throw e;
  }
  return {
    stream: parseStream(o),
    keepAlive,
    think: parseThink(o.think),
    ignoredOptions: mapped.ignored,
    params: mapped.params,
  };
}

/** think → llama-server's switches (chat template kwargs / reasoning effort). */
function thinkParams(think: Think): Record<string, unknown> {
  if (think === undefined) return {};
  if (think === false) return { chat_template_kwargs: { enable_thinking: false } };
  if (think === true) return { chat_template_kwargs: { enable_thinking: true } };
  return { chat_template_kwargs: { enable_thinking: true }, reasoning_effort: think };
}

/** format → response_format ("json" → any JSON object; an object → that JSON schema). */
export function formatParams(format: unknown): Record<string, unknown> {
  if (format === undefined || format === null || format === "") return {};
  if (format === "json") return { response_format: { type: "json_object" } };
  if (isObj(format))
    return { response_format: { type: "json_schema", json_schema: { name: "format", schema: format } } };
  throw new OllamaRequestError(`invalid format: ${JSON.stringify(format)} (use "json" or a JSON schema object)`);
}

/** The MIME type of a base64 image from its first bytes (llama-server decodes any; the data URL wants one). */
export function imageMime(b64: string): string {
  const head = Buffer.from(b64.slice(0, 24), "base64");
  if (head[0] === 0x89 && head[1] === 0x50) return "image/png";
  if (head[0] === 0xff && head[1] === 0xd8) return "image/jpeg";
  if (head.subarray(0, 3).toString("latin1") === "GIF") return "image/gif";
  if (head.subarray(0, 4).toString("latin1") === "RIFF") return "image/webp";
  return "application/octet-stream";
}

function images(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw new OllamaRequestError(`${where}: "images" must be an array of base64 strings`);
  return v.map((s: string) => s.replace(/^data:[^;,]*;base64,/, ""));
}

function contentWithImages(text: string, imgs: string[]): string | Obj[] {
  if (imgs.length === 0) return text;
  const parts: Obj[] = imgs.map((b) => ({ type: "image_url", image_url: { url: `data:${imageMime(b)};base64,${b}` } }));
  if (text) parts.push({ type: "text", text });
  return parts;
}

function toolCallsOut(v: unknown, where: string, ids: string[]): Obj[] {
  if (!Array.isArray(v)) throw new OllamaRequestError(`${where}: "tool_calls" must be an array`);
  return v.map((tc, i) => {
    if (!isObj(tc) || !isObj(tc.function) || typeof tc.function.name !== "string")
      throw new OllamaRequestError(`${where}: tool_calls[${i}] must be {"function":{"name","arguments"}}`);
    const args = tc.function.arguments ?? {};
    if (!isObj(args) && typeof args !== "string")
      throw new OllamaRequestError(`${where}: tool_calls[${i}].function.arguments must be an object`);
    const id = typeof tc.id === "string" && tc.id ? tc.id : `call_${ids.length}`;
    ids.push(id);
    return {
      id,
      type: "function",
      function: { name: tc.function.name, arguments: typeof args === "string" ? args : JSON.stringify(args) },
    };
  });
}

/** Ollama messages → OpenAI messages (images as data URLs, tool calls with ids, tool results linked to them). */
export function translateMessages(v: unknown): { messages: Obj[]; hasImages: boolean } {
  if (v === undefined || v === null) return { messages: [], hasImages: false };
  if (!Array.isArray(v)) throw new OllamaRequestError(`"messages" must be an array`);
  const out: Obj[] = [];
  const callIds: string[] = [];
  let nextTool = 0;
  let hasImages = false;
  v.forEach((m, i) => {
    const where = `messages[${i}]`;
    if (!isObj(m)) throw new OllamaRequestError(`${where} must be an object`);
    const role = typeof m.role === "string" ? m.role.toLowerCase() : "";
    if (!["system", "user", "assistant", "tool"].includes(role))
      throw new OllamaRequestError(`${where}: role must be "system", "user", "assistant" or "tool"`);
    const content = m.content ?? "";
    if (typeof content !== "string") throw new OllamaRequestError(`${where}: "content" must be a string`);
    const imgs = images(m.images, where);
    if (imgs.length > 0) hasImages = true;
    const msg: Obj = { role, content: contentWithImages(content, imgs) };
    if (role === "assistant") {
      if (typeof m.thinking === "string" && m.thinking) msg.reasoning_content = m.thinking;
      if (m.tool_calls !== undefined && m.tool_calls !== null) {
        const start = callIds.length;
        msg.tool_calls = toolCallsOut(m.tool_calls, where, callIds);
        nextTool = start;
      }
    }
    if (role === "tool") {
      const id = typeof m.tool_call_id === "string" && m.tool_call_id ? m.tool_call_id : callIds[nextTool];
      nextTool++;
      if (id) msg.tool_call_id = id;
      if (typeof m.tool_name === "string" && m.tool_name) msg.name = m.tool_name;
    }
    out.push(msg);
  });
  return { messages: out, hasImages };
}

function tools(v: unknown): Obj[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new OllamaRequestError(`"tools" must be an array`);
  v.forEach((t, i) => {
    if (!isObj(t) || !isObj(t.function) || typeof t.function.name !== "string")
      throw new OllamaRequestError(`tools[${i}] must be {"type":"function","function":{"name",…}}`);
  });
  return v.length > 0 ? (v as Obj[]).map((t) => ({ ...t, type: t.type ?? "function" })) : undefined;
}

function logprobParams(o: Obj): Record<string, unknown> {
  if (o.logprobs !== true) return {};
  const top = o.top_logprobs;
  return { logprobs: true, ...(typeof top === "number" && top > 0 ? { top_logprobs: Math.trunc(top) } : {}) };
}

/** The `/v1/chat/completions` body both `/api/chat` and a templated `/api/generate` send. */
function chatCompletionBody(c: ReturnType<typeof common>, req: Obj, model: string, messages: Obj[], t?: Obj[]): Obj {
  const body: Obj = {
    ...c.params,
    ...thinkParams(c.think),
    ...formatParams(req.format),
    ...logprobParams(req),
    model,
    messages,
    stream: c.stream,
  };
  if (t) body.tools = t;
  if (c.stream) body.stream_options = { include_usage: true };
  return body;
}

/** `/api/chat` → `/v1/chat/completions`. `model` is our resolved name. */
export function translateChat(req: unknown, model: string): ChatTranslation {
  if (!isObj(req)) throw new OllamaRequestError("the request body must be a JSON object");
  const c = common(req);
  const { messages, hasImages } = translateMessages(req.messages);
  const t = tools(req.tools);
  const base = {
    kind: "chat" as const,
    stream: c.stream,
    keepAlive: c.keepAlive,
    think: c.think,
    ignoredOptions: c.ignoredOptions,
    wantsThinking: c.think !== undefined && c.think !== false,
    hasTools: t !== undefined,
    hasImages,
  };
  if (messages.length === 0) return { ...base, body: undefined };
  return { ...base, body: chatCompletionBody(c, req, model, messages, t) };
}

/**
 * The subset of Ollama's Go templates a `template` override may use: `{{ .System }}`, `{{ .Prompt }}`,
 * `{{ .Response }}` (empty: the answer follows), `{{ if .System }}…{{ end }}` / `{{ if .Prompt }}…{{ end }}` and
 * the `{{-`/`-}}` trims. Anything else (range, messages, tools) is refused.
 */
export function renderGoTemplate(template: string, vars: { System?: string; Prompt: string }): string {
  const values: Record<string, string> = { System: vars.System ?? "", Prompt: vars.Prompt, Response: "" };
  const tokens = template.split(/(\{\{-?\s*[\s\S]*?\s*-?\}\})/);
  let out = "";
  const stack: boolean[] = [];
  const active = () => stack.every(Boolean);
  let trimNext = false;
  for (const tok of tokens) {
    const m = /^\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}$/.exec(tok);
    if (!m) {
      const text = trimNext ? tok.replace(/^\s+/, "") : tok;
      trimNext = false;
      if (active()) out += text;
      continue;
    }
    if (m[1] === "-") out = out.replace(/\s+$/, "");
    trimNext = m[3] === "-";
    const expr = m[2]!;
    let v: RegExpExecArray | null;
    if ((v = /^\.(System|Prompt|Response)$/.exec(expr))) {
      if (active()) out += values[v[1]!];
    } else if ((v = /^if\s+\.(System|Prompt|Response)$/.exec(expr))) {
      stack.push(values[v[1]!] !== "");
    } else if (expr === "else") {
      if (stack.length === 0) throw new OllamaRequestError("template: {{ else }} outside {{ if }}");
      stack.push(!stack.pop());
    } else if (expr === "end") {
      if (stack.length === 0) throw new OllamaRequestError("template: {{ end }} without {{ if }}");
      stack.pop();
    } else {
      throw new OllamaRequestError(
        `template: {{ ${expr} }} is not supported here (only .System, .Prompt, .Response and if/else/end on them); ` +
          "omit template to use the model's own chat template",
      );
    }
  }
  if (stack.length > 0) throw new OllamaRequestError("template: an {{ if }} has no {{ end }}");
  return out;
}

function contextTokens(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && (x as number) >= 0))
    throw new OllamaRequestError(`"context" must be an array of token ids (from an earlier /api/generate)`);
  return v as number[];
}

/** `/api/generate` → a chat completion, or a raw completion for raw/template/context. */
export function translateGenerate(req: unknown, model: string): GenerateTranslation {
  if (!isObj(req)) throw new OllamaRequestError("the request body must be a JSON object");
  const prompt = optString(req, "prompt") ?? "";
  const system = optString(req, "system");
  const template = optString(req, "template");
  const suffix = optString(req, "suffix");
  const raw = req.raw === true;
  const imgs = images(req.images, "request");
  const context = contextTokens(req.context);
  if (suffix)
    throw new OllamaRequestError(
      `"suffix" (fill-in-the-middle) is not supported on /api/generate here; use the proxy's /infill endpoint`,
    );
  const c = common(req);
  const shared = {
    stream: c.stream,
    keepAlive: c.keepAlive,
    think: c.think,
    ignoredOptions: c.ignoredOptions,
    generate: true as const,
  };
  const loadOnly = prompt === "" && imgs.length === 0;
  if (loadOnly || (!raw && !template && context.length === 0)) {
    const messages: Obj[] = [];
    if (system) messages.push({ role: "system", content: system });
    if (!loadOnly) messages.push({ role: "user", content: contentWithImages(prompt, imgs) });
    return {
      ...shared,
      kind: "chat",
      wantsThinking: c.think !== undefined && c.think !== false,
      hasTools: false,
      hasImages: imgs.length > 0,
      body: loadOnly ? undefined : chatCompletionBody(c, req, model, messages),
    };
  }
  if (imgs.length > 0)
    throw new OllamaRequestError(`"images" cannot be combined with raw, template or context here; drop those`);
  if (c.think !== undefined && c.think !== false)
    throw new OllamaRequestError(`"think" cannot be combined with raw, template or context here`);
  let promptText = prompt;
  let needsTemplate: CompletionTranslation["needsTemplate"];
  if (!raw && template)
    promptText = renderGoTemplate(template, { ...(system ? { System: system } : {}), Prompt: prompt });
  else if (!raw) needsTemplate = { ...(system ? { system } : {}), prompt };
  const body: Record<string, unknown> = {
    ...c.params,
    ...formatCompletion(req.format),
    prompt: context.length > 0 ? [...context, promptText] : promptText,
    stream: c.stream,
    cache_prompt: true,
    return_tokens: true,
  };
  if (typeof body.max_tokens === "number") {
    body.n_predict = body.max_tokens;
    delete body.max_tokens;
  }
  return { ...shared, kind: "completion", body, promptText, context, raw, needsTemplate };
}

/** format on `/completion`: llama-server's json_schema field. */
function formatCompletion(format: unknown): Record<string, unknown> {
  const f = formatParams(format);
  if (!isObj(f.response_format)) return {};
  const rf = f.response_format;
  if (rf.type === "json_object") return { json_schema: {} };
  return { json_schema: (rf.json_schema as Obj).schema };
}
