import { Agent, request } from "undici";
import type { RequestMessage } from "./conversation.js";
import { ChatStreamParser, parseErrorBody, type ChatStreamEvent } from "./stream.js";
import { promptOpensThinking } from "./think-splitter.js";

/**
 * HTTP side of the chat: an OpenAI-compatible server (the gglib proxy, or one llama-server) reached with undici.
 * A request is cancelled with an AbortSignal: undici closes the connection, and llama-server frees the slot as
 * soon as it notices (a few ms for a stream).
 */

export interface ChatRequestOptions {
  model: string;
  messages: RequestMessage[];
  maxTokens?: number;
  temperature?: number;
  /** The template opens `<think>` in the prompt (see templateOpensThinking). */
  forcedOpen?: boolean;
  /** More request fields (seed, top_k, grammar, …); they cannot replace model, messages or stream. */
  extra?: Record<string, unknown>;
}

export type ServerProbe = "up" | "loading" | "down";

export interface ServerModel {
  id: string;
  aliases: string[];
  /** "gglib" for the gglib proxy, "llamacpp" for llama-server. */
  ownedBy: string;
  loaded: boolean;
}

export class ChatHttpError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly errorType?: string,
  ) {
    super(message);
    this.name = "ChatHttpError";
  }
}

export class ChatClient {
  private readonly agent = new Agent({ headersTimeout: 0, bodyTimeout: 0, connectTimeout: 5_000 });

  private readonly auth: Record<string, string>;

  constructor(
    readonly baseUrl: string,
    apiKey?: string,
  ) {
    this.auth = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  }

  private url(path: string): string {
    return this.baseUrl.replace(/\/+$/, "") + path;
  }

  /** GET /health with a short timeout: is something serving there? */
  async probe(timeoutMs = 1_500): Promise<ServerProbe> {
    try {
      const res = await request(this.url("/health"), {
        method: "GET",
        dispatcher: this.agent,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.text().catch(() => "");
      if (res.statusCode === 200) return "up";
      if (res.statusCode === 503) return "loading";
      // Something answers HTTP but has no /health (another OpenAI-compatible server): usable.
      return res.statusCode < 500 ? "up" : "down";
    } catch {
      return "down";
    }
  }

  /** Model ids from GET /v1/models ([] when the server does not say). */
  async listModels(timeoutMs = 5_000): Promise<string[]> {
    return (await this.models(timeoutMs)).map((m) => m.id);
  }

  /** GET /v1/models with what the gglib proxy adds (aliases, loaded state). */
  async models(timeoutMs = 5_000): Promise<ServerModel[]> {
    try {
      const res = await request(this.url("/v1/models"), {
        method: "GET",
        headers: this.auth,
        dispatcher: this.agent,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body: unknown = await res.body.json().catch(() => undefined);
      if (res.statusCode !== 200 || typeof body !== "object" || body === null) return [];
      const data = (body as { data?: unknown }).data;
      if (!Array.isArray(data)) return [];
      const out: ServerModel[] = [];
      for (const d of data as unknown[]) {
        if (typeof d !== "object" || d === null) continue;
        const r = d as { id?: unknown; aliases?: unknown; owned_by?: unknown; status?: unknown };
        if (typeof r.id !== "string") continue;
        const aliases = Array.isArray(r.aliases) ? r.aliases.filter((a): a is string => typeof a === "string") : [];
        const st =
          typeof r.status === "object" && r.status !== null ? (r.status as { value?: unknown }).value : undefined;
        out.push({
          id: r.id,
          aliases,
          ownedBy: typeof r.owned_by === "string" ? r.owned_by : "",
          // llama-server lists only the model it serves: loaded
          loaded: typeof st === "string" ? st === "loaded" : true,
        });
      }
      return out;
    } catch {
      return [];
    }
  }

  /**
   * Does the model's chat template open a thinking block in the prompt (so the output starts inside it)?
   * Asks POST /apply-template; undefined when the server cannot tell.
   */
  async templateOpensThinking(
    model: string,
    opts: { viaUpstream?: boolean; timeoutMs?: number } = {},
  ): Promise<boolean | undefined> {
    const path = opts.viaUpstream ? `/upstream/${encodeURIComponent(model)}/apply-template` : "/apply-template";
    const timeoutMs = opts.timeoutMs ?? 5_000;
    try {
      const res = await request(this.url(path), {
        method: "POST",
        dispatcher: this.agent,
        headers: { "content-type": "application/json", ...this.auth },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }] }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body: unknown = await res.body.json().catch(() => undefined);
      if (res.statusCode !== 200 || typeof body !== "object" || body === null) return undefined;
      const prompt = (body as { prompt?: unknown }).prompt;
      return typeof prompt === "string" ? promptOpensThinking(prompt) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * POST /v1/chat/completions with stream: true and yield the parsed events. Throws ChatHttpError when the server
   * refuses the request or cannot be reached; an abort ends the iteration quietly (check signal.aborted).
   */
  async *stream(opts: ChatRequestOptions, signal: AbortSignal): AsyncGenerator<ChatStreamEvent> {
    const body: Record<string, unknown> = {
      ...(opts.extra ?? {}),
      model: opts.model,
      messages: opts.messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (opts.model === "") delete body.model;
    if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens;
    if (opts.temperature !== undefined) body.temperature = opts.temperature;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(this.url("/v1/chat/completions"), {
        method: "POST",
        dispatcher: this.agent,
        headers: { "content-type": "application/json", accept: "text/event-stream", ...this.auth },
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal.aborted) return;
      throw new ChatHttpError(`cannot reach ${this.baseUrl}: ${describeNetError(e)}`);
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => "");
      let message = text.trim() || `HTTP ${res.statusCode}`;
      let type: string | undefined;
      try {
        const err = parseErrorBody(JSON.parse(text));
        if (err) {
          message = err.message;
          type = err.errorType;
        }
      } catch {
        // not JSON: keep the text
      }
      throw new ChatHttpError(`${message} (HTTP ${res.statusCode})`, res.statusCode, type);
    }
    const parser = new ChatStreamParser({ forcedOpen: opts.forcedOpen === true });
    const decoder = new TextDecoder();
    let failed = false;
    try {
      for await (const chunk of res.body) {
        const events = parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
        for (const ev of events) {
          if (ev.type === "error") failed = true;
          yield ev;
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      throw new ChatHttpError(`the connection to ${this.baseUrl} broke during the answer: ${describeNetError(e)}`);
    } finally {
      if (signal.aborted) res.body.destroy();
    }
    for (const ev of [...parser.feed(decoder.decode()), ...parser.end()]) {
      if (ev.type === "error") failed = true;
      yield ev;
    }
    if (!parser.done && !failed && !signal.aborted) {
      yield { type: "error", message: `the server closed the stream before the answer was complete` };
    }
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }
}

function describeNetError(e: unknown): string {
  if (e && typeof e === "object") {
    const code = (e as { code?: unknown }).code;
    const cause = (e as { cause?: unknown }).cause;
    const msg = e instanceof Error ? e.message : JSON.stringify(e);
    if (typeof code === "string") return `${code}${msg && !msg.includes(code) ? ` (${msg})` : ""}`;
    if (cause) return describeNetError(cause);
    return msg;
  }
  return String(e);
}
