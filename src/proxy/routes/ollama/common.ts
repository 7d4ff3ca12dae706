/**
 * What every Ollama route shares: its dependencies (the proxy's context and what only startProxy knows), the body
 * reader, the model a request names, and the replies in Ollama's shape (Go's JSON, `{"error":"…"}`).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { isUtf8 } from "node:buffer";
import { HttpError } from "../../../core/errors.js";
import type { Registry } from "../../../models/registry.js";
import { ModelFactsCache } from "../../../ollama/models.js";
import { resolveOllamaName, type NamedModel } from "../../../ollama/names.js";
import { errorJson, goJson, ndjsonLine } from "../../../ollama/wire.js";
import type { ProxyModel } from "../../catalog.js";
import { multipartMessage, readBody } from "../../http/json.js";
import type { ProxyContext } from "../types.js";
import type { Preset } from "../../../models/presets.js";
import { presetNamed, presetNames } from "../../ollama-presets.js";

export type Obj = Record<string, unknown>;

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

/** What only startProxy knows (the default module, in ROUTE_MODULES, has none of it). */
export interface OllamaExtras {
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

/** One Ollama module's state and dependencies, handed to every endpoint's handler. */
export interface OllamaDeps {
  readonly ctx: ProxyContext;
  readonly extras: OllamaExtras;
  /** The GGUF facts /api/tags, /api/show and the capability checks read (cached per file). */
  readonly facts: ModelFactsCache;
}

export type OllamaHandler = (d: OllamaDeps, req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export function ollamaDeps(ctx: ProxyContext, extras: OllamaExtras): OllamaDeps {
  return { ctx, extras, facts: new ModelFactsCache() };
}

/** A JSON reply as Ollama (Go) writes it. */
export function sendOllamaJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const text = goJson(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * An error reply in Ollama's shape, `{"error":"…"}`, for every error of these routes (thrown by a handler or
 * before it ran, e.g. a missing API key). A stream already begun ends with an error line, as Ollama's does; a
 * client that left (499) gets nothing.
 */
export function writeOllamaError(res: ServerResponse, e: HttpError): void {
  if (e.status === 499) {
    res.destroy();
    return;
  }
  if (res.headersSent) {
    if (!res.writableEnded && !res.destroyed) res.end(ndjsonLine({ error: e.message }));
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

const invalid = (message: string) => new HttpError(400, "invalid_request", message);

/** The request's JSON object; 400 (or readBody's 413) for anything else. */
export async function readOllamaBody(req: IncomingMessage, limit: number): Promise<Obj> {
  const buf = await readBody(req, limit);
  const type = req.headers["content-type"];
  if (type?.toLowerCase().startsWith("multipart/")) throw invalid(multipartMessage(type));
  if (buf.length === 0) throw invalid("missing request body");
  if (!isUtf8(buf)) throw invalid("the request body is not valid UTF-8; send JSON as UTF-8 text");
  let v: unknown;
  try {
    v = JSON.parse(buf.toString("utf8"));
  } catch (e) {
    throw invalid(`invalid JSON in the request body: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalid("the request body must be a JSON object");
  return v as Obj;
}

/** The catalog's models and presets (src/models/presets.ts) as names Ollama's resolver knows. */
export function namedModels(d: OllamaDeps): NamedModel[] {
  const catalog = d.ctx.controller.catalog();
  return [...catalog.map((m) => ({ name: m.name, aliases: m.aliases, path: m.entry.path })), ...presetNames(catalog)];
}

/**
 * The model a request names (`model`, or the deprecated `name`): 400 when none, 404 (naming the models) when
 * unknown. A preset's name gives its model, with the preset (its changes are the caller's to apply).
 */
export function resolveModel(d: OllamaDeps, body: Obj): { requested: string; model: ProxyModel; preset?: Preset } {
  const requested =
    typeof body.model === "string" && body.model ? body.model : typeof body.name === "string" ? body.name : "";
  if (!requested) throw invalid("model is required");
  const r = resolveOllamaName(namedModels(d), requested);
  if (!r.ok) {
    const list = r.candidates.slice(0, 20).join(", ") || "(none: add GGUF files to the models folder)";
    if (r.reason === "ambiguous") throw invalid(`model "${requested}" matches several models; name one of: ${list}`);
    throw new HttpError(404, "model_not_found", `model "${requested}" not found; available: ${list}`);
  }
  const c = d.ctx.controller;
  const preset = c.getModel(r.name) ? undefined : presetNamed(c.catalog(), r.name);
  const name = preset ? preset.model : r.name;
  const model = c.getModel(name);
  if (!model || !c.state(name)) throw new HttpError(404, "model_not_found", `model "${requested}" not found`);
  return preset ? { requested, model, preset } : { requested, model };
}

/** llama-server's whole answer parsed, or a 502 saying it was not JSON (with its first 200 characters). */
export function upstreamJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(502, "upstream_failed", `llama-server sent an answer that is not JSON: ${text.slice(0, 200)}`);
  }
}
