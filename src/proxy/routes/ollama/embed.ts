/**
 * POST /api/embed and the legacy /api/embeddings: validated and shaped by src/ollama/embed.ts, sent through the
 * relay's translated mode to llama-server's `/v1/embeddings`, answered as one JSON object.
 */
import type { ServerResponse } from "node:http";
import { HttpError } from "../../../core/errors.js";
import { errorOfText } from "../../../core/upstream-error.js";
import {
  embedAnswer,
  embedErrorMessage,
  emptyEmbedAnswer,
  parseEmbedRequest,
  upstreamEmbedBody,
  type EmbedRequest,
} from "../../../ollama/embed.js";
import { preciseNow } from "../../../ollama/wire.js";
import type { UsageStats } from "../../forward.js";
import type { LeaseUpstream } from "../../lease-upstream.js";
import type { TranslatedSink } from "../../relay.js";
import { readOllamaBody, resolveModel, sendOllamaJson, upstreamJson, type OllamaHandler } from "./common.js";

export const embed: OllamaHandler = (d, req, res) => embeddings(d, req, res, false);
export const embeddingsLegacy: OllamaHandler = (d, req, res) => embeddings(d, req, res, true);

async function embeddings(
  d: Parameters<OllamaHandler>[0],
  req: Parameters<OllamaHandler>[1],
  res: ServerResponse,
  legacy: boolean,
): Promise<void> {
  const start = preciseNow();
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const { requested, model } = resolveModel(d, body);
  const r = parseEmbedRequest(body, legacy);
  const empty = emptyEmbedAnswer(r, requested);
  if (empty) return sendOllamaJson(res, 200, empty);
  await d.ctx.relay.relayTranslated(
    req,
    res,
    {
      name: model.name,
      method: "POST",
      clientPath: legacy ? "/api/embeddings" : "/api/embed",
      ...(r.ttlMs !== undefined ? { keepAliveMs: r.ttlMs } : {}),
    },
    new EmbedSink(res, r, model.name, requested, start),
  );
}

class EmbedSink implements TranslatedSink {
  private promptTokens: number | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly r: EmbedRequest,
    private readonly name: string,
    private readonly requested: string,
    private readonly start: number,
  ) {}

  usage(): UsageStats | undefined {
    return this.promptTokens !== undefined ? { promptTokens: this.promptTokens } : undefined;
  }

  async run(up: LeaseUpstream, waitedMs: number): Promise<void> {
    const a = await up.call("/v1/embeddings", upstreamEmbedBody(this.r, this.name));
    const text = await a.body.text();
    up.received(text.length);
    if (a.status >= 400)
      throw new HttpError(a.status, "upstream_error", embedErrorMessage(this.requested, errorOfText(text).message));
    const j = upstreamJson(text);
    const { answer, promptTokens } = embedAnswer(j, this.r, {
      requested: this.requested,
      totalMs: preciseNow() - this.start,
      loadMs: waitedMs,
    });
    this.promptTokens = promptTokens;
    sendOllamaJson(this.res, 200, answer);
  }
}
