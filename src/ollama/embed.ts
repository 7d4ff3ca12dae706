/**
 * Ollama's embeddings (pure): `/api/embed` (`input`: a string or strings; `dimensions` truncates and re-normalizes)
 * and the legacy `/api/embeddings` (`prompt`: one string, `{"embedding": […]}`), over llama-server's
 * `/v1/embeddings`.
 */
import { keepAliveToTtlMs, KeepAliveError, parseKeepAlive } from "./keep-alive.js";
import { OllamaRequestError } from "./request.js";
import { msToNs } from "./wire.js";

type Obj = Record<string, unknown>;

export interface EmbedRequest {
  legacy: boolean;
  inputs: string[];
  dimensions: number | undefined;
  /** The scheduler's TTL for this request (keepAliveToTtlMs). */
  ttlMs: number | undefined;
}

/** Validates an embeddings request; throws OllamaRequestError (400). */
export function parseEmbedRequest(body: Obj, legacy: boolean): EmbedRequest {
  const input = legacy ? body.prompt : body.input;
  const inputs = typeof input === "string" ? [input] : input;
  if (!Array.isArray(inputs) || !inputs.every((s) => typeof s === "string"))
    throw new OllamaRequestError(
      legacy ? `"prompt" must be a string` : `"input" must be a string or an array of strings`,
    );
  const dims = body.dimensions;
  if (dims !== undefined && dims !== null && (!Number.isInteger(dims) || (dims as number) < 1))
    throw new OllamaRequestError(`"dimensions" must be a positive integer`);
  let ttlMs: number | undefined;
  try {
    ttlMs = keepAliveToTtlMs(parseKeepAlive(body.keep_alive));
  } catch (e) {
    if (e instanceof KeepAliveError) throw new OllamaRequestError(e.message);
    throw e;
  }
  return { legacy, inputs, dimensions: typeof dims === "number" ? dims : undefined, ttlMs };
}

/** The answer when there is nothing to embed (no model call): undefined when there is. */
export function emptyEmbedAnswer(r: EmbedRequest, requested: string): Obj | undefined {
  if (r.legacy && r.inputs[0] === "") return { embedding: [] };
  if (!r.legacy && r.inputs.length === 0) return { model: requested, embeddings: [] };
  return undefined;
}

/** llama-server's `/v1/embeddings` body. */
export function upstreamEmbedBody(r: EmbedRequest, model: string): Obj {
  return { input: r.inputs, model, encoding_format: "float" };
}

/** An upstream error, told with what to do when the model was not started for embeddings. */
export function embedErrorMessage(requested: string, message: string): string {
  return /--embeddings|does not support embeddings|not supported/i.test(message)
    ? `"${requested}" does not support embeddings (llama-server: ${message}); it is started with --embeddings when its GGUF is an embedding model, or set extraArgs: ["--embeddings"] in the config`
    : message;
}

/** llama-server's answer → Ollama's, and the prompt tokens it counted. */
export function embedAnswer(
  upstream: unknown,
  r: EmbedRequest,
  o: { requested: string; totalMs: number; loadMs: number },
): { answer: Obj; promptTokens: number | undefined } {
  const j = (typeof upstream === "object" && upstream !== null ? upstream : {}) as Obj;
  const data = Array.isArray(j.data) ? (j.data as Obj[]) : [];
  let vectors = data
    .slice()
    .sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0))
    .map((d) => (Array.isArray(d.embedding) ? (d.embedding as number[]) : []));
  const dims = r.dimensions;
  if (dims !== undefined) vectors = vectors.map((v) => normalize(v.slice(0, dims)));
  const usage = (j.usage ?? {}) as Obj;
  const promptTokens =
    typeof usage.prompt_tokens === "number" && usage.prompt_tokens > 0 ? usage.prompt_tokens : undefined;
  if (r.legacy) return { answer: { embedding: vectors[0] ?? [] }, promptTokens };
  const answer: Obj = { model: o.requested, embeddings: vectors };
  const total = msToNs(o.totalMs);
  if (total > 0) answer.total_duration = total;
  const load = msToNs(o.loadMs);
  if (load > 0) answer.load_duration = load;
  if (promptTokens !== undefined) answer.prompt_eval_count = promptTokens;
  return { answer, promptTokens };
}

/** A vector scaled to length 1 (a zero vector stays as it is). */
export function normalize(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return n > 0 ? v.map((x) => x / n) : v;
}
