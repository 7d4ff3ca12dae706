/**
 * llama-server answers → Ollama answers (pure; the clock is passed in). A stream of OpenAI chat-completion chunks
 * (or `/completion` chunks) becomes Ollama's NDJSON frames: one frame per content/thinking delta, tool calls
 * collected and sent as one frame when complete (Ollama never streams half a call), then the final frame with
 * `done_reason` and the stats: prompt_eval_* and eval_* from llama-server's `timings`/`usage`, load_duration from
 * the time this request waited for the model, total_duration from the request's arrival. Field order and the
 * omission of zero stats follow Ollama's Go structs (ChatResponse, GenerateResponse, Metrics with omitempty).
 */
import { goTime, msToNs } from "./wire.js";
import type { OllamaToolCall } from "./request.js";

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

export interface Timing {
  /** The request arrived (ms, same clock as `now`). */
  startMs: number;
  /** Time spent waiting for the model to load (or for room), ms. */
  loadMs: number;
}

/** What llama-server reported of a request (its `usage` and `timings`): Ollama's stats, and the proxy's usage. */
export interface UpstreamStats {
  /** Every token of the prompt, the cached ones included. */
  promptTokens?: number;
  promptMs?: number;
  completionTokens?: number;
  predictedMs?: number;
  /** Prompt tokens reused from the cache (timings.cache_n, usage.prompt_tokens_details.cached_tokens). */
  cachedTokens?: number;
  promptPerSecond?: number;
  predictedPerSecond?: number;
}

/** Reads `usage` and `timings` of a chunk or a whole response into `into`. */
export function collectStats(into: UpstreamStats, o: Obj): void {
  const u = o.usage;
  if (isObj(u)) {
    into.promptTokens = num(u.prompt_tokens) ?? into.promptTokens;
    into.completionTokens = num(u.completion_tokens) ?? into.completionTokens;
    const d = u.prompt_tokens_details;
    if (isObj(d)) into.cachedTokens = num(d.cached_tokens) ?? into.cachedTokens;
  }
  const t = o.timings;
  if (isObj(t)) {
    into.promptMs = num(t.prompt_ms) ?? into.promptMs;
    into.predictedMs = num(t.predicted_ms) ?? into.predictedMs;
    into.cachedTokens = num(t.cache_n) ?? into.cachedTokens;
    into.promptPerSecond = num(t.prompt_per_second) ?? into.promptPerSecond;
    into.predictedPerSecond = num(t.predicted_per_second) ?? into.predictedPerSecond;
    if (into.completionTokens === undefined) into.completionTokens = num(t.predicted_n);
    if (into.promptTokens === undefined) {
      const p = num(t.prompt_n);
      if (p !== undefined) into.promptTokens = p + (num(t.cache_n) ?? 0);
    }
  }
  // /completion's own fields
  if (into.promptTokens === undefined) into.promptTokens = num(o.tokens_evaluated);
  if (into.completionTokens === undefined) into.completionTokens = num(o.tokens_predicted);
}

/** Ollama's Metrics, zero values left out (Go's omitempty). */
export function metrics(stats: UpstreamStats, timing: Timing, nowMs: number): Obj {
  const m: Obj = {};
  const put = (k: string, v: number | undefined) => {
    if (v !== undefined && v > 0) m[k] = Math.round(v);
  };
  put("total_duration", msToNs(nowMs - timing.startMs));
  put("load_duration", msToNs(timing.loadMs));
  put("prompt_eval_count", stats.promptTokens);
  put("prompt_eval_duration", stats.promptMs !== undefined ? msToNs(stats.promptMs) : undefined);
  put("eval_count", stats.completionTokens);
  put("eval_duration", stats.predictedMs !== undefined ? msToNs(stats.predictedMs) : undefined);
  return m;
}

/** OpenAI finish_reason / llama-server stop type → Ollama done_reason. */
export function doneReason(finish: unknown): string {
  if (finish === "length" || finish === "limit") return "length";
  return "stop";
}

/** OpenAI logprobs.content → Ollama logprobs. */
function logprobs(choice: Obj): Obj[] | undefined {
  const lp = choice.logprobs;
  if (!isObj(lp) || !Array.isArray(lp.content)) return undefined;
  const one = (e: unknown): Obj => {
    const o = isObj(e) ? e : {};
    const r: Obj = { token: typeof o.token === "string" ? o.token : "", logprob: num(o.logprob) ?? 0 };
    if (Array.isArray(o.bytes)) r.bytes = o.bytes;
    return r;
  };
  return lp.content.map((e) => {
    const r = one(e);
    if (isObj(e) && Array.isArray(e.top_logprobs)) r.top_logprobs = e.top_logprobs.map(one);
    return r;
  });
}

export class ToolCallError extends Error {
  override name = "ToolCallError";
}

/** Tool-call deltas (by index) → complete Ollama tool calls with parsed arguments. */
export class ToolCallAccumulator {
  private calls: { id?: string; name: string; args: string }[] = [];

  add(deltas: unknown): void {
    if (!Array.isArray(deltas)) return;
    for (const d of deltas) {
      if (!isObj(d)) continue;
      const i = num(d.index) ?? this.calls.length;
      const c = (this.calls[i] ??= { name: "", args: "" });
      if (typeof d.id === "string" && d.id) c.id = d.id;
      const f = isObj(d.function) ? d.function : {};
      if (typeof f.name === "string") c.name += f.name;
      if (typeof f.arguments === "string") c.args += f.arguments;
      else if (isObj(f.arguments)) c.args = JSON.stringify(f.arguments);
    }
  }

  get size(): number {
    return this.calls.filter(Boolean).length;
  }

  /** Complete calls; throws ToolCallError when the model's arguments are not a JSON object. */
  take(): OllamaToolCall[] {
    const out: OllamaToolCall[] = [];
    this.calls.forEach((c, index) => {
      if (!c) return;
      let args: unknown = {};
      if (c.args.trim() !== "") {
        try {
          args = JSON.parse(c.args);
        } catch {
          throw new ToolCallError(
            `the model called ${c.name} with arguments that are not JSON: ${c.args.slice(0, 200)}`,
          );
        }
      }
      if (!isObj(args)) throw new ToolCallError(`the model called ${c.name} with arguments that are not a JSON object`);
      const call: OllamaToolCall = { function: { index, name: c.name, arguments: args } };
      if (c.id) call.id = c.id;
      out.push(call);
    });
    this.calls = [];
    return out;
  }
}

export interface TranslatorOptions {
  /** The model name as the client sent it (Ollama echoes it). */
  model: string;
  /** "chat": frames carry `message`; "generate": frames carry `response`. */
  shape: "chat" | "generate";
  /** Drop reasoning text (think: false). */
  hideThinking?: boolean;
  timing: Timing;
}

/**
 * Turns upstream chunks into Ollama frames. Feed each parsed chunk to `chunk()`, then call `end()` for the final
 * frame(s). In non-streaming use, `aggregate()` returns the one object Ollama answers with.
 */
export class OllamaTranslator {
  readonly stats: UpstreamStats = {};
  private readonly tools = new ToolCallAccumulator();
  private finish: unknown;
  private content = "";
  private thinking = "";
  private lp: Obj[] = [];
  /** Generated token ids (`/completion` with return_tokens), for `context`. */
  readonly tokens: number[] = [];

  constructor(private readonly o: TranslatorOptions) {}

  get text(): string {
    return this.content;
  }

  /** One upstream chunk (OpenAI chat chunk, or `/completion` chunk) → zero or more frames. */
  chunk(c: Obj, nowMs: number): Obj[] {
    collectStats(this.stats, c);
    const frames: Obj[] = [];
    if (typeof c.content === "string" || "stop" in c) {
      // /completion
      if (Array.isArray(c.tokens)) for (const t of c.tokens) if (typeof t === "number") this.tokens.push(t);
      if (c.stop === true) this.finish = c.stop_type === "limit" ? "length" : "stop";
      if (typeof c.content === "string" && c.content) {
        this.content += c.content;
        frames.push(this.frame(nowMs, c.content, ""));
      }
      return frames;
    }
    const choices = Array.isArray(c.choices) ? c.choices : [];
    for (const ch of choices) {
      if (!isObj(ch)) continue;
      if (ch.finish_reason !== null && ch.finish_reason !== undefined) this.finish = ch.finish_reason;
      const d = isObj(ch.delta) ? ch.delta : isObj(ch.message) ? ch.message : {};
      this.tools.add(d.tool_calls);
      const text = typeof d.content === "string" ? d.content : "";
      let think = typeof d.reasoning_content === "string" ? d.reasoning_content : "";
      if (this.o.hideThinking) think = "";
      const lp = logprobs(ch);
      if (lp) this.lp.push(...lp);
      if (!text && !think) continue;
      this.content += text;
      this.thinking += think;
      const f = this.frame(nowMs, text, think);
      if (lp) f.logprobs = lp;
      frames.push(f);
    }
    return frames;
  }

  /** The frames that close a stream: the tool calls (if any), then the final frame with the stats. */
  end(nowMs: number, extra: { context?: number[] } = {}): Obj[] {
    const frames: Obj[] = [];
    if (this.tools.size > 0) {
      const calls = this.tools.take();
      const f = this.frame(nowMs, "", "");
      (f.message as Obj).tool_calls = calls;
      frames.push(f);
    }
    frames.push(this.final(nowMs, "", "", undefined, extra.context));
    return frames;
  }

  /** The single answer of a non-streaming request. */
  aggregate(nowMs: number, extra: { context?: number[] } = {}): Obj {
    const calls = this.tools.size > 0 ? this.tools.take() : undefined;
    const f = this.final(nowMs, this.content, this.thinking, calls, extra.context);
    if (this.lp.length > 0) f.logprobs = this.lp;
    return f;
  }

  private frame(nowMs: number, text: string, think: string): Obj {
    const f: Obj = { model: this.o.model, created_at: goTime(nowMs) };
    if (this.o.shape === "chat") {
      const message: Obj = { role: "assistant", content: text };
      if (think) message.thinking = think;
      f.message = message;
    } else {
      f.response = text;
      if (think) f.thinking = think;
    }
    f.done = false;
    return f;
  }

  private final(nowMs: number, text: string, think: string, calls?: OllamaToolCall[], context?: number[]): Obj {
    const f: Obj = { model: this.o.model, created_at: goTime(nowMs) };
    const reason = doneReason(this.finish);
    if (this.o.shape === "chat") {
      const message: Obj = { role: "assistant", content: text };
      if (think) message.thinking = think;
      if (calls && calls.length > 0) message.tool_calls = calls;
      f.message = message;
      f.done_reason = reason;
      f.done = true;
    } else {
      f.response = text;
      if (think) f.thinking = think;
      f.done = true;
      f.done_reason = reason;
      if (context && context.length > 0) f.context = context;
    }
    Object.assign(f, metrics(this.stats, this.o.timing, nowMs));
    return f;
  }
}

/** The answer to the load/unload idiom (empty messages / prompt): done_reason "load" or "unload". */
export function idiomFrame(shape: "chat" | "generate", model: string, nowMs: number, reason: "load" | "unload"): Obj {
  if (shape === "chat")
    return {
      model,
      created_at: goTime(nowMs),
      message: { role: "assistant", content: "" },
      done_reason: reason,
      done: true,
    };
  return { model, created_at: goTime(nowMs), response: "", done: true, done_reason: reason };
}
