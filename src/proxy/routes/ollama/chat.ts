/**
 * POST /api/chat and /api/generate: the request translated (src/ollama/request.ts), sent through the relay's
 * translated mode (lease, wait, resend rule, bookkeeping: Relay.relayTranslated), llama-server's answer turned
 * into Ollama's: an NDJSON stream (`NdjsonAnswer`) or one buffered object (`BufferedAnswer`). The load/unload
 * idiom (no messages, empty prompt) only loads or unloads the model.
 */
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { HttpError } from "../../../core/errors.js";
import { errorOfText } from "../../../core/upstream-error.js";
import { keepAliveToTtlMs } from "../../../ollama/keep-alive.js";
import type { ModelFacts } from "../../../ollama/models.js";
import {
  translateChat,
  translateGenerate,
  type ChatTranslation,
  type GenerateTranslation,
} from "../../../ollama/request.js";
import { idiomFrame, OllamaTranslator, ToolCallError, type UpstreamStats } from "../../../ollama/response.js";
import { NdjsonFromSse } from "../../../ollama/stream.js";
import { NDJSON_HEADERS, ndjsonLine, preciseNow } from "../../../ollama/wire.js";
import type { UsageStats } from "../../forward.js";
import type { LeaseUpstream, UpstreamAnswer } from "../../lease-upstream.js";
import type { TranslatedSink } from "../../relay.js";
import {
  readOllamaBody,
  upstreamJson,
  resolveModel,
  sendOllamaJson,
  type OllamaDeps,
  type OllamaHandler,
  type Obj,
} from "./common.js";
import { applyPreset, type Preset } from "../../../models/presets.js";

type Shape = "chat" | "generate";

export const chat: OllamaHandler = async (d, req, res) => {
  const start = preciseNow();
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const { requested, model, preset } = resolveModel(d, body);
  const t = translateChat(body, model.name);
  if (!t.body) return idiom(d, res, "chat", requested, model.name, t);
  if (preset) t.body = applyPreset(t.body, preset, model.name, "chat");
  checkCapabilities(requested, await d.facts.get(model), t);
  await complete(d, req, res, model.name, t, "/v1/chat/completions", t.body, { requested, shape: "chat", start });
};

export const generate: OllamaHandler = async (d, req, res) => {
  const start = preciseNow();
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const { requested, model, preset } = resolveModel(d, body);
  const t: GenerateTranslation = translateGenerate(body, model.name);
  if (t.kind === "chat" && !t.body) return idiom(d, res, "generate", requested, model.name, t);
  if (preset) withPreset(t, preset, model.name);
  if (t.kind === "chat") checkCapabilities(requested, await d.facts.get(model), t);
  const path = t.kind === "chat" ? "/v1/chat/completions" : "/completion";
  await complete(d, req, res, model.name, t, path, t.body!, { requested, shape: "generate", start });
};

/** A preset's changes on a generate: a chat-shaped one gets the system prompt, a templated prompt its system. */
function withPreset(t: GenerateTranslation, preset: Preset, model: string): void {
  if (t.body) t.body = applyPreset(t.body, preset, model, t.kind === "chat" ? "chat" : "none");
  if (preset.system === undefined || t.kind !== "completion" || !t.needsTemplate) return;
  const client = t.needsTemplate.system;
  t.needsTemplate.system =
    !client || preset.systemMode === "replace"
      ? preset.system
      : preset.systemMode === "default"
        ? client
        : `${preset.system}\n\n${client}`;
}

function checkCapabilities(requested: string, f: ModelFacts, t: ChatTranslation): void {
  if (!f.metadata) return;
  const caps = f.capabilities;
  const refuse = (what: string) => new HttpError(400, "unsupported", `"${requested}" does not support ${what}`);
  if (!caps.includes("completion")) throw refuse("chat or generate");
  if (t.wantsThinking && !caps.includes("thinking")) throw refuse("thinking");
  if (t.hasTools && !caps.includes("tools")) throw refuse("tools");
  if (t.hasImages && !caps.includes("vision"))
    throw refuse("images (no vision encoder: put its mmproj file next to it)");
}

/** The load/unload idiom: no messages / an empty prompt (keep_alive 0 unloads). */
async function idiom(
  d: OllamaDeps,
  res: ServerResponse,
  shape: Shape,
  requested: string,
  name: string,
  t: { keepAlive: ChatTranslation["keepAlive"] },
): Promise<void> {
  const c = d.ctx.controller;
  const ttl = keepAliveToTtlMs(t.keepAlive);
  if (ttl === 0) {
    const st = c.state(name)?.status;
    if (st && st !== "unloaded" && st !== "failed") c.unload(name);
    return sendOllamaJson(res, 200, idiomFrame(shape, requested, preciseNow(), "unload"));
  }
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  await c.load(name, abort.signal, ttl);
  if (ttl !== undefined) c.keepAlive(name, ttl);
  sendOllamaJson(res, 200, idiomFrame(shape, requested, preciseNow(), "load"));
}

interface Answering {
  requested: string;
  shape: Shape;
  /** The request arrived (preciseNow()). */
  start: number;
}

async function complete(
  d: OllamaDeps,
  req: Parameters<OllamaHandler>[1],
  res: ServerResponse,
  name: string,
  t: ChatTranslation | GenerateTranslation,
  path: string,
  upstreamBody: Obj,
  o: Answering,
): Promise<void> {
  const keepAliveMs = keepAliveToTtlMs(t.keepAlive);
  const sink = t.stream
    ? new NdjsonAnswer(res, t, path, upstreamBody, o)
    : new BufferedAnswer(res, t, path, upstreamBody, o);
  await d.ctx.relay.relayTranslated(
    req,
    res,
    { name, method: "POST", clientPath: `/api/${o.shape}`, ...(keepAliveMs !== undefined ? { keepAliveMs } : {}) },
    sink,
  );
}

/** llama-server's usage as the proxy counts it (metrics, /api/activity, the context cache). */
export function usageOf(s: UpstreamStats): UsageStats | undefined {
  const u: UsageStats = {};
  if (s.promptTokens !== undefined) u.promptTokens = s.promptTokens;
  if (s.completionTokens !== undefined) u.completionTokens = s.completionTokens;
  if (s.cachedTokens !== undefined) u.cachedTokens = s.cachedTokens;
  if (s.promptPerSecond !== undefined) u.promptPerSecond = s.promptPerSecond;
  if (s.predictedPerSecond !== undefined) u.predictedPerSecond = s.predictedPerSecond;
  return Object.keys(u).length > 0 ? u : undefined;
}

/**
 * One chat/generate exchange on the lease: the prompt rendered first when /api/generate needs the template, the
 * completion, then the answer in the subclass's form, with /api/generate's `context` computed last.
 */
abstract class Completion implements TranslatedSink {
  protected tr: OllamaTranslator | undefined;
  protected readonly headers: OutgoingHttpHeaders;

  constructor(
    protected readonly res: ServerResponse,
    private readonly t: ChatTranslation | GenerateTranslation,
    private readonly path: string,
    private readonly body: Obj,
    private readonly o: Answering,
  ) {
    this.headers = t.ignoredOptions.length > 0 ? { "x-gglib-ignored-options": t.ignoredOptions.join(", ") } : {};
  }

  usage(): UsageStats | undefined {
    return this.tr ? usageOf(this.tr.stats) : undefined;
  }

  async run(up: LeaseUpstream, waitedMs: number): Promise<void> {
    const t = this.t;
    const tr = (this.tr = new OllamaTranslator({
      model: this.o.requested,
      shape: this.o.shape,
      hideThinking: t.think === false,
      timing: { startMs: this.o.start, loadMs: waitedMs },
    }));
    // generate with the model's template plus earlier context: render the prompt first
    if (t.kind === "completion" && t.needsTemplate) {
      const messages: Obj[] = [];
      if (t.needsTemplate.system) messages.push({ role: "system", content: t.needsTemplate.system });
      messages.push({ role: "user", content: t.needsTemplate.prompt });
      const r = await up.json("/apply-template", { messages });
      t.promptText = typeof r.prompt === "string" ? r.prompt : t.needsTemplate.prompt;
      this.body.prompt = t.context.length > 0 ? [...t.context, t.promptText] : t.promptText;
    }
    const a = await up.call(this.path, this.body);
    if (a.status >= 400) {
      const text = await a.body.text();
      throw new HttpError(
        a.status,
        "upstream_error",
        errorOfText(text, "llama-server answered with an error and no message").message,
      );
    }
    try {
      await this.answer(a, up, tr);
    } catch (e) {
      if (e instanceof ToolCallError) throw new HttpError(502, "bad_tool_call", e.message);
      throw e;
    }
  }

  protected abstract answer(a: UpstreamAnswer, up: LeaseUpstream, tr: OllamaTranslator): Promise<void>;

  /** `context` for /api/generate: the conversation's tokens (none for raw, like Ollama). */
  protected async context(up: LeaseUpstream, tr: OllamaTranslator): Promise<{ context?: number[] }> {
    const t = this.t;
    if (!("generate" in t)) return {};
    let tokens: number[] | undefined;
    if (t.kind === "completion") {
      if (t.raw) return {};
      const tok = await up.json("/tokenize", {
        content: t.promptText,
        add_special: t.context.length === 0,
        parse_special: true,
      });
      tokens = [...t.context, ...(Array.isArray(tok.tokens) ? (tok.tokens as number[]) : []), ...tr.tokens];
    } else {
      const messages = (t.body?.messages ?? []) as Obj[];
      const r = await up.json("/apply-template", { messages });
      const prompt = typeof r.prompt === "string" ? r.prompt : "";
      const tok = await up.json("/tokenize", { content: prompt + tr.text, add_special: true, parse_special: true });
      tokens = Array.isArray(tok.tokens) ? (tok.tokens as number[]) : undefined;
    }
    return tokens ? { context: tokens } : {};
  }
}

/** A streamed answer: llama-server's SSE events as NDJSON frames, as they come. */
class NdjsonAnswer extends Completion {
  protected async answer(a: UpstreamAnswer, up: LeaseUpstream, tr: OllamaTranslator): Promise<void> {
    const res = this.res;
    res.writeHead(200, { ...NDJSON_HEADERS, ...this.headers });
    res.flushHeaders();
    const frames = new NdjsonFromSse(tr);
    for await (const chunk of a.body) {
      up.received((chunk as Buffer).length);
      const text = frames.push(chunk as Buffer, preciseNow);
      if (text) res.write(text);
      if (frames.failed) break;
    }
    const rest = frames.flush(preciseNow);
    if (rest) res.write(rest);
    if (!frames.failed) {
      const extra = await this.context(up, tr);
      for (const f of tr.end(preciseNow(), extra)) res.write(ndjsonLine(f));
    }
    res.end();
  }
}

/** A buffered answer (`stream: false`): llama-server's whole answer as Ollama's one object. */
class BufferedAnswer extends Completion {
  protected async answer(a: UpstreamAnswer, up: LeaseUpstream, tr: OllamaTranslator): Promise<void> {
    const text = await a.body.text();
    up.received(text.length);
    const j = upstreamJson(text);
    tr.chunk(j as Obj, preciseNow());
    const extra = await this.context(up, tr);
    sendOllamaJson(this.res, 200, tr.aggregate(preciseNow(), extra), this.headers);
  }
}
