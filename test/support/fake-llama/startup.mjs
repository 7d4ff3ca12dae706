// @ts-check
// startup
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { opt, routerMode } from "./args.mjs";
import { sleep } from "./util.mjs";
import { modelEntry } from "./get-endpoints.mjs";
import { onConnection } from "./http.mjs";
import { K } from "./knobs.mjs";
import { childOut, childProgress, cleanupLine, installSignalHandlers, watchStdin } from "./lifecycle.mjs";
import { breakdown, log, slotLog, trace, verbosity } from "./log.mjs";
import { inspectModel } from "./model-file.mjs";
import { CHATML, S, isReasoningModel } from "./state.mjs";

export function fmtMiB(bytes) {
  return (bytes / 1048576).toFixed(2);
}
export const KV_BYTES = {
  f32: 4,
  f16: 2,
  bf16: 2,
  q8_0: 34 / 32,
  q4_0: 18 / 32,
  q4_1: 20 / 32,
  iq4_nl: 18 / 32,
  q5_0: 22 / 32,
  q5_1: 24 / 32,
};

export function printBufferLines() {
  const m = S.meta;
  const modelBytes = K.modelMb !== undefined ? Number(K.modelMb) * 1048576 : m.tensorBytes;
  const kvElems = S.nCtx * m.nLayer * m.nEmbdKv;
  const kBytes = kvElems * (KV_BYTES[opt.cacheTypeK] ?? 2);
  const vBytes = kvElems * (KV_BYTES[opt.cacheTypeV] ?? 2);
  const kvBytes = K.kvMb !== undefined ? Number(K.kvMb) * 1048576 : kBytes + vBytes;
  const outBytes = m.nVocab * 4 * S.nSlots;
  const computeBytes =
    K.computeMb !== undefined
      ? Number(K.computeMb) * 1048576
      : Math.max(3.01 * 1048576, m.nEmbd * 512 * 4 * 24 + m.nVocab * 4 * 16);
  const mib = (b) => Math.round(b / 1048576);
  const self = mib(modelBytes) + mib(kvBytes + outBytes) + mib(computeBytes);
  const total = mib(os.totalmem());
  trace("common_params_fit_impl", "getting device memory data for initial parameters:");
  breakdown(self, mib(modelBytes), mib(kvBytes + outBytes), mib(computeBytes));
  trace("common_params_fit_impl", `projected to use ${self} MiB of host memory vs. ${total} MiB of total host memory`);
  trace(
    "common_params_fit_impl",
    `will leave ${mib(os.freemem()) - self} >= 1024 MiB of system memory, no changes needed`,
  );
  trace(
    "llama_model_loader",
    `loaded meta data with ${m.nKv} key-value pairs and ${m.nTensors} tensors from ${opt.model} (version GGUF V3 (latest))`,
  );
  trace("print_info", `file type   = ${m.ftype}`);
  trace(
    "print_info",
    `file size   = ${fmtMiB(m.size)} MiB (${((m.size * 8) / Math.max(1, m.nParams)).toFixed(2)} BPW) `,
  );
  trace("print_info", `arch                  = ${m.arch}`);
  trace("print_info", `n_ctx_train           = ${m.nCtxTrain}`);
  trace("print_info", `n_embd                = ${m.nEmbd}`);
  trace("print_info", `n_layer               = ${m.nLayer}`);
  trace("print_info", `n_vocab               = ${m.nVocab}`);
  trace("load_tensors", `loading model tensors, this can take a while... (load_mode = ${opt.mmap ? "mmap" : "read"})`);
  trace(
    "load_tensors",
    `${opt.mmap ? "  CPU_Mapped" : "         CPU"} model buffer size = ${fmtMiB(modelBytes).padStart(8)} MiB`,
  );
  trace("llama_context", `n_seq_max             = ${S.nSlots}`);
  trace("llama_context", `n_ctx                 = ${S.nCtx}`);
  trace("llama_context", `n_ctx_seq             = ${S.nCtxSlot}`);
  trace("llama_context", `kv_unified            = ${S.kvUnified}`);
  trace("llama_context", `       CPU  output buffer size = ${fmtMiB(outBytes).padStart(8)} MiB`);
  trace("llama_kv_cache", `       CPU KV buffer size = ${fmtMiB(kvBytes).padStart(8)} MiB`);
  trace(
    "llama_kv_cache",
    `size = ${fmtMiB(kvBytes).padStart(7)} MiB (${String(S.nCtx).padStart(6)} cells, ${String(m.nLayer).padStart(3)} layers, ${String(S.nSlots).padStart(2)}/${S.kvUnified ? 1 : S.nSlots} seqs), K (${opt.cacheTypeK}): ${fmtMiB(kBytes).padStart(7)} MiB, V (${opt.cacheTypeV}): ${fmtMiB(vBytes).padStart(7)} MiB`,
  );
  trace("sched_reserve", `       CPU compute buffer size = ${fmtMiB(computeBytes).padStart(8)} MiB`);
  S.breakdown = [self, mib(modelBytes), mib(kvBytes + outBytes), mib(computeBytes)];
}

export function startupLines() {
  if (verbosity >= 4) {
    log("I", "cmn", "common_param", "common_params_print_info: build 1 (80fb11a) with GNU 12.2.0 for Linux x86_64");
  }
  log(
    "I",
    "cmn",
    "common_param",
    `common_params_print_info: verbosity = ${verbosity} (adjust with the \`-lv N\` CLI arg)`,
  );
  if (opt.embeddings) {
    log("W", "srv", "llama_server", "embeddings enabled with n_batch (2048) > n_ubatch (512)");
    log("W", "srv", "llama_server", "setting n_batch = n_ubatch = 512 to avoid assertion failure");
  }
  if (routerMode) {
    log("I", "srv", "load_models", "Loaded 0 cached model presets");
    log("I", "srv", "operator()", "Available models (0) (*: custom preset)");
  }
  if (opt.apiKeys.length === 0) {
    log("W", "srv", "llama_server", "-----------------");
    log("W", "srv", "llama_server", "CORS is set to allow all origins ('*') and no API key is set");
    log("W", "srv", "llama_server", "this can be a security risk (cross-origin attacks)");
    log("W", "srv", "llama_server", "more info: https://github.com/ggml-org/llama.cpp/pull/25655");
    log("W", "srv", "llama_server", "-----------------");
  }
  if (routerMode) {
    log("W", "srv", "llama_server", "-----------------");
    log("W", "srv", "llama_server", "the following feature(s) are enabled:");
    log("W", "srv", "llama_server", "    router mode");
    log("W", "srv", "llama_server", "do not expose the server to untrusted environments");
    log("W", "srv", "llama_server", "-----------------");
  }
}

export function bindFailed(host, port) {
  log("E", "srv", "start", `couldn't bind HTTP server socket, hostname: ${host}, port: ${port}`);
  cleanupLine();
  log("E", "srv", "llama_server", "exiting due to HTTP server error");
  process.exit(1);
}

export function listen() {
  return new Promise((resolve) => {
    if (K.refuseBind) return bindFailed(opt.host, opt.port);
    const server = net.createServer({ noDelay: true }, onConnection);
    server.on("error", () => bindFailed(opt.host, opt.port));
    const onListening = () => {
      const addr = server.address();
      if (addr && typeof addr === "object") S.port = addr.port;
      S.server = server;
      resolve();
    };
    if (opt.host.endsWith(".sock")) {
      try {
        fs.unlinkSync(opt.host);
      } catch {
        /* not there */
      }
      server.listen(opt.host, onListening);
    } else {
      server.listen({ host: opt.host, port: opt.port, exclusive: true, backlog: 511 }, onListening);
    }
  });
}
export const listenUrl = () => (opt.host.endsWith(".sock") ? `unix://${opt.host}` : `http://${opt.host}:${S.port}`);

export let rssHold = null;
export async function main() {
  startupLines();
  if (verbosity >= 4) log("I", "srv", "start", "binding port with default address family");
  await listen();
  if (routerMode) {
    log("I", "srv", "llama_server", "starting server in router mode. models will be automatically loaded on-demand");
    log("I", "srv", "llama_server", `listening on ${listenUrl()}`);
    S.state = "ready";
    installSignalHandlers();
    return;
  }
  const child = K.routerPort !== undefined;
  if (child) childProgress(0);
  log("I", "srv", "load_model", `loading model '${opt.model}'`);
  const t0 = performance.now();
  const meta = inspectModel();
  S.meta = meta;
  S.isThink = isReasoningModel();
  S.chatTemplate =
    meta.chatTemplate ?? (S.isThink ? CHATML + "{% if add_generation_prompt %}<think>\n{% endif %}" : CHATML);
  // context and slots, the way llama-server sizes them
  // (-c 0 = the training context per sequence; otherwise padded to a multiple of 256, per sequence when the KV
  // cache is not unified: -np 3 -c 1000 gives 512 per slot, as the real binary does)
  const auto = opt.parallel < 0;
  S.nSlots = auto ? 4 : Math.max(1, opt.parallel);
  S.kvUnified = opt.kvUnified ?? auto;
  const pad256 = (n) => Math.ceil(n / 256) * 256;
  if (opt.ctxSize <= 0) S.nCtxSlot = meta.nCtxTrain;
  else S.nCtxSlot = S.kvUnified ? pad256(opt.ctxSize) : pad256(opt.ctxSize / S.nSlots);
  S.nCtx = S.kvUnified ? S.nCtxSlot : S.nCtxSlot * S.nSlots;
  S.slots = Array.from({ length: S.nSlots }, (_, id) => ({
    id,
    busy: false,
    lastUsed: 0,
    taskId: null,
    nPrompt: 0,
    nDecoded: 0,
    maxTokens: -1,
    stream: false,
    cached: "",
  }));
  if (verbosity >= 4 && auto)
    log("I", "srv", "llama_server", `n_parallel is set to auto, using n_parallel = ${S.nSlots} and kv_unified = true`);

  if (K.rssMb > 0) {
    rssHold = Buffer.allocUnsafe(K.rssMb * 1048576);
    rssHold.fill(1);
  }
  // the load itself, with router-child progress lines every ~200 ms
  const loadMs = Math.max(0, K.loadMs);
  while (performance.now() - t0 < loadMs) {
    const left = loadMs - (performance.now() - t0);
    await sleep(Math.min(200, left));
    const v = Math.min(1, (performance.now() - t0) / Math.max(1, loadMs));
    if (child && v < 1) childProgress(v);
  }
  if (K.failLoad) {
    const k = K.failLoad.indexOf(":");
    const code = k >= 0 ? K.failLoad.slice(0, k) : K.failLoad;
    const msg = k >= 0 ? K.failLoad.slice(k + 1) : "failed to load model";
    log("E", "", "llama_model_load", msg);
    log("E", "cmn", "common_init_", `failed to load model '${opt.model}'`);
    log("E", "srv", "load_model", `failed to load model, '${opt.model}'`);
    if (/^SIG[A-Z0-9]+$/.test(code)) {
      process.kill(process.pid, code);
      await sleep(1000);
    }
    cleanupLine();
    log("E", "srv", "llama_server", "exiting due to model loading error");
    process.exit(Number(code) || 1);
  }
  if (child) childProgress(1);
  if (verbosity >= 4) printBufferLines();
  log("I", "cmn", "init", `llama threadpool init, n_threads = ${Math.min(os.cpus().length, 8)}`);
  log(
    "I",
    "srv",
    "load_model",
    `initializing, n_slots = ${S.nSlots}, n_ctx_slot = ${S.nCtxSlot}, kv_unified = '${S.kvUnified}'`,
  );
  if (verbosity >= 4) {
    for (const s of S.slots) slotLog("I", "load_model", s.id, -1, `new slot, n_ctx = ${S.nCtxSlot}`);
    log("I", "srv", "init", `init: chat template, thinking = ${S.isThink ? 1 : 0}`);
  }
  S.state = "ready";
  installSignalHandlers();
  log("I", "srv", "llama_server", "model loaded");
  log("I", "srv", "llama_server", `listening on ${listenUrl()}`);
  if (child) {
    childOut({ state: "ready", payload: modelEntry() });
    watchStdin();
  }
}
