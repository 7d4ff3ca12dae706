/**
 * Ollama's API on the proxy's port: the thin HTTP layer over the pure translation modules of src/ollama/: GET /api/version,
 * /api/tags, /api/ps; POST /api/show, /api/chat, /api/generate, /api/embed, /api/embeddings, /api/pull, /api/copy;
 * DELETE /api/delete; `GET /` answers "Ollama is running" like Ollama does. Models load through the proxy's
 * controller (its scheduler: single flight, swaps, queues, memory), requests go to llama-server through the
 * proxy's per-process connection pools. Errors are Ollama's `{"error":"…"}` with a fitting status.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { isUtf8 } from "node:buffer";
import type { Dispatcher } from "undici";
import type { ProxyModel } from "./catalog.js";
import type { Lease, ModelController } from "./controller.js";
import { HttpError, isGglibError } from "../core/errors.js";
import { connectionClosed } from "./forward.js";
import type { UpstreamHandle } from "./relay.js";
import type { RegisteredModel, Registry } from "../models/registry.js";
import { notOursMessage } from "../models/stores/index.js";
import { multipartMessage, readBody } from "./http/json.js";
import type { ProxyMetrics } from "./metrics.js";
import { keepAliveToTtlMs, parseKeepAlive } from "../ollama/keep-alive.js";
import { modelfile, modelInfo, parametersText } from "../ollama/model-info.js";
import { ModelFactsCache, type ModelFacts } from "../ollama/models.js";
import { ollamaListName, resolveOllamaName, type NamedModel } from "../ollama/names.js";
import {
  OllamaRequestError,
  translateChat,
  translateGenerate,
  type ChatTranslation,
  type GenerateTranslation,
} from "../ollama/request.js";
import {
  idiomFrame,
  OllamaTranslator,
  SseDataParser,
  ToolCallError,
  upstreamErrorMessage,
  type Timing,
} from "../ollama/response.js";
import {
  errorJson,
  foreverFrom,
  goJson,
  goTime,
  msToNs,
  NDJSON_HEADERS,
  ndjsonLine,
  preciseNow,
} from "../ollama/wire.js";
import { readGgufHeader } from "../gguf/reader.js";
import { parsePullRef } from "../hub/ref.js";

/**
 * The Ollama API level these endpoints follow (reported by /api/version; clients gate features on it). 0.13.4 is
 * the release from which clients count on Ollama's OpenAI-compatible `/v1/responses` (Codex's `--oss` refuses
 * anything older, "Codex requires Ollama 0.13.4 or newer"); here it is llama-server's own `/v1/responses`, reached
 * through the proxy's OpenAI routes under the names `/api/tags` lists (`agent:latest`). The native routes of that
 * level are the ones in OLLAMA_ROUTES; what differs is listed in the README's Ollama table.
 */
export const OLLAMA_COMPAT_VERSION = "0.13.4";

type Obj = Record<string, unknown>;

export interface PullProgressLike {
  status: string;
  file?: string;
  /** `sha256:<hex>` of the file, when known. */
  digest?: string;
  completed?: number;
  total?: number;
}

/** `gglib pull` as a function (src/hub/pull.ts), wired when present. */
export type PullFn = (
  ref: string,
  opts: { signal?: AbortSignal; onProgress?: (p: PullProgressLike) => void },
) => Promise<{ name: string }>;

export interface OllamaApiOptions {
  controller: ModelController;
  /** The proxy's connection pool of a llama-server process. */
  dispatcherFor: (handle: UpstreamHandle) => Dispatcher;
  metrics?: ProxyMetrics;
  bodyLimit?: number;
  /** Models run in VRAM (size_vram = size in /api/ps). */
  onGpu?: () => boolean;
  /** Downloads a model (POST /api/pull); the catalog is reloaded afterwards. */
  pull?: PullFn;
  /** The model registry, for copy (register the files under a new name) and delete (unregister). */
  registry?: Registry;
  /** Rescans the models (after pull/copy/delete). */
  reload?: () => Promise<unknown>;
  log?: (line: string) => void;
}

class OllamaError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

/** Ollama's endpoints, "METHOD /path" (plus the prefix /api/blobs/). */
export const OLLAMA_ROUTES: readonly string[] = [
  "GET /",
  "HEAD /",
  "GET /api/version",
  "HEAD /api/version",
  "GET /api/tags",
  "HEAD /api/tags",
  "GET /api/ps",
  "POST /api/show",
  "POST /api/chat",
  "POST /api/generate",
  "POST /api/embed",
  "POST /api/embeddings",
  "POST /api/pull",
  "POST /api/copy",
  "DELETE /api/delete",
  "POST /api/create",
  "POST /api/push",
];

/** An error reply in Ollama's shape (for errors thrown before the handler runs, e.g. a missing API key). */
export function writeOllamaError(res: ServerResponse, e: HttpError): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end(ndjsonLine({ error: e.message }));
    return;
  }
  const text = errorJson(e.message);
  const headers: OutgoingHttpHeaders = {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  };
  if (e.retryAfterS !== undefined) headers["retry-after"] = String(e.retryAfterS);
  if (e.status === 401) headers["www-authenticate"] = 'Bearer realm="gglib"';
  res.writeHead(e.status, headers);
  res.end(text);
}

/** Ollama endpoints that have no meaning here: answered with a clear error. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  "/api/create":
    "creating models from a Modelfile is not supported by gglib: put a GGUF in the models folder (or `gglib pull <user>/<repo>`), set its options in the gglib config",
  "/api/push": "pushing models to a registry is not supported by gglib",
  "/api/blobs": "blobs are an Ollama registry concept; gglib serves GGUF files from its models folder",
};

export class OllamaApi {
  private readonly facts = new ModelFactsCache();
  private readonly bodyLimit: number;

  constructor(private readonly o: OllamaApiOptions) {
    this.bodyLimit = o.bodyLimit ?? 32 * 1024 * 1024;
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? "GET";
    try {
      if (path === "/" || (method === "HEAD" && path !== "/api/version" && path !== "/api/tags")) {
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": 17 });
        res.end(method === "HEAD" ? undefined : "Ollama is running");
        return;
      }
      if (path.startsWith("/api/blobs/")) throw new OllamaError(501, UNSUPPORTED["/api/blobs"]!);
      switch (path) {
        case "/api/version":
          return this.json(res, 200, { version: OLLAMA_COMPAT_VERSION });
        case "/api/tags":
          return this.json(res, 200, await this.tags());
        case "/api/ps":
          return this.json(res, 200, await this.ps());
        case "/api/show":
          return this.json(res, 200, await this.show(await this.body(req)));
        case "/api/chat":
          return await this.chat(req, res, await this.body(req));
        case "/api/generate":
          return await this.generate(req, res, await this.body(req));
        case "/api/embed":
          return await this.embed(req, res, await this.body(req), false);
        case "/api/embeddings":
          return await this.embed(req, res, await this.body(req), true);
        case "/api/pull":
          return await this.pull(req, res, await this.body(req));
        case "/api/copy":
          return await this.copy(res, await this.body(req));
        case "/api/delete":
          return await this.remove(res, await this.body(req));
        default:
          throw new OllamaError(501, UNSUPPORTED[path] ?? `${path} is not supported by gglib`);
      }
    } catch (e) {
      this.fail(res, e);
    }
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private json(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
    const text = goJson(body);
    res.writeHead(status, {
      ...headers,
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  private fail(res: ServerResponse, e: unknown): void {
    let status = 500;
    let message: string;
    let headers: OutgoingHttpHeaders = {};
    if (e instanceof OllamaError) {
      status = e.status;
      message = e.message;
      headers = e.headers;
    } else if (e instanceof OllamaRequestError) {
      status = e.status;
      message = e.message;
    } else if (e instanceof HttpError) {
      if (e.status === 499) {
        res.destroy();
        return;
      }
      status = e.status;
      message = e.message;
      if (e.retryAfterS !== undefined) headers["retry-after"] = String(e.retryAfterS);
    } else {
      message = `internal error: ${(e as Error)?.message ?? String(e)}`;
      this.o.log?.(`ollama api: ${(e as Error)?.stack ?? String(e)}`);
    }
    if (res.headersSent) {
      // a stream already started: Ollama ends it with an error line
      if (!res.writableEnded && !res.destroyed) res.end(ndjsonLine({ error: message }));
      return;
    }
    const text = errorJson(message);
    res.writeHead(status, {
      ...headers,
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  private async body(req: IncomingMessage): Promise<Obj> {
    let buf: Buffer;
    try {
      buf = await readBody(req, this.bodyLimit);
    } catch (e) {
      if (e instanceof HttpError) throw new OllamaError(e.status, e.message);
      throw e;
    }
    const type = req.headers["content-type"];
    if (type?.toLowerCase().startsWith("multipart/")) throw new OllamaError(400, multipartMessage(type));
    if (buf.length === 0) throw new OllamaError(400, "missing request body");
    if (!isUtf8(buf)) throw new OllamaError(400, "the request body is not valid UTF-8; send JSON as UTF-8 text");
    let v: unknown;
    try {
      v = JSON.parse(buf.toString("utf8"));
    } catch (e) {
      throw new OllamaError(400, `invalid JSON in the request body: ${(e as Error).message}`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v))
      throw new OllamaError(400, "the request body must be a JSON object");
    return v as Obj;
  }

  private named(): NamedModel[] {
    return this.o.controller.catalog().map((m) => ({ name: m.name, aliases: m.aliases, path: m.entry.path }));
  }

  /** The model a request names (`model`, or the deprecated `name`). */
  private resolve(body: Obj): { requested: string; model: ProxyModel } {
    const requested =
      typeof body.model === "string" && body.model ? body.model : typeof body.name === "string" ? body.name : "";
    if (!requested) throw new OllamaError(400, "model is required");
    const r = resolveOllamaName(this.named(), requested);
    if (!r.ok) {
      const list = r.candidates.slice(0, 20).join(", ") || "(none: add GGUF files to the models folder)";
      throw new OllamaError(
        r.reason === "ambiguous" ? 400 : 404,
        r.reason === "ambiguous"
          ? `model "${requested}" matches several models; name one of: ${list}`
          : `model "${requested}" not found; available: ${list}`,
      );
    }
    const model = this.o.controller.getModel(r.name);
    if (!model || !this.o.controller.state(r.name)) throw new OllamaError(404, `model "${requested}" not found`);
    return { requested, model };
  }

  // ---- listing -------------------------------------------------------------------------------------------

  private async tags(): Promise<Obj> {
    const models = await Promise.all(
      this.o.controller.catalog().map(async (m) => {
        const f = await this.facts.get(m);
        const name = ollamaListName(m.name);
        return {
          name,
          model: name,
          modified_at: goTime(f.modifiedMs),
          size: f.size,
          digest: f.digest,
          details: f.details,
          source: m.entry.source, // gglib's: where the model lives (config, registry, models-dir, ollama, lmstudio…)
        };
      }),
    );
    return { models };
  }

  private async ps(): Promise<Obj> {
    const now = Date.now();
    const running = this.o.controller.status().filter((s) => s.state === "ready" || s.state === "draining");
    const models = await Promise.all(
      running.map(async (s) => {
        const m = this.o.controller.getModel(s.name);
        const f = m ? await this.facts.get(m) : undefined;
        const size = s.measuredBytes ?? s.estimatedBytes;
        const ttl = this.o.controller.scheduler.ttlOf(s.name);
        const st = this.o.controller.state(s.name);
        const lastUsed = st?.lastUsed ?? now;
        const expires =
          this.o.controller.scheduler.stopsWhenIdle(s.name) && st?.inFlight === 0
            ? now
            : ttl > 0
              ? (st?.inFlight ?? 0) > 0
                ? now + ttl
                : lastUsed + ttl
              : foreverFrom(now);
        const name = ollamaListName(s.name);
        return {
          name,
          model: name,
          size,
          digest: f?.digest ?? "",
          details: f?.details ?? {},
          expires_at: goTime(expires),
          size_vram: this.o.onGpu?.() ? size : 0,
          context_length: m?.estimate.ctx ?? 0,
        };
      }),
    );
    return { models };
  }

  private async show(body: Obj): Promise<Obj> {
    const { requested, model } = this.resolve(body);
    const f = await this.facts.get(model);
    if (!f.metadata || !f.kv) throw new OllamaError(500, `cannot read ${model.entry.path}: ${f.error ?? "unknown"}`);
    let kv = f.kv;
    if (body.verbose === true) {
      kv = (await readGgufHeader(model.entry.path, { maxArrayItems: Number.MAX_SAFE_INTEGER, tensors: false })).kv;
    }
    const template = f.metadata.chatTemplate ?? "";
    const out: Obj = {
      modelfile: modelfile({
        listName: ollamaListName(model.name),
        path: model.entry.path,
        ...(model.entry.mmproj ? { mmproj: model.entry.mmproj } : {}),
        template,
        ctx: model.estimate.ctx,
      }),
      parameters: parametersText({ ctx: model.estimate.ctx }),
      template,
      details: f.details,
      model_info: modelInfo(kv, f.metadata, body.verbose === true),
      capabilities: f.capabilities,
      modified_at: goTime(f.modifiedMs),
    };
    const license = kv.get("general.license");
    if (typeof license === "string") out.license = license;
    void requested;
    return out;
  }

  // ---- model access --------------------------------------------------------------------------------------

  /** Waits for the model (loading it), returns the lease and how long it waited. */
  private async lease(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    ttlMs: number | undefined,
  ): Promise<{ lease: Lease; waitedMs: number }> {
    const t = performance.now();
    const fast = this.o.controller.tryAcquire(name, true, ttlMs);
    if (fast) return { lease: fast, waitedMs: performance.now() - t };
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on("close", onClose);
    try {
      const lease = await this.o.controller.acquire(name, {
        signal: abort.signal,
        activity: true,
        ...(ttlMs !== undefined ? { keepAliveMs: ttlMs } : {}),
      });
      return { lease, waitedMs: performance.now() - t };
    } finally {
      res.off("close", onClose);
    }
  }

  /** One upstream call on a lease; aborted when the client goes away or the model is stopped by force. */
  private async upstream(
    lease: Lease,
    res: ServerResponse,
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: Dispatcher.ResponseData["body"]; untrack: () => void }> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort(new Error("client closed the connection"));
    };
    res.on("close", onClose);
    const forward = { abort: (reason: Error) => abort.abort(reason) };
    this.o.controller.trackUpstream(lease, forward);
    const untrack = () => {
      this.o.controller.untrackUpstream(lease, forward);
      res.off("close", onClose);
    };
    const send = () =>
      this.o.dispatcherFor(lease.handle).request({
        origin: lease.handle.url,
        path,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: abort.signal,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
    try {
      let r;
      try {
        r = await send();
      } catch (e) {
        // llama-server closed a kept-alive connection just as it was reused (no answer came): send once more, as
        // Forward does for the OpenAI routes (this path reads whole answers through undici's request())
        if (!connectionClosed(e as Error) || abort.signal.aborted) throw e;
        if (!this.o.controller.isServing(lease.model, lease.instance)) throw e;
        r = await send();
      }
      lease.received(1); // an answer began: proof of progress for the hang rule
      return { status: r.statusCode, body: r.body, untrack };
    } catch (e) {
      untrack();
      if (res.destroyed) throw new HttpError(499, "client_closed", "the client went away");
      const why = await this.o.controller.explainFailure(lease.model, lease.instance, e as Error);
      throw new OllamaError(502, `the request to llama-server failed: ${why}`);
    }
  }

  /** A short non-streaming upstream call (apply-template, tokenize) → its JSON. */
  private async upstreamJson(lease: Lease, res: ServerResponse, path: string, body: unknown): Promise<Obj> {
    const r = await this.upstream(lease, res, path, body);
    try {
      const text = await r.body.text();
      if (r.status >= 400) throw new OllamaError(r.status, upstreamErrorMessage(text));
      return JSON.parse(text) as Obj;
    } finally {
      r.untrack();
    }
  }

  private checkCapabilities(requested: string, f: ModelFacts, t: ChatTranslation): void {
    if (!f.metadata) return;
    const caps = f.capabilities;
    if (!caps.includes("completion")) throw new OllamaError(400, `"${requested}" does not support chat or generate`);
    if (t.wantsThinking && !caps.includes("thinking"))
      throw new OllamaError(400, `"${requested}" does not support thinking`);
    if (t.hasTools && !caps.includes("tools")) throw new OllamaError(400, `"${requested}" does not support tools`);
    if (t.hasImages && !caps.includes("vision"))
      throw new OllamaError(
        400,
        `"${requested}" does not support images (no vision encoder: put its mmproj file next to it)`,
      );
  }

  /** The load/unload idiom: no messages / empty prompt. */
  private async idiom(
    req: IncomingMessage,
    res: ServerResponse,
    shape: "chat" | "generate",
    requested: string,
    name: string,
    t: { keepAlive: ChatTranslation["keepAlive"] },
  ): Promise<void> {
    const ttl = keepAliveToTtlMs(t.keepAlive);
    if (ttl === 0) {
      const st = this.o.controller.state(name)?.status;
      if (st && st !== "unloaded" && st !== "failed") this.o.controller.unload(name);
      return this.json(res, 200, idiomFrame(shape, requested, preciseNow(), "unload"));
    }
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    await this.o.controller.load(name, abort.signal, ttl);
    if (ttl !== undefined) this.o.controller.keepAlive(name, ttl);
    this.json(res, 200, idiomFrame(shape, requested, preciseNow(), "load"));
  }

  // ---- chat / generate -----------------------------------------------------------------------------------

  private async chat(req: IncomingMessage, res: ServerResponse, body: Obj): Promise<void> {
    const start = preciseNow();
    const { requested, model } = this.resolve(body);
    const t = translateChat(body, model.name);
    if (!t.body) return this.idiom(req, res, "chat", requested, model.name, t);
    this.checkCapabilities(requested, await this.facts.get(model), t);
    await this.complete(req, res, model.name, t, "/v1/chat/completions", t.body, {
      requested,
      shape: "chat",
      start,
    });
  }

  private async generate(req: IncomingMessage, res: ServerResponse, body: Obj): Promise<void> {
    const start = preciseNow();
    const { requested, model } = this.resolve(body);
    const t: GenerateTranslation = translateGenerate(body, model.name);
    if (t.kind === "chat" && !t.body) return this.idiom(req, res, "generate", requested, model.name, t);
    if (t.kind === "chat") this.checkCapabilities(requested, await this.facts.get(model), t);
    const path = t.kind === "chat" ? "/v1/chat/completions" : "/completion";
    await this.complete(req, res, model.name, t, path, t.body!, { requested, shape: "generate", start });
  }

  /** Runs one chat/generate request upstream and answers it (NDJSON stream or one JSON object). */
  private async complete(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    t: ChatTranslation | GenerateTranslation,
    path: string,
    upstreamBody: Record<string, unknown>,
    o: { requested: string; shape: "chat" | "generate"; start: number },
  ): Promise<void> {
    const { lease, waitedMs } = await this.lease(req, res, name, keepAliveToTtlMs(t.keepAlive));
    const t0 = performance.now();
    let status = 200;
    const timing: Timing = { startMs: o.start, loadMs: waitedMs };
    const tr = new OllamaTranslator({ model: o.requested, shape: o.shape, hideThinking: t.think === false, timing });
    const extraHeaders: OutgoingHttpHeaders =
      t.ignoredOptions.length > 0 ? { "x-gglib-ignored-options": t.ignoredOptions.join(", ") } : {};
    try {
      // generate with the model's template plus earlier context: render the prompt first
      if (t.kind === "completion" && t.needsTemplate) {
        const messages: Obj[] = [];
        if (t.needsTemplate.system) messages.push({ role: "system", content: t.needsTemplate.system });
        messages.push({ role: "user", content: t.needsTemplate.prompt });
        const r = await this.upstreamJson(lease, res, "/apply-template", { messages });
        t.promptText = typeof r.prompt === "string" ? r.prompt : t.needsTemplate.prompt;
        upstreamBody.prompt = t.context.length > 0 ? [...t.context, t.promptText] : t.promptText;
      }
      const up = await this.upstream(lease, res, path, upstreamBody);
      try {
        if (up.status >= 400) {
          status = up.status;
          throw new OllamaError(up.status, upstreamErrorMessage(await up.body.text()));
        }
        const context = async (): Promise<number[] | undefined> => this.context(lease, res, t, tr);
        if (t.stream) {
          res.writeHead(200, { ...NDJSON_HEADERS, ...extraHeaders });
          res.flushHeaders();
          const parser = new SseDataParser();
          const datas: string[] = [];
          const handleData = (d: string): boolean => {
            if (d === "[DONE]") return true;
            let c: unknown;
            try {
              c = JSON.parse(d);
            } catch {
              return true;
            }
            if (typeof c !== "object" || c === null) return true;
            const co = c as Obj;
            if (co.error !== undefined) {
              res.write(ndjsonLine({ error: upstreamErrorMessage(d) }));
              return false;
            }
            const frames = tr.chunk(co, preciseNow());
            for (const f of frames) res.write(ndjsonLine(f));
            return true;
          };
          let ok = true;
          for await (const chunk of up.body) {
            lease.received((chunk as Buffer).length);
            parser.push(chunk as Buffer, datas);
            for (const d of datas.splice(0)) if (ok) ok = handleData(d);
            if (!ok) break;
          }
          if (ok) {
            parser.end(datas);
            for (const d of datas.splice(0)) if (ok) ok = handleData(d);
          }
          if (ok) {
            const ctx = await context();
            for (const f of tr.end(preciseNow(), ctx ? { context: ctx } : {})) res.write(ndjsonLine(f));
          }
          res.end();
        } else {
          const text = await up.body.text();
          let j: unknown;
          try {
            j = JSON.parse(text);
          } catch {
            throw new OllamaError(502, `llama-server sent an answer that is not JSON: ${text.slice(0, 200)}`);
          }
          tr.chunk(j as Obj, preciseNow());
          const ctx = await context();
          this.json(res, 200, tr.aggregate(preciseNow(), ctx ? { context: ctx } : {}), extraHeaders);
        }
      } catch (e) {
        if (e instanceof ToolCallError) throw new OllamaError(502, e.message);
        if (!(e instanceof OllamaError) && !(e instanceof HttpError) && !res.destroyed) {
          const why = await this.o.controller.explainFailure(lease.model, lease.instance, e as Error);
          throw new OllamaError(502, `the request to llama-server failed: ${why}`);
        }
        throw e;
      } finally {
        up.untrack();
      }
    } catch (e) {
      if (status < 400) status = e instanceof OllamaError ? e.status : 502;
      throw e;
    } finally {
      lease.release();
      this.o.metrics?.request(
        name,
        res.destroyed && !res.writableFinished ? 499 : status,
        (performance.now() - t0) / 1000,
        undefined,
        {
          ...(tr.stats.promptTokens !== undefined ? { promptTokens: tr.stats.promptTokens } : {}),
          ...(tr.stats.completionTokens !== undefined ? { completionTokens: tr.stats.completionTokens } : {}),
        },
      );
    }
  }

  /** `context` for /api/generate: the conversation's tokens (none for raw, like Ollama). */
  private async context(
    lease: Lease,
    res: ServerResponse,
    t: ChatTranslation | GenerateTranslation,
    tr: OllamaTranslator,
  ): Promise<number[] | undefined> {
    if (!("generate" in t)) return undefined;
    if (t.kind === "completion") {
      if (t.raw) return undefined;
      const tok = await this.upstreamJson(lease, res, "/tokenize", {
        content: t.promptText,
        add_special: t.context.length === 0,
        parse_special: true,
      });
      const promptTokens = Array.isArray(tok.tokens) ? (tok.tokens as number[]) : [];
      return [...t.context, ...promptTokens, ...tr.tokens];
    }
    const messages = (t.body?.messages ?? []) as Obj[];
    const r = await this.upstreamJson(lease, res, "/apply-template", { messages });
    const prompt = typeof r.prompt === "string" ? r.prompt : "";
    const tok = await this.upstreamJson(lease, res, "/tokenize", {
      content: prompt + tr.text,
      add_special: true,
      parse_special: true,
    });
    return Array.isArray(tok.tokens) ? (tok.tokens as number[]) : undefined;
  }

  // ---- embeddings ----------------------------------------------------------------------------------------

  private async embed(req: IncomingMessage, res: ServerResponse, body: Obj, legacy: boolean): Promise<void> {
    const start = preciseNow();
    const { requested, model } = this.resolve(body);
    const input = legacy ? body.prompt : body.input;
    const inputs = typeof input === "string" ? [input] : input;
    if (!Array.isArray(inputs) || !inputs.every((s) => typeof s === "string"))
      throw new OllamaError(
        400,
        legacy ? `"prompt" must be a string` : `"input" must be a string or an array of strings`,
      );
    const dims = body.dimensions;
    if (dims !== undefined && dims !== null && (!Number.isInteger(dims) || (dims as number) < 1))
      throw new OllamaError(400, `"dimensions" must be a positive integer`);
    let ttl: number | undefined;
    try {
      ttl = keepAliveToTtlMs(parseKeepAlive(body.keep_alive));
    } catch (e) {
      throw new OllamaError(400, (e as Error).message);
    }
    if (legacy && inputs[0] === "") return this.json(res, 200, { embedding: [] });
    if (!legacy && inputs.length === 0) return this.json(res, 200, { model: requested, embeddings: [] });
    const { lease, waitedMs } = await this.lease(req, res, model.name, ttl);
    const t0 = performance.now();
    let status = 200;
    try {
      const up = await this.upstream(lease, res, "/v1/embeddings", {
        input: inputs,
        model: model.name,
        encoding_format: "float",
      });
      let text: string;
      try {
        text = await up.body.text();
      } finally {
        up.untrack();
      }
      if (up.status >= 400) {
        status = up.status;
        const msg = upstreamErrorMessage(text);
        throw new OllamaError(
          up.status,
          /--embeddings|does not support embeddings|not supported/i.test(msg)
            ? `"${requested}" does not support embeddings (llama-server: ${msg}); it is started with --embeddings when its GGUF is an embedding model, or set extraArgs: ["--embeddings"] in the config`
            : msg,
        );
      }
      const j = JSON.parse(text) as Obj;
      const data = Array.isArray(j.data) ? (j.data as Obj[]) : [];
      let vectors = data
        .slice()
        .sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0))
        .map((d) => (Array.isArray(d.embedding) ? (d.embedding as number[]) : []));
      if (typeof dims === "number") vectors = vectors.map((v) => normalize(v.slice(0, dims)));
      const usage = (j.usage ?? {}) as Obj;
      if (legacy) return this.json(res, 200, { embedding: vectors[0] ?? [] });
      const out: Obj = { model: requested, embeddings: vectors };
      const total = msToNs(preciseNow() - start);
      if (total > 0) out.total_duration = total;
      const load = msToNs(waitedMs);
      if (load > 0) out.load_duration = load;
      if (typeof usage.prompt_tokens === "number" && usage.prompt_tokens > 0)
        out.prompt_eval_count = usage.prompt_tokens;
      this.json(res, 200, out);
    } finally {
      lease.release();
      this.o.metrics?.request(model.name, status, (performance.now() - t0) / 1000, undefined, undefined);
    }
  }

  // ---- copy / delete (the registry) ---------------------------------------------------------------------

  private needRegistry(what: string): Registry {
    if (!this.o.registry)
      throw new OllamaError(
        501,
        `${what} needs gglib's model registry, which this proxy has not opened (run \`gglib models add\` once to create it)`,
      );
    return this.o.registry;
  }

  /** POST /api/copy: the source's files registered under the destination name (the files are not duplicated). */
  private async copy(res: ServerResponse, body: Obj): Promise<void> {
    const src = typeof body.source === "string" ? body.source : "";
    const dest = typeof body.destination === "string" ? body.destination : "";
    if (!src || !dest) throw new OllamaError(400, `send {"source": "<model>", "destination": "<new name>"}`);
    const registry = this.needRegistry("copy");
    const { model } = this.resolve({ model: src });
    const name = dest.replace(/:latest$/i, "");
    // a name in use stays with its model unless the client says to replace it (a registry entry wins over a
    // folder's or config's model of the same name: copying onto it silently changes what that name runs)
    const key = name.toLowerCase();
    const taken = this.o.controller
      .catalog()
      .find((m) => m.name.toLowerCase() === key || m.aliases.some((a) => a.toLowerCase() === key));
    if (taken?.entry.source === "config") {
      throw new OllamaError(
        409,
        `"${dest}" names the model "${ollamaListName(taken.name)}" of the config file, which wins over copies; ` +
          "copy to a new name, or change that entry in the config file",
      );
    }
    if (taken && body.overwrite !== true) {
      throw new OllamaError(
        409,
        `"${dest}" already names the model "${ollamaListName(taken.name)}" (${taken.entry.path}); copy to a new ` +
          `name, or send "overwrite": true to make "${name}" run ${model.entry.path} instead`,
      );
    }
    const replaced = taken ? registry.get(name) : undefined;
    const previous = replaced?.name.toLowerCase() === key ? replaced : undefined;
    if (previous) registry.remove(previous.name);
    try {
      await registry.add({
        path: model.entry.path,
        name,
        ...(model.entry.mmproj ? { mmproj: model.entry.mmproj } : {}),
        settings: model.entry.settings,
      });
    } catch (e) {
      if (previous) await this.restore(registry, previous);
      throw new OllamaError(isGglibError(e) ? 400 : 500, `cannot copy to "${dest}": ${(e as Error).message}`);
    }
    await this.o.reload?.();
    this.json(res, 200, { status: "success" });
  }

  /** Puts back a registry entry an overwriting copy removed before its add failed (best effort). */
  private async restore(registry: Registry, m: RegisteredModel): Promise<void> {
    try {
      await registry.add({
        path: m.path,
        name: m.name,
        aliases: m.aliases,
        ...(m.mmproj ? { mmproj: m.mmproj } : {}),
        settings: m.settings,
      });
    } catch (e) {
      this.o.log?.(`ollama api: could not restore the registry entry ${m.name} (${m.path}): ${(e as Error).message}`);
    }
  }

  /** DELETE /api/delete: unregisters a registered model (its files stay: gglib does not delete model files). */
  private async remove(res: ServerResponse, body: Obj): Promise<void> {
    const { requested, model } = this.resolve(body);
    const notOurs = notOursMessage(model.entry); // another tool's store (src/models/stores): never changed
    if (notOurs) throw new OllamaError(400, notOurs);
    if (model.entry.source !== "registry")
      throw new OllamaError(
        400,
        `"${requested}" comes from the ${model.entry.source === "config" ? "config file (remove its entry there)" : `models folder: remove ${model.entry.path} to delete it`}; gglib deletes no model files`,
      );
    const registry = this.needRegistry("delete");
    const st = this.o.controller.state(model.name)?.status;
    if (st && st !== "unloaded" && st !== "failed") {
      // stop it first (its requests finish), so the reload drops it from the lists at once
      this.o.controller.unload(model.name);
      const deadline = Date.now() + 15_000;
      const gone = () => ["unloaded", "failed", undefined].includes(this.o.controller.state(model.name)?.status);
      while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    }
    registry.remove(model.name);
    await this.o.reload?.();
    this.json(res, 200, { status: "success" });
  }

  // ---- pull ----------------------------------------------------------------------------------------------

  private async pull(req: IncomingMessage, res: ServerResponse, body: Obj): Promise<void> {
    const ref =
      typeof body.model === "string" && body.model ? body.model : typeof body.name === "string" ? body.name : "";
    if (!ref) throw new OllamaError(400, "model is required");
    const have = resolveOllamaName(this.named(), ref);
    if (have.ok) return this.pulled(res, have.name, body.stream !== false);
    if (!this.o.pull)
      throw new OllamaError(
        501,
        "pulling needs a models folder to put the model in: start the proxy with --models-dir (or modelsDir in the config)",
      );
    const stream = body.stream !== false;
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const hfRef = ref.replace(/^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i, "");
    // a reference that cannot name a model is the client's error, told before any download or stream starts
    try {
      parsePullRef(hfRef);
    } catch (e) {
      if (isGglibError(e)) throw new OllamaError(400, e.details.hint ? `${e.message} ${e.details.hint}` : e.message);
      throw e;
    }
    if (stream) {
      res.writeHead(200, NDJSON_HEADERS);
      res.write(ndjsonLine({ status: "pulling manifest" }));
    }
    let last = "";
    await this.pullOrStatus(hfRef, {
      signal: abort.signal,
      onProgress: (p) => {
        if (!stream || res.destroyed || p.status === "success") return;
        const line: Obj = { status: p.status };
        if (p.digest ?? p.file) line.digest = p.digest ?? p.file;
        if (p.total) line.total = p.total;
        if (p.completed) line.completed = p.completed;
        const text = ndjsonLine(line);
        if (text !== last) res.write(text);
        last = text;
      },
    });
    await this.o.reload?.();
    if (stream) res.end(ndjsonLine({ status: "success" }));
    else this.json(res, 200, { status: "success" });
  }

  /**
   * A pull of a model that is already here answers as Ollama does for an up-to-date model (clients such as Codex
   * pull whatever they do not see under the exact name they asked for): the manifest, the model's file as a layer
   * already complete, verify, write, success. No download, no network.
   */
  private async pulled(res: ServerResponse, name: string, stream: boolean): Promise<void> {
    const model = this.o.controller.getModel(name);
    if (!stream || !model) return this.json(res, 200, { status: "success" });
    const f = await this.facts.get(model);
    const digest = f.digest.startsWith("sha256:") ? f.digest : `sha256:${f.digest}`;
    res.writeHead(200, NDJSON_HEADERS);
    res.write(ndjsonLine({ status: "pulling manifest" }));
    res.write(ndjsonLine({ status: `pulling ${digest.slice(7, 19)}`, digest, total: f.size, completed: f.size }));
    res.write(ndjsonLine({ status: "verifying sha256 digest" }));
    res.write(ndjsonLine({ status: "writing manifest" }));
    res.end(ndjsonLine({ status: "success" }));
  }

  /** The pull, its errors with the status they deserve (the hub has no such repo or file: 404). */
  private async pullOrStatus(ref: string, opts: Parameters<PullFn>[1]): Promise<{ name: string }> {
    try {
      return await this.o.pull!(ref, opts);
    } catch (e) {
      if (isGglibError(e, "hub_not_found")) throw new OllamaError(404, e.message);
      if (isGglibError(e, "invalid_config")) throw new OllamaError(400, e.message);
      throw e;
    }
  }
}

function normalize(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return n > 0 ? v.map((x) => x / n) : v;
}
