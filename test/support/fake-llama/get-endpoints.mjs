// @ts-check
// GET endpoints
import { opt } from "./args.mjs";
import { NOT_FOUND_BODY, sendError, sendJson, sendRaw } from "./http.mjs";
import { BUILD_INFO, K } from "./knobs.mjs";
import { S } from "./state.mjs";

export function modelEntry() {
  const m = S.meta;
  return {
    id: S.modelId,
    aliases: S.aliases,
    tags: [],
    object: "model",
    created: Math.floor(Date.now() / 1000),
    owned_by: "llamacpp",
    meta: {
      vocab_type: true,
      n_vocab: m.nVocab,
      n_ctx: S.nCtxSlot,
      n_ctx_train: m.nCtxTrain,
      n_embd: m.nEmbd,
      n_params: m.nParams,
      size: m.tensorBytes,
      ftype: m.ftype,
    },
  };
}
export function modelsBody() {
  return {
    models: [
      {
        name: S.modelId,
        model: S.modelId,
        modified_at: "",
        size: "",
        digest: "",
        type: "model",
        description: "",
        tags: [""],
        capabilities: [opt.embeddings ? "embedding" : "completion"],
        parameters: "",
        details: {
          parent_model: "",
          format: "gguf",
          family: "",
          families: [""],
          parameter_size: "",
          quantization_level: "",
        },
      },
    ],
    object: "list",
    data: [modelEntry()],
  };
}

export const DEFAULT_PARAMS = {
  seed: 4294967295,
  temperature: 0.800000011920929,
  dynatemp_range: 0.0,
  dynatemp_exponent: 1.0,
  top_k: 40,
  top_p: 0.949999988079071,
  min_p: 0.05000000074505806,
  top_n_sigma: -1.0,
  xtc_probability: 0.0,
  xtc_threshold: 0.10000000149011612,
  typical_p: 1.0,
  repeat_last_n: 64,
  repeat_penalty: 1.0,
  presence_penalty: 0.0,
  frequency_penalty: 0.0,
  dry_multiplier: 0.0,
  dry_base: 1.75,
  dry_allowed_length: 2,
  dry_penalty_last_n: 64,
  mirostat: 0,
  mirostat_tau: 5.0,
  mirostat_eta: 0.10000000149011612,
  adaptive_target: -1.0,
  adaptive_decay: 0.8999999761581421,
  max_tokens: -1,
  n_predict: -1,
  n_keep: 0,
  n_discard: 0,
  ignore_eos: false,
  stream: false,
  n_probs: 0,
  min_keep: 0,
  chat_format: "Content-only",
  reasoning_format: "none",
  reasoning_in_content: false,
  generation_prompt: "",
  samplers: ["penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"],
  "speculative.types": "none",
  timings_per_token: false,
  post_sampling_probs: false,
  backend_sampling: false,
  lora: [],
};

export function propsBody() {
  return {
    default_generation_settings: { params: DEFAULT_PARAMS, n_ctx: S.nCtxSlot },
    total_slots: S.nSlots,
    model_alias: S.modelId,
    model_ftype: S.meta.ftype,
    model_path: opt.model,
    modalities: { vision: false, video: false, audio: false },
    media_marker: "<__media_fakefakefakefakefakefakefakefake__>",
    endpoint_slots: true,
    endpoint_props: opt.props,
    endpoint_metrics: opt.metrics,
    ui: true,
    ui_settings: {},
    chat_template: S.chatTemplate,
    chat_template_caps: {
      supports_object_arguments: false,
      supports_parallel_tool_calls: false,
      supports_preserve_reasoning: S.isThink,
      supports_reasoning_effort: false,
      supports_string_content: true,
      supports_system_role: true,
      supports_tool_calls: false,
      supports_tools: false,
      supports_typed_content: false,
    },
    bos_token: "<s>",
    eos_token: "</s>",
    build_info: BUILD_INFO,
    is_sleeping: false,
    cors_proxy_enabled: false,
  };
}

export function slotsBody() {
  return S.slots.map((s) => {
    const base = { id: s.id, n_ctx: S.nCtxSlot, speculative: false, is_processing: s.busy };
    if (s.taskId === null) return base;
    return {
      ...base,
      id_task: s.taskId,
      n_prompt_tokens: s.nPrompt,
      n_prompt_tokens_processed: s.nPrompt,
      n_prompt_tokens_cache: 0,
      params: { ...DEFAULT_PARAMS, max_tokens: s.maxTokens, n_predict: s.maxTokens, stream: s.stream },
      next_token: [
        {
          has_next_token: s.busy,
          has_new_line: false,
          n_remain: s.maxTokens < 0 ? -1 : Math.max(0, s.maxTokens - s.nDecoded),
          n_decoded: s.nDecoded,
        },
      ],
    };
  });
}

export function metricsText() {
  const m = S.metrics;
  const busy = S.slots.filter((s) => s.busy).length;
  const rows = [
    ["prompt_tokens_total", "counter", "Number of prompt tokens processed, excluding cached tokens", m.promptTokens],
    ["prompt_tokens_cached_total", "counter", "Number of prompt tokens reused from the cache", m.promptCached],
    ["prompt_seconds_total", "counter", "Total time spent processing prompts", m.promptSeconds],
    ["tokens_predicted_total", "counter", "Number of generation tokens processed", m.predicted],
    ["tokens_predicted_seconds_total", "counter", "Total time spent generating tokens", m.predictedSeconds],
    [
      "n_decode_total",
      "counter",
      "Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding",
      m.nDecode,
    ],
    ["n_tokens_max", "counter", "Largest observed sequence length (prompt + generation)", m.nTokensMax],
    ["spec_decode_num_draft_tokens_total", "counter", "Speculative: Total draft tokens generated", 0],
    [
      "spec_decode_num_accepted_tokens_total",
      "counter",
      "Speculative: Total draft tokens accepted by the target model",
      0,
    ],
    ["spec_decode_num_drafts_total", "counter", "Speculative: Total speculative decoding verification steps", 0],
    [
      "prompt_tokens_seconds",
      "gauge",
      "Average prompt throughput in tokens/s",
      m.promptSeconds > 0 ? +(m.promptTokens / m.promptSeconds).toFixed(1) : 0,
    ],
    [
      "predicted_tokens_seconds",
      "gauge",
      "Average generation throughput in tokens/s",
      m.predictedSeconds > 0 ? +(m.predicted / m.predictedSeconds).toFixed(1) : 0,
    ],
    ["requests_processing", "gauge", "Number of requests processing", busy],
    ["requests_deferred", "gauge", "Number of requests deferred", S.waiting.length],
    ["n_busy_slots_per_decode", "gauge", "Average number of busy slots per llama_decode() call", busy > 0 ? busy : 0],
  ];
  return rows
    .map(([n, t, h, v]) => `# HELP llamacpp:${n} ${h}\n# TYPE llamacpp:${n} ${t}\nllamacpp:${n} ${v}\n`)
    .join("");
}

/**
 * GET /health: at once, unless a load knob makes it wait: FAKE_LLAMA_BUSY_HEALTH_MS while a generation is in flight,
 * FAKE_LLAMA_HTTP_THREADS until a thread is free (no more open connections than threads, this one included).
 */
function answerHealth(c, req) {
  const send = () => sendJson(c, req, 200, '{"status":"ok"}');
  if (K.busyHealthMs > 0 && S.inFlight.size > 0) {
    setTimeout(send, K.busyHealthMs);
    return;
  }
  if (K.httpThreads > 0 && S.conns.size > K.httpThreads) {
    const poll = setInterval(() => {
      if (c.closed) clearInterval(poll);
      else if (S.conns.size <= K.httpThreads) {
        clearInterval(poll);
        send();
      }
    }, 20);
    return;
  }
  send();
}

export function handleGet(c, req) {
  switch (req.path) {
    case "/health":
    case "/v1/health":
      return answerHealth(c, req);
    case "/models":
    case "/v1/models":
    case "/api/tags":
      return sendJson(c, req, 200, modelsBody());
    case "/props":
      return sendJson(c, req, 200, propsBody());
    case "/slots":
      if (req.query.get("fail_on_no_slot") && !S.slots.some((s) => !s.busy))
        return sendError(c, req, 503, "no slot available", "unavailable_error");
      return sendJson(c, req, 200, slotsBody());
    case "/metrics":
      if (!opt.metrics)
        return sendError(
          c,
          req,
          501,
          "This server does not support metrics endpoint. Start it with `--metrics`",
          "not_supported_error",
        );
      return sendRaw(
        c,
        req,
        200,
        "text/plain; version=0.0.4",
        metricsText(),
        `Process-Start-Time-Unix: ${S.startUnix}\r\n`,
      );
    case "/lora-adapters":
      return sendJson(c, req, 200, "[]");
  }
  return sendJson(c, req, 404, NOT_FOUND_BODY);
}
