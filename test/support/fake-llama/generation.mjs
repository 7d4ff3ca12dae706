// @ts-check
// generation
import { opt } from "./args.mjs";
import { Emitter, instantAnswer } from "./emitter.mjs";
import { sendError } from "./http.mjs";
import { K } from "./knobs.mjs";
import { maybeExitAfterShutdown } from "./lifecycle.mjs";
import { log, slotLog } from "./log.mjs";
import { S } from "./state.mjs";
import {
  tokenizePieces,
  THINK_WORDS,
  WORDS,
  countTokens,
  pieceById,
  renderAnthropicPrompt,
  renderChat,
  renderResponsesPrompt,
  thinkingFor,
} from "./text.mjs";

/**
 * llama-server's choice among idle slots: the one whose cached prompt shares the longest prefix with this
 * prompt (if more than 10% of it), else the least recently used one (the highest id among never-used slots).
 */
export function pickSlot(job) {
  const idle = S.slots.filter((s) => !s.busy);
  if (idle.length === 0) return null;
  let best = null;
  let bestSim = 0;
  for (const s of idle) {
    if (!s.cached) continue;
    let k = 0;
    while (k < s.cached.length && k < job.prompt.length && s.cached[k] === job.prompt[k]) k++;
    const sim = k / Math.max(1, job.prompt.length);
    if (sim > bestSim) {
      best = s;
      bestSim = sim;
      job.keep = k / Math.max(1, s.cached.length);
    }
  }
  if (best && bestSim > 0.1) {
    job.slotReason = `selected slot by LCP similarity, f_sim_best = ${bestSim.toFixed(3)} (> 0.100 thold), f_keep = ${(job.keep ?? 0).toFixed(3)}`;
    return best;
  }
  const lru = idle.reduce((a, b) => (b.lastUsed < a.lastUsed || (b.lastUsed === a.lastUsed && b.id > a.id) ? b : a));
  job.slotReason = `selected slot by LRU, t_last = ${lru.lastUsed > 0 ? Math.floor(lru.lastUsed * 1000) : -1}`;
  return lru;
}
export function acquireSlot(job) {
  const free = pickSlot(job);
  if (free) return Promise.resolve(free);
  return new Promise((resolve) => {
    const w = { job, resolve };
    S.waiting.push(w);
    job.cancelWait = () => {
      const i = S.waiting.indexOf(w);
      if (i >= 0) S.waiting.splice(i, 1);
      resolve(null);
    };
  });
}
export function releaseSlot(slot) {
  slot.busy = false;
  slot.lastUsed = performance.now();
  const w = S.waiting.shift();
  if (w) {
    w.job.cancelWait = null;
    w.job.slotReason = `selected slot by LRU, t_last = ${Math.floor(slot.lastUsed * 1000)}`;
    w.resolve(slot);
  }
}

/** Waits ms, or less if the client goes away or the server starts shutting down. */
export function pause(job, ms) {
  if (ms <= 0) return new Promise((r) => setImmediate(r));
  return new Promise((r) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      job.c.onClose.delete(done);
      S.shutdownWaiters.delete(done);
      r();
    }
    job.c.onClose.add(done);
    S.shutdownWaiters.add(done);
  });
}
/** Never resolves until the client disconnects. */
export function untilClosed(job) {
  if (job.c.closed) return Promise.resolve();
  return new Promise((r) => job.c.onClose.add(r));
}

export function crashNow() {
  const sig = K.crashSignal;
  if (/^\d+$/.test(sig)) process.exit(Number(sig));
  process.kill(process.pid, sig);
  setTimeout(() => process.exit(139), 50);
}

export function maxTokensOf(body, kind) {
  const pick = (...vals) => vals.find((v) => typeof v === "number");
  let v;
  if (kind === "chat") v = pick(body.max_completion_tokens, body.max_tokens, body.n_predict);
  else if (kind === "anthropic") v = pick(body.max_tokens);
  else if (kind === "responses") v = pick(body.max_output_tokens);
  else v = pick(body.n_predict, body.max_tokens);
  if (v === undefined || v < 0) v = opt.nPredict;
  return v;
}

export function startGeneration(c, req, body, kind) {
  const stream = body.stream === true;
  // request validation, in llama.cpp's words
  let prompt;
  if (kind === "chat") {
    if (body.messages === undefined) return sendError(c, req, 400, "'messages' is required", "invalid_request_error");
    if (!Array.isArray(body.messages))
      return sendError(c, req, 400, "Expected 'messages' to be an array", "invalid_request_error");
    if (body.grammar !== undefined && Array.isArray(body.tools) && body.tools.length > 0)
      return sendError(c, req, 400, "Cannot use custom grammar constraints with tools.", "invalid_request_error");
    if (body.top_logprobs !== undefined && body.logprobs !== true)
      return sendError(c, req, 400, "top_logprobs requires logprobs to be set to true", "invalid_request_error");
    prompt = renderChat(body.messages, { thinking: thinkingFor(body) });
  } else if (kind === "completion" || kind === "oai-completion") {
    if (body.prompt === undefined)
      return sendError(
        c,
        req,
        400,
        "[json.exception.out_of_range.403] key 'prompt' not found",
        "invalid_request_error",
      );
    prompt = Array.isArray(body.prompt)
      ? body.prompt.map((x) => (typeof x === "number" ? (pieceById.get(x) ?? " x") : String(x))).join("")
      : String(body.prompt);
  } else if (kind === "anthropic") {
    if (!Array.isArray(body.messages)) return sendError(c, req, 400, "'messages' is required", "invalid_request_error");
    prompt = renderAnthropicPrompt(body);
  } else {
    prompt = renderResponsesPrompt(body);
  }
  const nPrompt = countTokens(prompt, true);
  if (nPrompt >= S.nCtxSlot) {
    return sendError(
      c,
      req,
      400,
      `request (${nPrompt} tokens) exceeds the available context size (${S.nCtxSlot} tokens), try increasing it`,
      "exceed_context_size_error",
      { n_prompt_tokens: nPrompt, n_ctx: S.nCtxSlot },
    );
  }
  if (K.instant) return instantAnswer(c, req, kind, stream);

  const reasoningOn = kind !== "completion" && kind !== "oai-completion" && thinkingFor(body);
  const reqFormat = typeof body.reasoning_format === "string" ? body.reasoning_format : opt.reasoningFormat;
  const job = {
    c,
    req,
    body,
    kind,
    stream,
    prompt,
    nPrompt,
    maxTokens: maxTokensOf(body, kind),
    reasoning: reasoningOn,
    inline: reasoningOn && reqFormat === "none",
    includeUsage: body.stream_options?.include_usage === true,
    cancelWait: null,
    slot: null,
    taskId: -1,
    nCached: 0,
  };
  S.inFlight.add(job);
  const onClose = () => {
    if (job.cancelWait) job.cancelWait();
  };
  c.onClose.add(onClose);
  runJob(job)
    .catch((e) => {
      log("E", "srv", "operator()", `fake-llama-server internal error: ${e?.stack ?? e}`);
      if (!c.closed) c.sock.destroy();
    })
    .finally(() => {
      c.onClose.delete(onClose);
      S.inFlight.delete(job);
      maybeExitAfterShutdown();
    });
}

/** The token plan: index -> {text, kind: "reasoning" | "content" | "hidden"}. Length may be Infinity. */
export function planFor(job) {
  const nReason = job.reasoning ? Math.max(0, K.reasoningTokens) : 0;
  const nContent = K.tokens < 0 ? Infinity : K.tokens;
  const total = nReason + (job.reasoning ? 1 : 0) + nContent;
  const at = (i) => {
    if (i < nReason) return { text: THINK_WORDS[i % THINK_WORDS.length], kind: "reasoning" };
    if (job.reasoning && i === nReason) return { text: "</think>", kind: "hidden" };
    const k = i - nReason - (job.reasoning ? 1 : 0);
    return { text: WORDS[k % WORDS.length], kind: "content" };
  };
  return { total, at };
}

export async function runJob(job) {
  const { c } = job;
  const slot = await acquireSlot(job);
  if (!slot) return; // client left while queued
  if (c.closed) {
    releaseSlot(slot);
    return;
  }
  job.slot = slot;
  const taskId = S.nextTask++;
  job.taskId = taskId;
  slot.busy = true;
  slot.taskId = taskId;
  slot.nPrompt = job.nPrompt;
  slot.nDecoded = 0;
  slot.maxTokens = job.maxTokens;
  slot.stream = job.stream;
  job.nCached = cachedPrefix(slot.cached, job.prompt, job.nPrompt);
  slot.cached = job.prompt;
  slotLog("I", "get_availabl", slot.id, -1, job.slotReason);
  slotLog("I", "launch_slot_", slot.id, taskId, "processing task, is_child = 0");
  clearIdleSlots(slot);

  const t0 = performance.now();
  if (K.promptMs > 0) await pause(job, K.promptMs);
  const nEval = job.nPrompt - job.nCached;
  if (K.promptTokenMs > 0) await pause(job, K.promptTokenMs * nEval);
  const tPrompt = performance.now();
  const plan = planFor(job);
  const room = S.nCtxSlot - job.nPrompt;
  let limit = Math.min(plan.total, job.maxTokens >= 0 ? job.maxTokens : Infinity, room);
  const truncatedByCtx = room < Math.min(plan.total, job.maxTokens >= 0 ? job.maxTokens : Infinity);
  const finishReason = limit < plan.total ? "length" : "stop";
  if (!Number.isFinite(limit)) limit = room;

  const out = new Emitter(job);
  let sent = 0; // token chunks sent
  let n = 0;
  let outcome = "done";
  for (;;) {
    if (K.crashAfter >= 0 && sent >= K.crashAfter) {
      await out.flush();
      crashNow();
      await untilClosed(job);
    }
    if (c.closed) {
      outcome = "cancelled";
      break;
    }
    if (S.state === "shutting-down") {
      await untilClosed(job);
      outcome = "cancelled";
      break;
    }
    if (K.stallAfter >= 0 && sent >= K.stallAfter) {
      await out.flush();
      await untilClosed(job);
      outcome = "cancelled";
      break;
    }
    if (K.errorAfter >= 0 && sent >= K.errorAfter) {
      outcome = "error";
      break;
    }
    if (n >= limit) break;
    if (n > 0 || K.tokenIntervalMs > 0) await pause(job, K.tokenIntervalMs);
    if (c.closed || S.state === "shutting-down") continue;
    const tok = plan.at(n);
    n++;
    slot.nDecoded = n;
    if (await out.token(tok)) sent++;
  }
  const tEnd = performance.now();
  const promptMs = Math.max(0.001, tPrompt - t0) + nEval * 0.01;
  const predictedMs = Math.max(0.001, tEnd - tPrompt);
  const timings = {
    cache_n: job.nCached,
    prompt_n: nEval,
    prompt_ms: round3(promptMs),
    prompt_per_token_ms: promptMs / nEval,
    prompt_per_second: (1000 * nEval) / promptMs,
    predicted_n: n,
    predicted_ms: round3(predictedMs),
    predicted_per_token_ms: n > 0 ? predictedMs / n : 0,
    predicted_per_second: n > 0 ? (1000 * n) / predictedMs : 0,
  };
  const m = S.metrics;
  m.promptTokens += nEval;
  m.promptCached += job.nCached;
  m.promptSeconds += promptMs / 1000;
  m.predicted += n;
  m.predictedSeconds += predictedMs / 1000;
  m.nDecode += n + 1;
  m.nTokensMax = Math.max(m.nTokensMax, job.nPrompt + n);

  if (outcome === "cancelled") {
    log("W", "srv", "stop", `cancel task, id_task = ${taskId}`);
    slotLog("I", "release", slot.id, taskId, `stop processing: n_tokens = ${job.nPrompt + n}, truncated = 0`);
    releaseSlot(slot);
    return;
  }
  if (outcome === "error") {
    slotLog("I", "release", slot.id, taskId, `stop processing: n_tokens = ${job.nPrompt + n}, truncated = 0`);
    log("W", "", "common_chat_peg_parse", "unparsed peg-native output: \ufffd");
    log("W", "srv", "stop", `cancel task, id_task = ${taskId}`);
    releaseSlot(slot);
    S.generations++;
    await out.error();
    return;
  }
  slotLog(
    "I",
    "print_timing",
    slot.id,
    taskId,
    `prompt eval time = ${promptMs.toFixed(2).padStart(10)} ms / ${String(nEval).padStart(5)} tokens (${(promptMs / nEval).toFixed(2).padStart(8)} ms per token, ${((1000 * nEval) / promptMs).toFixed(2).padStart(8)} tokens per second)`,
  );
  slotLog(
    "I",
    "print_timing",
    slot.id,
    taskId,
    `       eval time = ${predictedMs.toFixed(2).padStart(10)} ms / ${String(n).padStart(5)} tokens (${(n ? predictedMs / n : 0).toFixed(2).padStart(8)} ms per token, ${(n ? (1000 * n) / predictedMs : 0).toFixed(2).padStart(8)} tokens per second)`,
  );
  slotLog(
    "I",
    "print_timing",
    slot.id,
    taskId,
    `      total time = ${(promptMs + predictedMs).toFixed(2).padStart(10)} ms / ${String(job.nPrompt + n).padStart(5)} tokens`,
  );
  slotLog("I", "print_timing", slot.id, taskId, `   graphs reused = ${String(Math.max(0, n - 1)).padStart(10)}`);
  slotLog(
    "I",
    "release",
    slot.id,
    taskId,
    `stop processing: n_tokens = ${job.nPrompt + n - 1}, truncated = ${truncatedByCtx ? 1 : 0}`,
  );
  // the slot keeps the prompt and the answer (what llama-server's prefix matching compares the next prompt with)
  slot.cached = job.prompt + out.content;
  releaseSlot(slot);
  S.generations++;
  await out.end(finishReason, timings, n);
}
export const round3 = (x) => Math.round(x * 1000) / 1000;

/**
 * Prompt tokens a slot's cache already holds: the common prefix of its tokens and the new prompt's, less one (at
 * least one token is always evaluated), as llama-server reports it in `timings.cache_n`.
 */
export function cachedPrefix(cached, prompt, nPrompt) {
  if (!cached) return 0;
  const a = tokenizePieces(cached, true);
  const b = tokenizePieces(prompt, true);
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  return Math.max(0, Math.min(k, nPrompt - 1));
}

/**
 * `--cache-idle-slots` (on by default, needs --cache-ram) with a unified KV cache: when a task starts, every other
 * idle slot is moved to the RAM prompt cache and cleared, so a slot save right after writes 0 tokens (measured on
 * the real binary; the fake does not model the RAM cache itself).
 */
function clearIdleSlots(active) {
  if (!opt.cacheIdleSlots || opt.cacheRamMib === 0 || !S.kvUnified) return;
  for (const s of S.slots) if (s !== active && !s.busy) s.cached = "";
}
