// @ts-check
import { nowUnix, randId } from "./util.mjs";
import { DEFAULT_PARAMS } from "./get-endpoints.mjs";
import { PEG_ERROR, endStream, finish, sendError, sendJson, sse, sseEvent, startStream, writeChunk } from "./http.mjs";
import { BUILD_INFO } from "./knobs.mjs";
import { S } from "./state.mjs";
import { pieceId } from "./text.mjs";

/** Turns tokens into the wire format of each endpoint. token() resolves true when a chunk was sent. */
export class Emitter {
  constructor(job) {
    this.job = job;
    this.id = (job.kind === "responses" ? "resp_" : "chatcmpl-") + randId();
    this.msgId = "msg_" + randId();
    this.rsId = "rs_" + randId();
    this.created = nowUnix();
    this.started = false;
    this.pending = "";
    this.content = "";
    this.reasoning = "";
    this.block = null; // anthropic/responses: the current block: "thinking" | "text"
    this.blockIndex = -1;
    this.tokensSent = 0;
    this.firstInline = true;
  }
  chatChunk(delta, finish = null, extra = {}) {
    return sse({
      choices: [{ finish_reason: finish, index: 0, delta }],
      created: this.created,
      id: this.id,
      model: S.modelId,
      system_fingerprint: BUILD_INFO,
      object: "chat.completion.chunk",
      ...extra,
    });
  }
  /** Text of the token as it is shown to the client, and in which field. */
  shape(tok) {
    if (tok.kind === "hidden") return this.job.inline ? { field: "content", text: tok.text } : null;
    if (tok.kind === "reasoning") {
      if (this.job.inline) {
        const t = this.firstInline ? "<think>\n" + tok.text : tok.text;
        this.firstInline = false;
        return { field: "content", text: t };
      }
      return { field: "reasoning", text: tok.text };
    }
    return { field: "content", text: tok.text };
  }
  async send(text) {
    if (!this.started) {
      this.started = true;
      startStream(this.job.c, this.job.req);
      text = this.pending + text;
      this.pending = "";
    }
    await writeChunk(this.job.c, text);
  }
  async flush() {
    if (this.job.stream && !this.started && this.pending) await this.send("");
  }
  async token(tok) {
    const j = this.job;
    const s = this.shape(tok);
    if (!s) return false;
    if (s.field === "reasoning") this.reasoning += s.text;
    else this.content += s.text;
    if (!j.stream) return true;
    const k = j.kind;
    if (k === "chat") {
      if (!this.started) this.pending = this.chatChunk({ role: "assistant", content: null });
      await this.send(this.chatChunk(s.field === "reasoning" ? { reasoning_content: s.text } : { content: s.text }));
    } else if (k === "oai-completion") {
      await this.send(
        sse({
          choices: [{ text: s.text, index: 0, logprobs: null, finish_reason: null }],
          created: this.created,
          model: S.modelId,
          system_fingerprint: BUILD_INFO,
          object: "text_completion",
          id: this.id,
        }),
      );
    } else if (k === "completion") {
      this.tokensSent++;
      await this.send(
        sse({
          index: 0,
          content: s.text,
          tokens: [pieceId(s.text)],
          stop: false,
          id_slot: -1,
          tokens_predicted: this.tokensSent,
          tokens_evaluated: j.nPrompt,
        }),
      );
    } else if (k === "anthropic") {
      let pre = "";
      if (!this.started) {
        pre += sseEvent("message_start", {
          type: "message_start",
          message: {
            id: this.id,
            type: "message",
            role: "assistant",
            content: [],
            model: S.modelId,
            stop_reason: null,
            stop_sequence: null,
            usage: { cache_read_input_tokens: 0, input_tokens: j.nPrompt, output_tokens: 0 },
          },
        });
      }
      const want = s.field === "reasoning" ? "thinking" : "text";
      if (this.block !== want) {
        if (this.block === "thinking") {
          pre += sseEvent("content_block_delta", {
            type: "content_block_delta",
            index: this.blockIndex,
            delta: { type: "signature_delta", signature: "" },
          });
        }
        if (this.block !== null)
          pre += sseEvent("content_block_stop", { type: "content_block_stop", index: this.blockIndex });
        this.block = want;
        this.blockIndex++;
        pre += sseEvent("content_block_start", {
          type: "content_block_start",
          index: this.blockIndex,
          content_block: want === "thinking" ? { type: "thinking", thinking: "" } : { type: "text", text: "" },
        });
      }
      const delta =
        want === "thinking" ? { type: "thinking_delta", thinking: s.text } : { type: "text_delta", text: s.text };
      await this.send(
        pre + sseEvent("content_block_delta", { type: "content_block_delta", index: this.blockIndex, delta }),
      );
    } else if (k === "responses") {
      let pre = "";
      if (!this.started) {
        pre += sseEvent("response.created", {
          type: "response.created",
          response: { id: this.id, object: "response", status: "in_progress" },
        });
        pre += sseEvent("response.in_progress", {
          type: "response.in_progress",
          response: { id: this.id, object: "response", status: "in_progress" },
        });
      }
      const want = s.field === "reasoning" ? "thinking" : "text";
      if (this.block !== want) {
        if (want === "thinking") {
          pre += sseEvent("response.output_item.added", {
            type: "response.output_item.added",
            item: {
              id: this.rsId,
              summary: [],
              type: "reasoning",
              content: [],
              encrypted_content: "",
              status: "in_progress",
            },
          });
        } else {
          pre += sseEvent("response.output_item.added", {
            type: "response.output_item.added",
            item: { content: [], id: this.msgId, role: "assistant", status: "in_progress", type: "message" },
          });
          pre += sseEvent("response.content_part.added", {
            type: "response.content_part.added",
            item_id: this.msgId,
            part: { type: "output_text", text: "" },
          });
        }
        this.block = want;
      }
      const ev =
        want === "thinking"
          ? sseEvent("response.reasoning_text.delta", {
              type: "response.reasoning_text.delta",
              delta: s.text,
              item_id: this.rsId,
            })
          : sseEvent("response.output_text.delta", {
              type: "response.output_text.delta",
              item_id: this.msgId,
              delta: s.text,
            });
      await this.send(pre + ev);
    }
    return true;
  }
  usage(n) {
    return {
      completion_tokens: n,
      prompt_tokens: this.job.nPrompt,
      total_tokens: n + this.job.nPrompt,
      prompt_tokens_details: { cached_tokens: this.job.nCached ?? 0 },
    };
  }
  async end(finish, timings, n) {
    const j = this.job;
    const k = j.kind;
    if (j.c.closed) return;
    const stopReason = finish === "length" ? "max_tokens" : "end_turn";
    const outputItems = () => {
      const items = [];
      if (this.reasoning)
        items.push({
          id: this.rsId,
          summary: [],
          type: "reasoning",
          content: [{ text: this.reasoning, type: "reasoning_text" }],
          encrypted_content: "",
          status: "completed",
        });
      items.push({
        content: [{ type: "output_text", annotations: [], logprobs: [], text: this.content }],
        id: this.msgId,
        role: "assistant",
        status: "completed",
        type: "message",
      });
      return items;
    };
    if (!j.stream) {
      const created = nowUnix();
      if (k === "chat") {
        const message = { role: "assistant", content: this.content };
        if (this.reasoning) message.reasoning_content = this.reasoning;
        return sendJson(j.c, j.req, 200, {
          choices: [{ finish_reason: finish, index: 0, message }],
          created,
          model: S.modelId,
          system_fingerprint: BUILD_INFO,
          object: "chat.completion",
          usage: this.usage(n),
          id: this.id,
          timings,
        });
      }
      if (k === "oai-completion") {
        return sendJson(j.c, j.req, 200, {
          choices: [{ text: this.content, index: 0, logprobs: null, finish_reason: finish }],
          created,
          model: S.modelId,
          system_fingerprint: BUILD_INFO,
          object: "text_completion",
          usage: this.usage(n),
          id: this.id,
          timings,
        });
      }
      if (k === "completion") return sendJson(j.c, j.req, 200, this.nativeFinal(this.content, finish, timings, n));
      if (k === "anthropic") {
        const content = [];
        if (this.reasoning) content.push({ type: "thinking", thinking: this.reasoning, signature: "" });
        content.push({ type: "text", text: this.content });
        return sendJson(j.c, j.req, 200, {
          id: this.id,
          type: "message",
          role: "assistant",
          content,
          model: S.modelId,
          stop_reason: stopReason,
          stop_sequence: null,
          usage: { cache_read_input_tokens: 0, input_tokens: j.nPrompt, output_tokens: n },
        });
      }
      return sendJson(j.c, j.req, 200, {
        completed_at: created,
        created_at: this.created,
        id: this.id,
        model: S.modelId,
        object: "response",
        output: outputItems(),
        status: "completed",
        usage: {
          input_tokens: j.nPrompt,
          output_tokens: n,
          total_tokens: j.nPrompt + n,
          input_tokens_details: { cached_tokens: j.nCached ?? 0 },
        },
      });
    }
    if (k === "chat") {
      if (!this.started) this.pending = this.chatChunk({ role: "assistant", content: null });
      if (j.includeUsage) {
        await this.send(
          this.chatChunk({}, finish) +
            sse({
              choices: [],
              created: this.created,
              id: this.id,
              model: S.modelId,
              system_fingerprint: BUILD_INFO,
              object: "chat.completion.chunk",
              usage: this.usage(n),
              timings,
            }),
        );
      } else {
        await this.send(this.chatChunk({}, finish, { timings }));
      }
      await this.send(sse("[DONE]"));
    } else if (k === "oai-completion") {
      await this.send(
        sse({
          choices: [{ text: "", index: 0, logprobs: null, finish_reason: finish }],
          created: this.created,
          model: S.modelId,
          system_fingerprint: BUILD_INFO,
          object: "text_completion",
          usage: this.usage(n),
          id: this.id,
          timings,
        }),
      );
      await this.send(sse("[DONE]"));
    } else if (k === "completion") {
      await this.send(sse(this.nativeFinal("", finish, timings, n)));
    } else if (k === "anthropic") {
      let pre = "";
      if (!this.started) {
        pre += sseEvent("message_start", {
          type: "message_start",
          message: {
            id: this.id,
            type: "message",
            role: "assistant",
            content: [],
            model: S.modelId,
            stop_reason: null,
            stop_sequence: null,
            usage: { cache_read_input_tokens: 0, input_tokens: j.nPrompt, output_tokens: 0 },
          },
        });
      }
      if (this.block === "thinking")
        pre += sseEvent("content_block_delta", {
          type: "content_block_delta",
          index: this.blockIndex,
          delta: { type: "signature_delta", signature: "" },
        });
      if (this.block !== null)
        pre += sseEvent("content_block_stop", { type: "content_block_stop", index: this.blockIndex });
      pre += sseEvent("message_delta", {
        type: "message_delta",
        delta: { stop_reason: stopReason, stop_sequence: null },
        usage: { output_tokens: n },
      });
      pre += sseEvent("message_stop", { type: "message_stop" });
      await this.send(pre);
    } else if (k === "responses") {
      let pre = "";
      if (!this.started) {
        pre += sseEvent("response.created", {
          type: "response.created",
          response: { id: this.id, object: "response", status: "in_progress" },
        });
        pre += sseEvent("response.in_progress", {
          type: "response.in_progress",
          response: { id: this.id, object: "response", status: "in_progress" },
        });
      }
      if (this.reasoning)
        pre += sseEvent("response.output_item.done", {
          type: "response.output_item.done",
          item: {
            id: this.rsId,
            summary: [],
            type: "reasoning",
            content: [{ text: this.reasoning, type: "reasoning_text" }],
            encrypted_content: "",
          },
        });
      const part = { type: "output_text", annotations: [], logprobs: [], text: this.content };
      pre += sseEvent("response.output_text.done", {
        type: "response.output_text.done",
        item_id: this.msgId,
        text: this.content,
      });
      pre += sseEvent("response.content_part.done", { type: "response.content_part.done", item_id: this.msgId, part });
      pre += sseEvent("response.output_item.done", {
        type: "response.output_item.done",
        item: { type: "message", status: "completed", id: this.msgId, content: [part], role: "assistant" },
      });
      const output = outputItems().map((it) =>
        it.type === "message"
          ? { type: "message", status: "completed", id: it.id, content: it.content, role: "assistant" }
          : it,
      );
      pre += sseEvent("response.completed", {
        type: "response.completed",
        response: {
          id: this.id,
          object: "response",
          created_at: this.created,
          status: "completed",
          model: S.modelId,
          output,
          usage: {
            input_tokens: j.nPrompt,
            output_tokens: n,
            total_tokens: j.nPrompt + n,
            input_tokens_details: { cached_tokens: j.nCached ?? 0 },
          },
        },
        timings,
      });
      await this.send(pre);
    }
    endStream(j.c);
  }
  nativeFinal(content, finish, timings, n) {
    const j = this.job;
    return {
      index: 0,
      content,
      tokens: [],
      id_slot: j.slot.id,
      stop: true,
      model: S.modelId,
      tokens_predicted: n,
      tokens_evaluated: j.nPrompt,
      generation_settings: {
        ...DEFAULT_PARAMS,
        seed: typeof j.body.seed === "number" ? j.body.seed : DEFAULT_PARAMS.seed,
        max_tokens: j.maxTokens,
        n_predict: j.maxTokens,
        stream: j.stream,
      },
      prompt: "<s>" + (j.prompt.startsWith(" ") ? "" : " ") + j.prompt,
      has_new_line: false,
      truncated: false,
      stop_type: finish === "length" ? "limit" : "eos",
      stopping_word: "",
      tokens_cached: j.nPrompt + n - 1,
      timings,
    };
  }
  async error() {
    const j = this.job;
    if (j.c.closed) return;
    if (!j.stream || (!this.started && j.kind !== "chat" && j.kind !== "responses")) {
      return sendError(j.c, j.req, 500, PEG_ERROR.message, PEG_ERROR.type);
    }
    if (j.kind === "chat" && !this.started) this.pending = this.chatChunk({ role: "assistant", content: null });
    if (j.kind === "responses" && !this.started) {
      this.pending =
        sseEvent("response.created", {
          type: "response.created",
          response: { id: this.id, object: "response", status: "in_progress" },
        }) +
        sseEvent("response.in_progress", {
          type: "response.in_progress",
          response: { id: this.id, object: "response", status: "in_progress" },
        });
    }
    if (this.pending) await this.send("");
    if (j.kind === "anthropic") await this.send(sseEvent("error", PEG_ERROR));
    else await this.send(sse({ error: PEG_ERROR }));
    endStream(j.c);
  }
}

// FAKE_LLAMA_INSTANT=1: fixed tiny answers, for measuring a proxy's own overhead
export let instantCache = null;
export function instantAnswer(c, req, kind, stream) {
  if (!instantCache) {
    const created = nowUnix();
    const id = "chatcmpl-" + randId();
    const chunk = (delta, fr) =>
      sse({
        choices: [{ finish_reason: fr, index: 0, delta }],
        created,
        id,
        model: S.modelId,
        system_fingerprint: BUILD_INFO,
        object: "chat.completion.chunk",
      });
    instantCache = {
      json: JSON.stringify({
        choices: [{ finish_reason: "stop", index: 0, message: { role: "assistant", content: "ok" } }],
        created,
        model: S.modelId,
        system_fingerprint: BUILD_INFO,
        object: "chat.completion",
        usage: { completion_tokens: 1, prompt_tokens: 1, total_tokens: 2, prompt_tokens_details: { cached_tokens: 0 } },
        id,
      }),
      first: chunk({ role: "assistant", content: null }, null) + chunk({ content: "ok" }, null),
      last: chunk({}, "stop"),
    };
  }
  S.generations++;
  if (!stream || kind !== "chat") return sendJson(c, req, 200, instantCache.json);
  startStream(c, req);
  const ch = (t) => `${Buffer.byteLength(t).toString(16)}\r\n${t}\r\n`;
  c.sock.write(ch(instantCache.first) + ch(instantCache.last) + ch(sse("[DONE]")) + "0\r\n\r\n");
  finish(c, c.streamClose);
}
