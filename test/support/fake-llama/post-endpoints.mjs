// @ts-check
// POST endpoints
import { opt } from "./args.mjs";
import { startGeneration } from "./generation.mjs";
import { NOT_FOUND_BODY, sendError, sendJson } from "./http.mjs";
import { handleSlotAction } from "./slot-actions.mjs";
import { S } from "./state.mjs";
import {
  countTokens,
  pieceById,
  pieceId,
  renderAnthropicPrompt,
  renderChat,
  thinkingFor,
  tokenizePieces,
} from "./text.mjs";

export function embeddingFor(text) {
  const n = S.meta.nEmbd;
  const v = new Array(n);
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  let norm = 0;
  for (let i = 0; i < n; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 3266489909) >>> 0;
    const x = Math.fround((h / 4294967296) * 2 - 1);
    v[i] = x;
    norm += x * x;
  }
  norm = Math.sqrt(norm) || 1;
  return v.map((x) => Math.fround(x / norm));
}

export function handlePost(c, req, body) {
  const p = req.path;
  if (p === "/v1/chat/completions" || p === "/chat/completions" || p === "/api/chat")
    return startGeneration(c, req, body, "chat");
  if (p === "/v1/completions") return startGeneration(c, req, body, "oai-completion");
  if (p === "/completion" || p === "/completions") return startGeneration(c, req, body, "completion");
  if (p === "/v1/messages") return startGeneration(c, req, body, "anthropic");
  if (p === "/v1/responses") return startGeneration(c, req, body, "responses");
  if (p === "/v1/messages/count_tokens")
    return sendJson(c, req, 200, { input_tokens: countTokens(renderAnthropicPrompt(body), false) });
  if (p === "/v1/chat/completions/input_tokens") {
    const messages = Array.isArray(body.messages) ? body.messages : [];
    return sendJson(c, req, 200, {
      input_tokens: countTokens(renderChat(messages, { thinking: thinkingFor(body) }), true),
      object: "response.input_tokens",
    });
  }
  if (p === "/tokenize") {
    const pieces = tokenizePieces(typeof body.content === "string" ? body.content : "", body.add_special === true);
    const tokens = body.with_pieces === true ? pieces.map((x) => ({ id: pieceId(x), piece: x })) : pieces.map(pieceId);
    return sendJson(c, req, 200, { tokens });
  }
  if (p === "/detokenize") {
    const ids = Array.isArray(body.tokens) ? body.tokens : [];
    return sendJson(c, req, 200, { content: ids.map((id) => pieceById.get(id) ?? "").join("") });
  }
  if (p === "/apply-template") {
    if (!Array.isArray(body.messages)) return sendError(c, req, 400, "'messages' is required", "invalid_request_error");
    return sendJson(c, req, 200, { prompt: renderChat(body.messages, { thinking: thinkingFor(body) }) });
  }
  if (p === "/infill") {
    return sendError(
      c,
      req,
      501,
      "Infill is not supported by this model: prefix token is missing. suffix token is missing. middle token is missing. ",
      "not_supported_error",
    );
  }
  if (p === "/props")
    return sendError(
      c,
      req,
      501,
      "This server does not support changing global properties. Start it with `--props`",
      "not_supported_error",
    );
  if (/^\/slots\//.test(p)) return handleSlotAction(c, req);
  if (p === "/lora-adapters") return sendJson(c, req, 200, "[]");
  if (p === "/api/show")
    return sendJson(c, req, 200, {
      template: S.chatTemplate,
      model_info: { "llama.context_length": S.nCtx },
      modelfile: "",
      parameters: "",
      details: { format: "gguf" },
      capabilities: ["completion"],
    });
  if (p === "/v1/embeddings" || p === "/embeddings" || p === "/embedding") {
    if (!opt.embeddings)
      return sendError(
        c,
        req,
        501,
        "This server does not support embeddings. Start it with `--embeddings`",
        "not_supported_error",
      );
    const input = body.input ?? body.content;
    if (input === undefined)
      return sendError(c, req, 400, '"input" or "content" must be provided', "invalid_request_error");
    const inputs = Array.isArray(input)
      ? input.map((x) => (typeof x === "string" ? x : JSON.stringify(x)))
      : [String(input)];
    const nTok = inputs.reduce((a, s) => a + countTokens(s, true), 0);
    if (p === "/embedding" || p === "/embeddings")
      return sendJson(
        c,
        req,
        200,
        inputs.map((s, i) => ({ index: i, embedding: [embeddingFor(s)] })),
      );
    const data = inputs.map((s, i) => {
      const e = embeddingFor(s);
      if (body.encoding_format === "base64")
        return {
          embedding: Buffer.from(new Float32Array(e).buffer).toString("base64"),
          index: i,
          object: "embedding",
          encoding_format: "base64",
        };
      return { embedding: e, index: i, object: "embedding" };
    });
    return sendJson(c, req, 200, {
      model: typeof body.model === "string" ? body.model : S.modelId,
      object: "list",
      usage: { prompt_tokens: nTok, total_tokens: nTok },
      data,
    });
  }
  if (p === "/rerank" || p === "/reranking" || p === "/v1/rerank" || p === "/v1/reranking") {
    if (!opt.reranking)
      return sendError(
        c,
        req,
        501,
        "This server does not support reranking. Start it with `--reranking`",
        "not_supported_error",
      );
    const docs = Array.isArray(body.documents) ? body.documents : [];
    const q = String(body.query ?? "");
    const results = docs.map((d, i) => ({ index: i, relevance_score: embeddingFor(q + "\u0000" + String(d))[0] }));
    const nTok = docs.reduce((a, d) => a + countTokens(q + String(d), true), 0);
    return sendJson(c, req, 200, {
      model: S.modelId,
      object: "list",
      usage: { prompt_tokens: nTok, total_tokens: nTok },
      results,
    });
  }
  return sendJson(c, req, 404, NOT_FOUND_BODY);
}
