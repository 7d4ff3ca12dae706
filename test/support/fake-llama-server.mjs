#!/usr/bin/env node
/**
 * fake-llama-server.mjs: a stand-in for llama.cpp's `llama-server`, for fault and race tests.
 *
 * It copies what a real llama-server does, as recorded in /work/shared/fixtures/llama-server
 * (copies of the small files it needs are in test/fixtures/llama-server/): the same flags, the same
 * stderr log format, the same HTTP bytes (headers in the same order, chunk framing, `Connection: close`
 * on errors), the same process behaviour (exit codes, signals, router-child protocol on stdin and stdout).
 * It loads no weights, so it starts in well under 100 ms, and every way it can fail can be switched on
 * with the environment variables listed below. It uses only Node built-ins. The HTTP/1.1 server is
 * written on node:net, because node:http cannot send llama.cpp's exact headers.
 *
 * USAGE: the same as llama-server, e.g.
 *   fake-llama-server.mjs -m model.gguf --host 127.0.0.1 --port 8081 -c 4096 -np 2 --alias tiny --metrics
 *
 * FLAGS
 *   Every flag in test/fixtures/llama-server/server-help.txt (the real --help) is accepted, together with
 *   the LLAMA_ARG_* env variables listed there. Flags that take a number (N, PORT) are checked the way
 *   llama.cpp's stoi checks them (07d2), `[on|off|auto]` choices are checked, a missing value is an error;
 *   each of these prints the real message and usage snippet and exits with 1 (checked against the real
 *   binary). An unknown flag (also `--port=N`) prints `error: invalid argument: <flag>`, exit 1 (07d). `--help` prints the recorded help text on stdout; `--version` prints the
 *   recorded version on stderr. Both exit with 0. These flags change what the fake does:
 *     -m/--model, --host (a path ending in .sock is a unix socket), --port (0 = any free port),
 *     -c/--ctx-size (0 = the model's context, otherwise rounded up to a multiple of 256),
 *     -np/--parallel (default auto = 4 slots sharing one unified KV cache), -kvu/--kv-unified,
 *     -a/--alias (comma-separated; the first one is the model id), --api-key / --api-key-file,
 *     --metrics, --embeddings, --rerank/--reranking, --props, --slot-save-path, -lv/--verbosity,
 *     --reasoning-format, -rea/--reasoning, --reasoning-budget (0 = no reasoning), -n/--n-predict,
 *     -ctk/-ctv/--cache-type-k/v (size of the KV cache in the -lv 4 log lines), --no-mmap (the same).
 *   Every other flag is accepted and ignored (-ngl, -fa, --jinja, --mlock, ...).
 *   Without -m it starts a minimal "router mode" with no models, the way llama-server does (07d3).
 *
 * WHAT IT DOES
 *   - It binds its port before it "loads" the model. While loading, every route answers the exact
 *     503 `Loading model` response. Then /health answers 200 {"status":"ok"}.
 *   - A missing model file gives the 07a lines and exit 1. A file that does not start with `GGUF` gives
 *     the 07b2 lines and exit 1. A port in use gives the 07c lines and exit 1.
 *   - The model's metadata (context length, embedding size, layers, vocab, chat template, parameter
 *     count) is read from the GGUF header when it can be; otherwise it uses tiny-model defaults.
 *   - Routes: GET /health /v1/health /models /v1/models /props /slots /metrics /lora-adapters;
 *     POST /v1/chat/completions /chat/completions /v1/completions /completions /completion
 *     /v1/messages /v1/messages/count_tokens /v1/responses /v1/chat/completions/input_tokens
 *     /v1/embeddings /embeddings /embedding /rerank /v1/rerank /reranking /v1/reranking /infill
 *     /tokenize /detokenize /apply-template /props /slots/:id. OPTIONS is the CORS preflight. Any
 *     other route or method gives 404 `File Not Found`.
 *   - Generation: the text is made from a fixed word list, one token per SSE event. For the chunk
 *     layout, [DONE], usage and timings it follows the recorded streams. A reasoning model streams
 *     `reasoning_content` first (or `<think>` inline in the content with --reasoning-format none).
 *   - Slots: `--parallel N` requests generate at once. Any more wait for a free slot, and until they
 *     get one they receive no bytes at all.
 *   - If a client disconnects mid-generation, the fake logs `stop: cancel task` and frees the slot.
 *   - HTTP: keep-alive (`Keep-Alive: timeout=5, max=100`, idle connections closed after 5 s, the 100th
 *     request on a connection gets `Connection: close`); every 4xx/5xx says `Connection: close` and closes;
 *     `Expect: 100-continue` and chunked request bodies work; HEAD adds `Accept-Ranges: bytes`.
 *   - Signals: SIGTERM and SIGINT while loading kill the process (no handler is installed yet, 07g).
 *     Once it has loaded, a signal at idle exits with 0. While a generation is open the fake stops
 *     sending and stays alive until the client disconnects, then exits with 0 (07f). In both cases it
 *     stops listening at once (new connections are refused) and closes idle keep-alive connections. A second signal
 *     prints `Received second interrupt, terminating immediately.` and exits with 1.
 *   - Router-child mode: when LLAMA_SERVER_ROUTER_PORT is set, it prints `cmd_child_to_router:state:`
 *     lines on stdout while it loads and when it is ready. Once ready it reads stdin:
 *     `cmd_router_to_child:exit` exits with 0, and EOF exits with 1 (07i). Without that variable
 *     stdin is ignored (07h).
 *   - GET /__fake/state (a fake-only route, no API key needed) answers
 *     {pid, model, alias, modelPath, port, state, inFlight, queued, handled, generations, slots}.
 *
 * KNOBS (environment variables)
 *   FAKE_LLAMA_LOAD_MS=50            how long the "model load" takes, in ms.
 *   FAKE_LLAMA_FAIL_LOAD=code:msg    fail at the end of the load. The fake prints `msg` as an E log line,
 *                                    then the usual failure lines, and exits with `code`. `code` can also
 *                                    be a signal name (SIGSEGV, SIGABRT, SIGKILL); the process then kills
 *                                    itself with that signal.
 *   FAKE_LLAMA_CRASH_AFTER_CHUNKS=N  once N token chunks of a generation have been sent (0 = as soon as
 *                                    a generation starts, which also covers non-streaming requests),
 *                                    the process dies by FAKE_LLAMA_CRASH_SIGNAL (default SIGSEGV,
 *                                    exit status 139 in a shell). A number there means exit(number).
 *   FAKE_LLAMA_STALL_AFTER_CHUNKS=N  once N token chunks have been sent, stop sending but keep the
 *                                    socket and the slot until the client goes away.
 *   FAKE_LLAMA_ERROR_AFTER_CHUNKS=N  after N token chunks, send the recorded mid-stream error (the
 *                                    `peg-native format` 500): an SSE error event, or a 500 when the
 *                                    request is not streaming.
 *   FAKE_LLAMA_IGNORE_SIGTERM=1      ignore SIGTERM from the very start. Only SIGINT or SIGKILL stop it.
 *   FAKE_LLAMA_REFUSE_BIND=1         behave as if the port were in use (the 07c lines, exit 1).
 *   FAKE_LLAMA_TOKENS=8              content tokens per answer. -1 = no limit: it stops only at
 *                                    max_tokens or when the context is full.
 *   FAKE_LLAMA_REASONING_TOKENS=4    reasoning tokens before the content, when reasoning is on.
 *   FAKE_LLAMA_TOKEN_INTERVAL_MS=0   delay between tokens, in ms.
 *   FAKE_LLAMA_PROMPT_MS=0           extra delay before the first token, in ms (prompt processing).
 *   FAKE_LLAMA_REASONING=1|0         force the model to be (1) or not to be (0) a reasoning model.
 *                                    Default: a reasoning model when the file name contains "think".
 *   FAKE_LLAMA_INSTANT=1             answer generation routes at once with a fixed tiny body: no slots,
 *                                    no logs, no timers. Used for proxy-overhead benchmarks.
 *   FAKE_LLAMA_RSS_MB=N              allocate and touch N MiB while loading, to look like a model in RAM.
 *   FAKE_LLAMA_STATS_FILE=path       append one JSON line per request received:
 *                                    {"pid","model","method","path","stream","t"}. Several processes can
 *                                    share one file. /__fake/* requests are not recorded.
 *   FAKE_LLAMA_N_CTX_TRAIN=2048      the model's training context, when the GGUF header does not say.
 *   FAKE_LLAMA_MODEL_MB / FAKE_LLAMA_KV_MB / FAKE_LLAMA_COMPUTE_MB
 *                                    override the buffer sizes printed at -lv 4 (MiB).
 *   FAKE_LLAMA_STRICT_GGUF=1         fail like llama-server (07b) when the GGUF header cannot be parsed.
 *                                    Without it only the magic number is checked.
 *   LLAMA_SERVER_ROUTER_PORT=P       router-child mode (see above).
 */
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

// A parent that closes our pipes must not crash us with an unhandled EPIPE (the real binary would die of SIGPIPE
// on its next log line; the fake keeps running so tests see the HTTP behaviour).
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.join(HERE, "..", "fixtures", "llama-server");
const ENV = process.env;
const BUILD_INFO = "b1-80fb11a";

// ---------------------------------------------------------------------------------------------------
// knobs

function intKnob(name, dflt) {
  const v = ENV[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? n : dflt;
}
const K = {
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
  nCtxTrain: intKnob("FAKE_LLAMA_N_CTX_TRAIN", 2048),
  modelMb: ENV.FAKE_LLAMA_MODEL_MB,
  kvMb: ENV.FAKE_LLAMA_KV_MB,
  computeMb: ENV.FAKE_LLAMA_COMPUTE_MB,
  strictGguf: ENV.FAKE_LLAMA_STRICT_GGUF === "1",
  routerPort: ENV.LLAMA_SERVER_ROUTER_PORT,
};
if (K.ignoreSigterm) process.on("SIGTERM", () => {});

// ---------------------------------------------------------------------------------------------------
// logging, in llama.cpp's format: `0.00.019.823 I srv    load_model: message`

let verbosity = 3;
const LEVEL_VERBOSITY = { E: 1, W: 2, I: 3, D: 4 };
const pad = (n, w) => String(n).padStart(w, "0");
function stamp() {
  const us = Math.floor(performance.now() * 1000);
  return `${Math.floor(us / 60e6)}.${pad(Math.floor(us / 1e6) % 60, 2)}.${pad(Math.floor(us / 1000) % 1000, 3)}.${pad(us % 1000, 3)}`;
}
/** log("I", "srv", "load_model", "message"); module "" = library line (`I load_tensors: ...`). `lv` = minimum -lv. */
function log(level, mod, fn, msg, lv = LEVEL_VERBOSITY[level] ?? 3) {
  if (verbosity < lv) return;
  const prefix = mod ? `${mod.padEnd(5)}${fn.slice(0, 12).padStart(12)}: ` : fn ? `${fn}: ` : "";
  process.stderr.write(`${stamp()} ${level} ${prefix}${msg}\n`);
}
const trace = (fn, msg) => log("I", "", fn, msg, 4);
function slotLog(level, fn, slotId, taskId, msg) {
  log(level, "slot", fn, `id ${String(slotId).padStart(2)} | task ${taskId} | ${msg}`);
}

// ---------------------------------------------------------------------------------------------------
// arguments: every flag of the recorded --help text, with its value placeholder and env variable

function loadFlagTable() {
  const table = new Map();
  let cur = null;
  for (const line of fs.readFileSync(path.join(FIXTURES, "server-help.txt"), "utf8").split("\n")) {
    if (line.startsWith("-----")) {
      cur = null;
      continue;
    }
    if (line.startsWith("-")) {
      const spec = line
        .replace(/,\s+/g, ", ")
        .split(/\s{2,}/)[0]
        .trim();
      const names = spec.split(", ");
      const last = names[names.length - 1];
      const sp = last.indexOf(" ");
      let placeholder = null;
      if (sp >= 0) {
        placeholder = last.slice(sp + 1);
        names[names.length - 1] = last.slice(0, sp);
      }
      const canonical = names.find((n) => n.startsWith("--") && !n.startsWith("--no-")) ?? names[0];
      cur = { names, placeholder, canonical, env: null, usage: [line] };
      for (const n of names) table.set(n, cur);
      const m = /\(env: ([A-Z0-9_]+)\)/.exec(line);
      if (m) cur.env = m[1];
    } else if (cur && line.startsWith(" ")) {
      cur.usage.push(line);
      const m = /\(env: ([A-Z0-9_]+)\)/.exec(line);
      if (m) cur.env = m[1];
    } else {
      cur = null;
    }
  }
  return table;
}

function stoi(s) {
  const m = /^\s*[+-]?\d+/.exec(s);
  if (!m) return null;
  return parseInt(m[0], 10);
}

function argError(msg, entry) {
  let out = `error while handling argument "${msg.flag}": ${msg.what}\n\nusage:\n`;
  if (entry) out += entry.usage.join("\n") + "\n";
  out += "\n\nto show complete usage, run with -h\n";
  process.stderr.write(out);
  process.exit(1);
}

function parseArgs(argv) {
  const table = loadFlagTable();
  const values = new Map();
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const entry = table.get(a);
    if (!entry) {
      process.stderr.write(`error: invalid argument: ${a}\n`);
      process.exit(1);
    }
    if (entry.canonical === "--help") {
      help = true;
      continue;
    }
    if (entry.canonical === "--version") {
      version = true;
      continue;
    }
    if (entry.placeholder === null) {
      values.set(entry.canonical, !a.startsWith("--no-"));
      continue;
    }
    if (i + 1 >= argv.length) argError({ flag: a, what: "expected value for argument" }, entry);
    const v = argv[++i];
    if (/^(N|PORT)$/.test(entry.placeholder) && stoi(v) === null) argError({ flag: a, what: "stoi" }, entry);
    const choices = /^\[([a-z0-9-]+(?:\|[a-z0-9-]+)+)\]$/.exec(entry.placeholder);
    if (choices && !choices[1].split("|").includes(v)) {
      argError({ flag: a, what: `error: unknown value for ${entry.canonical}: '${v}'\n` }, entry);
    }
    values.set(entry.canonical, v);
  }
  // env fallbacks (LLAMA_ARG_*), the way llama.cpp reads them for flags not given on the command line
  for (const entry of new Set(table.values())) {
    if (!entry.env || values.has(entry.canonical)) continue;
    const v = ENV[entry.env];
    if (v === undefined) continue;
    if (entry.placeholder === null) values.set(entry.canonical, /^(1|true|on|enabled|yes)$/i.test(v));
    else values.set(entry.canonical, v);
  }
  return { values, help, version };
}

const parsed = parseArgs(process.argv.slice(2));
if (parsed.help) {
  process.stdout.write(fs.readFileSync(path.join(FIXTURES, "server-help.txt")));
  process.exit(0);
}
if (parsed.version) {
  process.stderr.write(fs.readFileSync(path.join(FIXTURES, "server-version.txt")));
  process.exit(0);
}
const A = parsed.values;
const argStr = (k, d) => (A.has(k) && typeof A.get(k) === "string" ? A.get(k) : d);
const argInt = (k, d) => (A.has(k) ? (stoi(String(A.get(k))) ?? d) : d);
const argBool = (k) => A.get(k) === true;

verbosity = argInt("--verbosity", 3);
const opt = {
  model: argStr("--model", ""),
  host: argStr("--host", "127.0.0.1"),
  port: argInt("--port", 8080),
  ctxSize: argInt("--ctx-size", 0),
  parallel: argInt("--parallel", -1),
  kvUnified: A.has("--kv-unified") ? argBool("--kv-unified") : undefined,
  aliases: argStr("--alias", "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
  apiKeys: argStr("--api-key", "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
  metrics: argBool("--metrics"),
  embeddings: argBool("--embedding"),
  reranking: argBool("--rerank"),
  props: argBool("--props"),
  slotSavePath: argStr("--slot-save-path", ""),
  reasoningFormat: argStr("--reasoning-format", "auto"),
  reasoning: argStr("--reasoning", "auto"),
  reasoningBudget: argInt("--reasoning-budget", -1),
  nPredict: argInt("--predict", -1),
  cacheTypeK: argStr("--cache-type-k", "f16"),
  cacheTypeV: argStr("--cache-type-v", "f16"),
  mmap: A.has("--mmap") ? argBool("--mmap") : true,
};
if (A.has("--api-key-file")) {
  try {
    for (const l of fs.readFileSync(String(A.get("--api-key-file")), "utf8").split("\n")) {
      const k = l.trim();
      if (k && !k.startsWith("#")) opt.apiKeys.push(k);
    }
  } catch {
    /* llama-server would fail here; the fake keeps going */
  }
}
const routerMode = !opt.model;

// ---------------------------------------------------------------------------------------------------
// model file: GGUF header (best effort)

const FTYPES = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  32: "BF16",
};

function readGguf(file, size) {
  const fd = fs.openSync(file, "r");
  try {
    const len = Math.min(size, 64 * 1024 * 1024);
    const b = Buffer.allocUnsafe(len);
    const n = fs.readSync(fd, b, 0, len, 0);
    let o = 0;
    const need = (k) => {
      if (o + k > n) throw new Error("truncated");
    };
    const u32 = () => (need(4), (o += 4), b.readUInt32LE(o - 4));
    const u64 = () => (need(8), (o += 8), Number(b.readBigUInt64LE(o - 8)));
    const str = () => {
      const l = u64();
      need(l);
      o += l;
      return b.toString("utf8", o - l, o);
    };
    const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    const value = (t) => {
      switch (t) {
        case 0:
          return (need(1), b.readUInt8(o++));
        case 1:
          return (need(1), b.readInt8(o++));
        case 2:
          return (need(2), (o += 2), b.readUInt16LE(o - 2));
        case 3:
          return (need(2), (o += 2), b.readInt16LE(o - 2));
        case 4:
          return u32();
        case 5:
          return (need(4), (o += 4), b.readInt32LE(o - 4));
        case 6:
          return (need(4), (o += 4), b.readFloatLE(o - 4));
        case 7:
          return (need(1), b.readUInt8(o++) !== 0);
        case 8:
          return str();
        case 9: {
          const et = u32();
          const cnt = u64();
          if (et === 8) {
            for (let i = 0; i < cnt; i++) str();
          } else {
            const w = SCALAR[et];
            if (w === undefined) throw new Error("bad array type");
            need(w * cnt);
            o += w * cnt;
          }
          return { arrayLength: cnt };
        }
        case 10:
          return u64();
        case 11:
          return (need(8), (o += 8), Number(b.readBigInt64LE(o - 8)));
        case 12:
          return (need(8), (o += 8), b.readDoubleLE(o - 8));
        default:
          throw new Error("bad type");
      }
    };
    o = 4;
    const ver = u32();
    if (ver < 2 || ver > 3) throw new Error("bad version");
    const nTensors = u64();
    const nKv = u64();
    const kv = {};
    for (let i = 0; i < nKv; i++) {
      const key = str();
      kv[key] = value(u32());
    }
    let nParams = 0;
    for (let i = 0; i < nTensors; i++) {
      str();
      const nd = u32();
      let p = 1;
      for (let d = 0; d < nd; d++) p *= u64();
      u32();
      u64();
      nParams += p;
    }
    const align = typeof kv["general.alignment"] === "number" ? kv["general.alignment"] : 32;
    const dataOffset = Math.ceil(o / align) * align;
    return { kv, nParams, nKv, nTensors, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

function modelFailure(lines) {
  for (let pass = 0; pass < 2; pass++) {
    for (const l of lines) log("E", "", l[0], l[1]);
    log("E", "", "llama_model_load", `error loading model: llama_model_loader: failed to load model from ${opt.model}`);
    log("E", "", "llama_model_load_from_file_impl", "failed to load model");
    if (pass === 0)
      log(
        "E",
        "",
        "common_fit_params",
        "encountered an error while trying to fit params to free device memory: failed to load model",
      );
  }
  log("E", "cmn", "common_init_", `failed to load model '${opt.model}'`);
  log("E", "srv", "load_model", `failed to load model, '${opt.model}'`);
  log("I", "srv", "operator()", "operator(): cleaning up before exit...");
  log("E", "srv", "llama_server", "exiting due to model loading error");
  process.exit(1);
}

function inspectModel() {
  let st;
  try {
    st = fs.statSync(opt.model);
    if (!st.isFile()) throw new Error("not a file");
  } catch {
    modelFailure([["gguf_init_from_file", `failed to open GGUF file '${opt.model}' (No such file or directory)`]]);
  }
  const fd = fs.openSync(opt.model, "r");
  const magic = Buffer.alloc(4);
  fs.readSync(fd, magic, 0, 4, 0);
  fs.closeSync(fd);
  if (magic.toString("latin1") !== "GGUF") {
    modelFailure([
      [
        "gguf_init_from_reader",
        `invalid magic characters: '${magic.toString("latin1").replace(/\0/g, "")}', expected 'GGUF'`,
      ],
    ]);
  }
  let g = null;
  try {
    g = readGguf(opt.model, st.size);
  } catch {
    if (K.strictGguf) modelFailure([["gguf_init_from_reader", "failed to read key-value pairs"]]);
  }
  const kv = g?.kv ?? {};
  const arch = typeof kv["general.architecture"] === "string" ? kv["general.architecture"] : "llama";
  const num = (k, d) => (typeof kv[k] === "number" ? kv[k] : d);
  const nEmbd = num(`${arch}.embedding_length`, 64);
  const nHead = num(`${arch}.attention.head_count`, 4);
  const nHeadKv = num(`${arch}.attention.head_count_kv`, nHead);
  const tmpl = typeof kv["tokenizer.chat_template"] === "string" ? kv["tokenizer.chat_template"] : null;
  const fileType = num("general.file_type", 1);
  const nParams = g && g.nParams > 0 ? g.nParams : Math.max(1, Math.round(st.size / 2));
  return {
    size: st.size,
    arch,
    name: typeof kv["general.name"] === "string" ? kv["general.name"] : path.basename(opt.model, ".gguf"),
    nCtxTrain: num(`${arch}.context_length`, K.nCtxTrain),
    nEmbd,
    nLayer: num(`${arch}.block_count`, 2),
    nEmbdKv: Math.round((nEmbd / Math.max(1, nHead)) * nHeadKv),
    nVocab: kv["tokenizer.ggml.tokens"]?.arrayLength ?? num(`${arch}.vocab_size`, 32000),
    ftype: FTYPES[fileType] ?? "F16",
    nParams,
    tensorBytes: g && g.dataOffset < st.size ? st.size - g.dataOffset : st.size,
    chatTemplate: tmpl,
    nKv: g?.nKv ?? 0,
    nTensors: g?.nTensors ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------------
// server state

const S = {
  state: "loading", // loading | ready | shutting-down
  port: opt.port,
  meta: null,
  modelId: opt.aliases[0] ?? opt.model,
  aliases: opt.aliases.length > 0 ? opt.aliases : [opt.model],
  nCtx: 0,
  nCtxSlot: 0,
  nSlots: 4,
  kvUnified: true,
  slots: [],
  waiting: [], // resolvers waiting for a slot
  nextTask: 0,
  handled: 0,
  generations: 0,
  inFlight: new Set(), // generation jobs (running or queued)
  conns: new Set(),
  signals: 0,
  startUnix: Math.floor(Date.now() / 1000),
  metrics: { promptTokens: 0, promptSeconds: 0, predicted: 0, predictedSeconds: 0, nDecode: 0, nTokensMax: 0 },
  isThink: false,
  chatTemplate: "",
};

function isReasoningModel() {
  if (K.reasoning === "1") return true;
  if (K.reasoning === "0") return false;
  return path.basename(opt.model).toLowerCase().includes("think");
}

const CHATML =
  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// ---------------------------------------------------------------------------------------------------
// text: fake tokenizer and the words the "model" says

const WORDS = [
  "Hello",
  " from",
  " the",
  " fake",
  " llama",
  "-server",
  ".",
  " Ça",
  " marche",
  " très",
  " bien",
  " 🙂",
  " 微",
  "笑",
  " again",
  ",",
];
const THINK_WORDS = ["Let", " me", " think", " about", " this", " carefully", "."];
const SPECIAL_IDS = {
  "<unk>": 0,
  "<s>": 1,
  "</s>": 2,
  "<|im_start|>": 32001,
  "<|im_end|>": 32002,
  "<think>": 32003,
  "</think>": 32004,
};
const pieceById = new Map(Object.entries(SPECIAL_IDS).map(([p, id]) => [id, p]));
function pieceId(p) {
  if (p in SPECIAL_IDS) return SPECIAL_IDS[p];
  let h = 0x811c9dc5;
  for (let i = 0; i < p.length; i++) h = Math.imul(h ^ p.charCodeAt(i), 0x01000193) >>> 0;
  const id = 259 + (h % 31000);
  if (!pieceById.has(id)) pieceById.set(id, p);
  return id;
}
function tokenizePieces(text, addSpecial) {
  const out = addSpecial ? ["<s>"] : [];
  const parts = String(text).split(/(<\|im_start\|>|<\|im_end\|>|<\/?think>|<\/?s>)/);
  let first = true;
  for (const part of parts) {
    if (!part) continue;
    if (part in SPECIAL_IDS) {
      out.push(part);
      first = false;
      continue;
    }
    const t = first && !/^\s/.test(part) ? " " + part : part;
    first = false;
    for (const m of t.match(/\s*[^\s]+|\s+/g) ?? []) out.push(m);
  }
  return out;
}
const countTokens = (text, addSpecial = false) => tokenizePieces(text, addSpecial).length;

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content.map((p) => (typeof p === "string" ? p : typeof p?.text === "string" ? p.text : "")).join("");
  return "";
}
function renderChat(messages, { thinking }) {
  let s = "";
  for (const m of messages) s += `<|im_start|>${m?.role ?? "user"}\n${textOf(m?.content)}<|im_end|>\n`;
  s += "<|im_start|>assistant\n";
  if (S.isThink) s += thinking ? "<think>\n" : "<think>\n\n</think>\n\n";
  return s;
}

// ---------------------------------------------------------------------------------------------------
// nlohmann::json parse error messages (malformed request bodies answer 500 with this text)

const CTRL_NAMES = [
  "NUL",
  "SOH",
  "STX",
  "ETX",
  "EOT",
  "ENQ",
  "ACK",
  "BEL",
  "BS",
  "HT",
  "LF",
  "VT",
  "FF",
  "CR",
  "SO",
  "SI",
  "DLE",
  "DC1",
  "DC2",
  "DC3",
  "DC4",
  "NAK",
  "SYN",
  "ETB",
  "CAN",
  "EM",
  "SUB",
  "ESC",
  "FS",
  "GS",
  "RS",
  "US",
];
const CTRL_SHORT = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r" };
function jsonParseErrorMessage(text) {
  const s = text;
  let i = 0;
  let line = 1;
  let col = 0;
  let tokStr = "";
  const EOF = null;
  const get = () => {
    col++;
    if (i >= s.length) return EOF;
    const ch = s[i++];
    tokStr += ch;
    if (ch === "\n") {
      line++;
      col = 0;
    }
    return ch;
  };
  const unget = () => {
    col--;
    i--;
    tokStr = tokStr.slice(0, -1);
  };
  let lexErr = "";
  const scan = () => {
    // like nlohmann's lexer, the "last read" text is only reset when a string or a number starts
    let ch;
    do ch = get();
    while (ch === " " || ch === "\t" || ch === "\n" || ch === "\r");
    if (ch === EOF) return "end of input";
    if ("[]{}:,".includes(ch)) return `'${ch}'`;
    if (ch === '"' || ch === "-" || (ch >= "0" && ch <= "9")) tokStr = ch;
    if (ch === '"') {
      for (;;) {
        const c = get();
        if (c === EOF) return ((lexErr = "invalid string: missing closing quote"), "<parse error>");
        if (c === '"') return "string literal";
        const code = c.charCodeAt(0);
        if (code < 0x20) {
          const hex = code.toString(16).toUpperCase().padStart(4, "0");
          lexErr = `invalid string: control character U+${hex} (${CTRL_NAMES[code]}) must be escaped to \\u${hex}${CTRL_SHORT[code] ? ` or ${CTRL_SHORT[code]}` : ""}`;
          return "<parse error>";
        }
        if (c === "\\") {
          const e = get();
          if (e === EOF) return ((lexErr = "invalid string: missing closing quote"), "<parse error>");
          if (!'"\\/bfnrtu'.includes(e))
            return ((lexErr = "invalid string: forbidden character after backslash"), "<parse error>");
        }
      }
    }
    if (ch === "-" || (ch >= "0" && ch <= "9")) {
      let c = ch;
      if (c === "-") {
        c = get();
        if (c === EOF || !(c >= "0" && c <= "9"))
          return ((lexErr = "invalid number; expected digit after '-'"), "<parse error>");
      }
      if (c !== "0") while ((c = get()) !== EOF && c >= "0" && c <= "9");
      else c = get();
      if (c === ".") {
        c = get();
        if (c === EOF || !(c >= "0" && c <= "9"))
          return ((lexErr = "invalid number; expected digit after '.'"), "<parse error>");
        while ((c = get()) !== EOF && c >= "0" && c <= "9");
      }
      if (c === "e" || c === "E") {
        c = get();
        if (c === "+" || c === "-") {
          c = get();
          if (c === EOF || !(c >= "0" && c <= "9"))
            return ((lexErr = "invalid number; expected digit after exponent sign"), "<parse error>");
        } else if (c === EOF || !(c >= "0" && c <= "9"))
          return ((lexErr = "invalid number; expected '+', '-', or digit after exponent"), "<parse error>");
        while ((c = get()) !== EOF && c >= "0" && c <= "9");
      }
      unget();
      return "number literal";
    }
    for (const lit of ["true", "false", "null"]) {
      if (ch === lit[0]) {
        for (let k = 1; k < lit.length; k++) {
          if (get() !== lit[k]) return ((lexErr = "invalid literal"), "<parse error>");
        }
        return `${lit} literal`;
      }
    }
    lexErr = "invalid literal";
    return "<parse error>";
  };
  class PErr extends Error {}
  let last = "";
  const fail = (context, expected) => {
    let m = `syntax error while parsing ${context} - `;
    if (last === "<parse error>")
      m += `${lexErr}; last read: '${tokStr.replace(/[\x00-\x1f]/g, (c) => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}>`)}'`;
    else m += `unexpected ${last}`;
    if (expected) m += `; expected ${expected}`;
    throw new PErr(`[json.exception.parse_error.101] parse error at line ${line}, column ${col}: ${m}`);
  };
  const next = () => (last = scan());
  const LIT = "'[', '{', or a literal";
  const parseValue = () => {
    if (last === "'{'") {
      next();
      if (last === "'}'") return;
      for (;;) {
        if (last !== "string literal") fail("object key", "string literal");
        next();
        if (last !== "':'") fail("object separator", "':'");
        next();
        parseValue();
        next();
        if (last === "','") {
          next();
          continue;
        }
        if (last === "'}'") return;
        fail("object", "'}'");
      }
    }
    if (last === "'['") {
      next();
      if (last === "']'") return;
      for (;;) {
        parseValue();
        next();
        if (last === "','") {
          next();
          continue;
        }
        if (last === "']'") return;
        fail("array", "']'");
      }
    }
    if (/literal$/.test(last) && last !== "<parse error>") return;
    if (last === "<parse error>") fail("value", "");
    fail("value", LIT);
  };
  if (s.trim() === "") {
    for (const ch of s) if (ch === "\n") line++;
    return `[json.exception.parse_error.101] parse error at line ${line}, column ${s.length - s.lastIndexOf("\n")}: attempting to parse an empty input; check that your input string or stream contains the expected JSON`;
  }
  try {
    next();
    parseValue();
    next();
    if (last !== "end of input") fail("value", "end of input");
    return null;
  } catch (e) {
    if (e instanceof PErr) return e.message;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// HTTP/1.1 on node:net, with llama.cpp's (cpp-httplib's) exact headers

const REASONS = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  413: "Payload Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};
const KEEP_ALIVE = "Keep-Alive: timeout=5, max=100\r\n";
const MAX_REQUESTS_PER_CONN = 100;

function allowOrigin(req) {
  return req.headers.origin ?? "";
}
function connHeader(c, req, status) {
  const close = status >= 400 || req.wantsClose || c.nreq + 1 >= MAX_REQUESTS_PER_CONN || S.state === "shutting-down";
  return { close, line: close ? "Connection: close\r\n" : KEEP_ALIVE };
}
function sendRaw(c, req, status, contentType, body, extraHeaders = "") {
  if (c.closed) return finish(c, true);
  const buf = typeof body === "string" ? Buffer.from(body) : body;
  const { close, line } = connHeader(c, req, status);
  const head =
    `HTTP/1.1 ${status} ${REASONS[status] ?? "OK"}\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: ${allowOrigin(req)}\r\n${extraHeaders}` +
    `Content-Type: ${contentType}\r\nContent-Length: ${buf.length}\r\n${line}${req.method === "HEAD" ? "Accept-Ranges: bytes\r\n" : ""}\r\n`;
  c.sock.write(req.method === "HEAD" ? head : Buffer.concat([Buffer.from(head), buf]));
  finish(c, close);
}
const JSON_TYPE = "application/json; charset=utf-8";
const sendJson = (c, req, status, obj) =>
  sendRaw(c, req, status, JSON_TYPE, typeof obj === "string" ? obj : JSON.stringify(obj));
/** Errors thrown by handlers: {"error":{"code","message","type"}} (llama.cpp's usual key order). */
function errBody(code, message, type, extra) {
  return JSON.stringify({ error: { code, message, type, ...extra } });
}
function sendError(c, req, code, message, type, extra) {
  const body = errBody(code, message, type, extra);
  if (code === 400 || code === 500) log("W", "srv", "operator()", `got exception: ${body}`);
  sendJson(c, req, code, body);
}
const LOADING_BODY = '{"error":{"message":"Loading model","type":"unavailable_error","code":503}}';
const NOT_FOUND_BODY = '{"error":{"message":"File Not Found","type":"not_found_error","code":404}}';
const BAD_KEY_BODY = '{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}';
const PEG_ERROR = {
  code: 500,
  message: "The model produced output that does not match the expected peg-native format",
  type: "server_error",
};

/** Called when a response is complete: keep the connection for the next request, or close it. */
function finish(c, close) {
  c.busy = false;
  c.nreq++;
  if (close || c.closed) {
    if (!c.closed) c.sock.end();
    return;
  }
  armIdle(c);
  if (c.buf.length > 0) setImmediate(() => pump(c));
}
function armIdle(c) {
  clearTimeout(c.idleTimer);
  c.idleTimer = setTimeout(() => c.sock.destroy(), 5000);
  c.idleTimer.unref();
}

function onConnection(sock) {
  sock.setNoDelay(true);
  const c = {
    sock,
    buf: Buffer.alloc(0),
    busy: false,
    closed: false,
    nreq: 0,
    idleTimer: undefined,
    onClose: new Set(),
    continued: false,
  };
  S.conns.add(c);
  armIdle(c);
  sock.on("data", (d) => {
    c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d]);
    if (!c.busy) pump(c);
  });
  sock.on("error", () => {});
  sock.on("close", () => {
    c.closed = true;
    clearTimeout(c.idleTimer);
    S.conns.delete(c);
    for (const f of [...c.onClose]) f();
    c.onClose.clear();
  });
}

function decodeChunked(buf, start) {
  const parts = [];
  let o = start;
  for (;;) {
    const eol = buf.indexOf("\r\n", o);
    if (eol < 0) return null;
    const size = parseInt(buf.toString("latin1", o, eol).split(";")[0], 16);
    if (!Number.isFinite(size)) return { error: true };
    o = eol + 2;
    if (size === 0) {
      const end = buf.indexOf("\r\n\r\n", o - 2);
      if (end < 0) return null;
      return { body: Buffer.concat(parts), end: end + 4 };
    }
    if (o + size + 2 > buf.length) return null;
    parts.push(buf.subarray(o, o + size));
    o += size + 2;
  }
}

function pump(c) {
  if (c.busy || c.closed) return;
  const he = c.buf.indexOf("\r\n\r\n");
  if (he < 0) {
    if (c.buf.length > 65536) c.sock.destroy();
    return;
  }
  const head = c.buf.toString("latin1", 0, he).split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(head[0] ?? "");
  if (!m) {
    c.sock.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const headers = {};
  for (const h of head.slice(1)) {
    const k = h.indexOf(":");
    if (k > 0) headers[h.slice(0, k).trim().toLowerCase()] = h.slice(k + 1).trim();
  }
  let body;
  let end;
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    const r = decodeChunked(c.buf, he + 4);
    if (r === null) return maybeContinue(c, headers);
    if (r.error) return void c.sock.destroy();
    body = r.body;
    end = r.end;
  } else {
    const len = Number(headers["content-length"] ?? 0) || 0;
    if (c.buf.length < he + 4 + len) return maybeContinue(c, headers);
    body = c.buf.subarray(he + 4, he + 4 + len);
    end = he + 4 + len;
  }
  c.buf = c.buf.subarray(end);
  c.continued = false;
  c.busy = true;
  clearTimeout(c.idleTimer);
  const target = m[2];
  const q = target.indexOf("?");
  const req = {
    method: m[1],
    target,
    path: q >= 0 ? target.slice(0, q) : target,
    query: new URLSearchParams(q >= 0 ? target.slice(q + 1) : ""),
    headers,
    body,
    wantsClose: m[3] === "0" ? !/keep-alive/i.test(headers.connection ?? "") : /close/i.test(headers.connection ?? ""),
  };
  try {
    dispatch(c, req);
  } catch (e) {
    sendError(c, req, 500, String(e?.message ?? e), "server_error");
  }
}
function maybeContinue(c, headers) {
  if (!c.continued && /100-continue/i.test(headers.expect ?? "")) {
    c.continued = true;
    c.sock.write("HTTP/1.1 100 Continue\r\n\r\n");
  }
}

// streaming responses: chunked SSE
function startStream(c, req) {
  const { close, line } = connHeader(c, req, 200);
  c.streamClose = close;
  c.sock.write(
    `HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: ${allowOrigin(req)}\r\nX-Accel-Buffering: no\r\n` +
      `Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n${line}\r\n`,
  );
}
/** Write one HTTP chunk; resolves once the socket can take more. */
function writeChunk(c, text) {
  if (c.closed) return Promise.resolve();
  const b = Buffer.from(text);
  const ok = c.sock.write(Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]));
  if (ok) return Promise.resolve();
  return new Promise((res) => {
    const done = () => {
      c.onClose.delete(done);
      c.sock.off("drain", done);
      res();
    };
    c.onClose.add(done);
    c.sock.once("drain", done);
  });
}
function endStream(c) {
  if (c.closed) return finish(c, true);
  c.sock.write("0\r\n\r\n");
  finish(c, c.streamClose);
}
const sse = (obj) => `data: ${typeof obj === "string" ? obj : JSON.stringify(obj)}\n\n`;
const sseEvent = (type, obj) => `event: ${type}\ndata: ${JSON.stringify(obj)}\n\n`;

// ---------------------------------------------------------------------------------------------------
// routing

const GET_ROUTES = new Set([
  "/health",
  "/v1/health",
  "/models",
  "/v1/models",
  "/api/tags",
  "/props",
  "/slots",
  "/metrics",
  "/lora-adapters",
]);
const POST_ROUTES = new Set([
  "/completion",
  "/completions",
  "/v1/completions",
  "/chat/completions",
  "/v1/chat/completions",
  "/api/chat",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/v1/responses",
  "/v1/chat/completions/input_tokens",
  "/infill",
  "/embedding",
  "/embeddings",
  "/v1/embeddings",
  "/rerank",
  "/reranking",
  "/v1/rerank",
  "/v1/reranking",
  "/tokenize",
  "/detokenize",
  "/apply-template",
  "/props",
  "/lora-adapters",
  "/api/show",
]);
const PUBLIC = new Set(["/health", "/v1/health"]);

function recordStats(req, stream) {
  if (!K.statsFile) return;
  try {
    fs.appendFileSync(
      K.statsFile,
      JSON.stringify({
        pid: process.pid,
        model: S.modelId,
        method: req.method,
        path: req.path,
        stream,
        t: Date.now(),
      }) + "\n",
    );
  } catch {
    /* best effort */
  }
}

function fakeState() {
  return {
    pid: process.pid,
    model: S.modelId,
    alias: opt.aliases[0] ?? null,
    modelPath: opt.model,
    port: S.port,
    state: S.state,
    inFlight: S.inFlight.size,
    queued: S.waiting.length,
    handled: S.handled,
    generations: S.generations,
    slots: S.slots.map((s) => ({ id: s.id, busy: s.busy })),
  };
}

function dispatch(c, req) {
  if (req.path.startsWith("/__fake/")) {
    if (req.path === "/__fake/state" && req.method === "GET") return sendJson(c, req, 200, fakeState());
    return sendJson(c, req, 404, NOT_FOUND_BODY);
  }
  S.handled++;
  let json = null;
  if (req.method === "POST" && req.body.length > 0) {
    try {
      json = JSON.parse(req.body.toString("utf8"));
    } catch {
      /* handled per route below, like llama.cpp: parse errors surface when the handler reads the body */
    }
  }
  recordStats(req, json?.stream === true);
  if (req.method === "OPTIONS") {
    // CORS preflight: echoes Origin; note Content-Length comes after Keep-Alive here (02-cors-preflight)
    const { close, line } = connHeader(c, req, 200);
    c.sock.write(
      `HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nAccess-Control-Allow-Origin: ${allowOrigin(req)}\r\nAccess-Control-Allow-Credentials: true\r\n` +
        `Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\nContent-Type: text/html\r\n` +
        `${line}Content-Length: 0\r\n\r\n`,
    );
    return finish(c, close);
  }
  // llama.cpp's pre-routing middlewares: first "still loading", then the API key
  if (S.state === "loading") return sendJson(c, req, 503, LOADING_BODY);
  if (opt.apiKeys.length > 0 && !PUBLIC.has(req.path)) {
    const auth = req.headers.authorization ?? "";
    const key = auth.startsWith("Bearer ") ? auth.slice(7) : (req.headers["x-api-key"] ?? "");
    if (!opt.apiKeys.includes(key)) {
      log("W", "srv", "operator()", "unauthorized: Invalid API Key");
      return sendJson(c, req, 401, BAD_KEY_BODY);
    }
  }
  if (routerMode) return routerDispatch(c, req);
  const isGet = req.method === "GET" || req.method === "HEAD";
  const known =
    (isGet && GET_ROUTES.has(req.path)) ||
    (req.method === "POST" && (POST_ROUTES.has(req.path) || /^\/slots\/\d+$/.test(req.path)));
  if (!known) return sendJson(c, req, 404, NOT_FOUND_BODY);
  if (isGet) return handleGet(c, req);
  // POST: body must be JSON (llama.cpp answers malformed JSON with a 500 carrying nlohmann's message)
  if (json === null && req.path !== "/props" && !/^\/slots\//.test(req.path)) {
    const msg = jsonParseErrorMessage(req.body.toString("utf8")) ?? "[json.exception.parse_error.101] parse error";
    return sendError(c, req, 500, msg, "server_error");
  }
  return handlePost(c, req, json ?? {});
}

function routerDispatch(c, req) {
  if ((req.method === "GET" || req.method === "HEAD") && (req.path === "/health" || req.path === "/v1/health"))
    return sendJson(c, req, 200, '{"status":"ok"}');
  if ((req.method === "GET" || req.method === "HEAD") && (req.path === "/models" || req.path === "/v1/models"))
    return sendJson(c, req, 200, { data: [], object: "list" });
  if (req.method === "POST" && POST_ROUTES.has(req.path))
    return sendError(c, req, 400, "model name is missing from the request", "invalid_request_error");
  return sendJson(c, req, 404, NOT_FOUND_BODY);
}

// ---------------------------------------------------------------------------------------------------
// GET endpoints

function modelEntry() {
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
function modelsBody() {
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

const DEFAULT_PARAMS = {
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

function propsBody() {
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

function slotsBody() {
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

function metricsText() {
  const m = S.metrics;
  const busy = S.slots.filter((s) => s.busy).length;
  const rows = [
    ["prompt_tokens_total", "counter", "Number of prompt tokens processed, excluding cached tokens", m.promptTokens],
    ["prompt_tokens_cached_total", "counter", "Number of prompt tokens reused from the cache", 0],
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

function handleGet(c, req) {
  switch (req.path) {
    case "/health":
    case "/v1/health":
      return sendJson(c, req, 200, '{"status":"ok"}');
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

// ---------------------------------------------------------------------------------------------------
// POST endpoints

function embeddingFor(text) {
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

function handlePost(c, req, body) {
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
  if (/^\/slots\//.test(p))
    return sendError(
      c,
      req,
      501,
      "This server does not support slots action. Start it with `--slot-save-path`",
      "not_supported_error",
    );
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

function thinkingFor(body) {
  if (!S.isThink) return false;
  if (opt.reasoning === "off" || opt.reasoningBudget === 0) return false;
  if (body?.chat_template_kwargs?.enable_thinking === false) return false;
  if (body?.reasoning_effort === "none") return false;
  return true;
}
function renderAnthropicPrompt(body) {
  const msgs = [];
  if (body.system !== undefined) msgs.push({ role: "system", content: textOf(body.system) });
  for (const m of Array.isArray(body.messages) ? body.messages : [])
    msgs.push({ role: m?.role, content: textOf(m?.content) });
  return renderChat(msgs, { thinking: thinkingFor(body) });
}
function renderResponsesPrompt(body) {
  const msgs = [];
  if (typeof body.instructions === "string") msgs.push({ role: "system", content: body.instructions });
  if (typeof body.input === "string") msgs.push({ role: "user", content: body.input });
  else if (Array.isArray(body.input))
    for (const it of body.input) msgs.push({ role: it?.role ?? "user", content: textOf(it?.content) });
  return renderChat(msgs, { thinking: thinkingFor(body) });
}

// ---------------------------------------------------------------------------------------------------
// generation

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
function randId(n = 32) {
  let s = "";
  for (let i = 0; i < n; i++) s += ALNUM[Math.floor(Math.random() * ALNUM.length)];
  return s;
}
const nowUnix = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * llama-server's choice among idle slots: the one whose cached prompt shares the longest prefix with this
 * prompt (if more than 10% of it), else the least recently used one (the highest id among never-used slots).
 */
function pickSlot(job) {
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
function acquireSlot(job) {
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
function releaseSlot(slot) {
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
function pause(job, ms) {
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
function untilClosed(job) {
  if (job.c.closed) return Promise.resolve();
  return new Promise((r) => job.c.onClose.add(r));
}

function crashNow() {
  const sig = K.crashSignal;
  if (/^\d+$/.test(sig)) process.exit(Number(sig));
  process.kill(process.pid, sig);
  setTimeout(() => process.exit(139), 50);
}

function maxTokensOf(body, kind) {
  const pick = (...vals) => vals.find((v) => typeof v === "number");
  let v;
  if (kind === "chat") v = pick(body.max_completion_tokens, body.max_tokens, body.n_predict);
  else if (kind === "anthropic") v = pick(body.max_tokens);
  else if (kind === "responses") v = pick(body.max_output_tokens);
  else v = pick(body.n_predict, body.max_tokens);
  if (v === undefined || v < 0) v = opt.nPredict;
  return v;
}

function startGeneration(c, req, body, kind) {
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
function planFor(job) {
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

async function runJob(job) {
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
  slot.cached = job.prompt;
  slotLog("I", "get_availabl", slot.id, -1, job.slotReason);
  slotLog("I", "launch_slot_", slot.id, taskId, "processing task, is_child = 0");

  const t0 = performance.now();
  if (K.promptMs > 0) await pause(job, K.promptMs);
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
  const promptMs = Math.max(0.001, tPrompt - t0) + job.nPrompt * 0.01;
  const predictedMs = Math.max(0.001, tEnd - tPrompt);
  const timings = {
    cache_n: 0,
    prompt_n: job.nPrompt,
    prompt_ms: round3(promptMs),
    prompt_per_token_ms: promptMs / job.nPrompt,
    prompt_per_second: (1000 * job.nPrompt) / promptMs,
    predicted_n: n,
    predicted_ms: round3(predictedMs),
    predicted_per_token_ms: n > 0 ? predictedMs / n : 0,
    predicted_per_second: n > 0 ? (1000 * n) / predictedMs : 0,
  };
  const m = S.metrics;
  m.promptTokens += job.nPrompt;
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
    `prompt eval time = ${promptMs.toFixed(2).padStart(10)} ms / ${String(job.nPrompt).padStart(5)} tokens (${(promptMs / job.nPrompt).toFixed(2).padStart(8)} ms per token, ${((1000 * job.nPrompt) / promptMs).toFixed(2).padStart(8)} tokens per second)`,
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
  releaseSlot(slot);
  S.generations++;
  await out.end(finishReason, timings, n);
}
const round3 = (x) => Math.round(x * 1000) / 1000;

/** Turns tokens into the wire format of each endpoint. token() resolves true when a chunk was sent. */
class Emitter {
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
      prompt_tokens_details: { cached_tokens: 0 },
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
          input_tokens_details: { cached_tokens: 0 },
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
            input_tokens_details: { cached_tokens: 0 },
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
let instantCache = null;
function instantAnswer(c, req, kind, stream) {
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

// ---------------------------------------------------------------------------------------------------
// shutdown: signals, child protocol

S.shutdownWaiters = new Set();
function cleanupLine() {
  log("I", "srv", "operator()", "operator(): cleaning up before exit...");
  if (S.breakdown && verbosity >= 4) breakdown(...S.breakdown);
}
function beginShutdown() {
  if (S.state === "shutting-down") return;
  S.state = "shutting-down";
  cleanupLine();
  if (S.server) S.server.close();
  for (const f of [...S.shutdownWaiters]) f();
  // idle keep-alive connections are closed; connections with an open generation stay until the client leaves
  const busyConns = new Set([...S.inFlight].map((j) => j.c));
  for (const c of S.conns) if (!busyConns.has(c) && !c.busy) c.sock.destroy();
  maybeExitAfterShutdown();
}
function maybeExitAfterShutdown() {
  if (S.state !== "shutting-down") return;
  if (S.inFlight.size > 0) return;
  setImmediate(() => process.exit(0));
}
function onSignal() {
  S.signals++;
  if (S.signals >= 2) {
    process.stderr.write("Received second interrupt, terminating immediately.\n");
    process.exit(1);
  }
  beginShutdown();
}
function installSignalHandlers() {
  if (!K.ignoreSigterm) process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

function childOut(obj) {
  process.stdout.write(`cmd_child_to_router:state:${JSON.stringify(obj)}\n`);
}
const fmtProgress = (v) => (Number.isInteger(v) ? v.toFixed(1) : String(Math.round(v * 1000) / 1000));
function childProgress(v) {
  process.stdout.write(
    `cmd_child_to_router:state:{"state":"loading","payload":{"stages":["text_model"],"current":"text_model","value":${fmtProgress(v)}}}\n`,
  );
}
function watchStdin() {
  log("I", "srv", "operator()", "child server monitoring thread started, waiting for EOF on stdin...");
  let buf = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "cmd_router_to_child:exit") {
        log("I", "srv", "operator()", "exit command received, exiting...");
        beginShutdown();
      }
    }
  });
  process.stdin.on("end", () => {
    log("I", "srv", "operator()", "EOF on stdin detected, forcing shutdown...");
    process.exit(1);
  });
  process.stdin.on("error", () => {});
}

// ---------------------------------------------------------------------------------------------------
// startup

function fmtMiB(bytes) {
  return (bytes / 1048576).toFixed(2);
}
const KV_BYTES = {
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

function printBufferLines() {
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
function breakdown(self, model, ctx, compute) {
  trace(
    "common_memory_breakdown_print",
    "| memory breakdown [MiB] | total   free    self   model   context   compute    unaccounted |",
  );
  trace(
    "common_memory_breakdown_print",
    `|   - Host               |                 ${String(self).padStart(4)} = ${String(model).padStart(5)} + ${String(ctx).padStart(7)} + ${String(compute).padStart(7)}                |`,
  );
}

function startupLines() {
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

function bindFailed(host, port) {
  log("E", "srv", "start", `couldn't bind HTTP server socket, hostname: ${host}, port: ${port}`);
  cleanupLine();
  log("E", "srv", "llama_server", "exiting due to HTTP server error");
  process.exit(1);
}

function listen() {
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
const listenUrl = () => (opt.host.endsWith(".sock") ? `unix://${opt.host}` : `http://${opt.host}:${S.port}`);

let rssHold = null;
async function main() {
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

main().catch((e) => {
  process.stderr.write(`fake-llama-server: ${e?.stack ?? e}\n`);
  process.exit(70);
});
