// @ts-check
// The fake's constants and the FAKE_LLAMA_* knobs it reads from its environment (documented in
// ../fake-llama-server.mjs). This is the first module the fake evaluates.
import path from "node:path";
import { fileURLToPath } from "node:url";

// A parent that closes our pipes must not crash us with an unhandled EPIPE (the real binary would die of SIGPIPE
// on its next log line; the fake keeps running so tests see the HTTP behaviour).
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.join(HERE, "..", "..", "fixtures", "llama-server");
export const ENV = process.env;
export const BUILD_INFO = "b1-80fb11a";

// ---------------------------------------------------------------------------------------------------
// knobs

export function intKnob(name, dflt) {
  const v = ENV[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? n : dflt;
}
export const K = {
  loadMs: intKnob("FAKE_LLAMA_LOAD_MS", 50),
  failLoad: ENV.FAKE_LLAMA_FAIL_LOAD || "",
  crashAfter: intKnob("FAKE_LLAMA_CRASH_AFTER_CHUNKS", -1),
  crashSignal: ENV.FAKE_LLAMA_CRASH_SIGNAL || "SIGSEGV",
  stallAfter: intKnob("FAKE_LLAMA_STALL_AFTER_CHUNKS", -1),
  errorAfter: intKnob("FAKE_LLAMA_ERROR_AFTER_CHUNKS", -1),
  ignoreSigterm: ENV.FAKE_LLAMA_IGNORE_SIGTERM === "1",
  refuseBind: ENV.FAKE_LLAMA_REFUSE_BIND === "1",
  tokens: intKnob("FAKE_LLAMA_TOKENS", 8),
  reasoningTokens: intKnob("FAKE_LLAMA_REASONING_TOKENS", 4),
  tokenIntervalMs: intKnob("FAKE_LLAMA_TOKEN_INTERVAL_MS", 0),
  promptMs: intKnob("FAKE_LLAMA_PROMPT_MS", 0),
  reasoning: ENV.FAKE_LLAMA_REASONING,
  instant: ENV.FAKE_LLAMA_INSTANT === "1",
  rssMb: intKnob("FAKE_LLAMA_RSS_MB", 0),
  statsFile: ENV.FAKE_LLAMA_STATS_FILE || "",
  statsBodies: ENV.FAKE_LLAMA_STATS_BODIES === "1",
  nCtxTrain: intKnob("FAKE_LLAMA_N_CTX_TRAIN", 2048),
  modelMb: ENV.FAKE_LLAMA_MODEL_MB,
  kvMb: ENV.FAKE_LLAMA_KV_MB,
  computeMb: ENV.FAKE_LLAMA_COMPUTE_MB,
  strictGguf: ENV.FAKE_LLAMA_STRICT_GGUF === "1",
  routerPort: ENV.LLAMA_SERVER_ROUTER_PORT,
  saveFail: ENV.FAKE_LLAMA_SAVE_FAIL === "1",
  saveHang: ENV.FAKE_LLAMA_SAVE_HANG === "1",
  restoreFail: ENV.FAKE_LLAMA_RESTORE_FAIL === "1",
  restoreHang: ENV.FAKE_LLAMA_RESTORE_HANG === "1",
  restoreUnused: ENV.FAKE_LLAMA_RESTORE_UNUSED === "1",
  slotActionMs: intKnob("FAKE_LLAMA_SLOT_ACTION_MS", 0),
  closeOnReuse: intKnob("FAKE_LLAMA_CLOSE_ON_REUSE", 0),
  promptTokenMs: intKnob("FAKE_LLAMA_PROMPT_TOKEN_MS", 0),
  busyHealthMs: intKnob("FAKE_LLAMA_BUSY_HEALTH_MS", 0),
  httpThreads: intKnob("FAKE_LLAMA_HTTP_THREADS", 0),
};
if (K.ignoreSigterm) process.on("SIGTERM", () => {});
