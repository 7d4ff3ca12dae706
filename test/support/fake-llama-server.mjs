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
 *     -ctk/-ctv/--cache-type-k/v (size of the KV cache in the -lv 4 log lines and of slot files), --no-mmap (the same),
 *     --cache-idle-slots / --no-cache-idle-slots and --cache-ram (see Slots below).
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
 *   - Prompt cache: a slot keeps its last prompt and answer; the next prompt's common prefix with it is reported
 *     as `timings.cache_n` (and `cached_tokens` in the usage), `prompt_n` is the rest. With --cache-idle-slots (the
 *     default; needs --cache-ram, default 8192) and a unified KV cache, starting a task clears every other idle slot,
 *     as the real binary does (it moves them to its RAM cache, which the fake does not model).
 *   - POST /slots/{id}?action=save|restore|erase with --slot-save-path: the real answers and errors (see
 *     fake-llama/slot-actions.mjs); a restored slot is reused by the next prompt that shares its prefix.
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
 *   FAKE_LLAMA_STATS_BODIES=1        the stats lines also carry the request's body as received ("body", latin1,
 *                                    so binary bytes survive) and its "contentType".
 *   FAKE_LLAMA_N_CTX_TRAIN=2048      the model's training context, when the GGUF header does not say.
 *   FAKE_LLAMA_MODEL_MB / FAKE_LLAMA_KV_MB / FAKE_LLAMA_COMPUTE_MB
 *                                    override the buffer sizes printed at -lv 4 (MiB).
 *   FAKE_LLAMA_STRICT_GGUF=1         fail like llama-server (07b) when the GGUF header cannot be parsed.
 *                                    Without it only the magic number is checked.
 *   FAKE_LLAMA_PROMPT_TOKEN_MS=0     delay per prompt token evaluated (not cached), in ms: a prefill that a restored
 *                                    cache makes shorter.
 *   FAKE_LLAMA_SAVE_FAIL=1           every slot save answers the real 500 `Unable to save slot`.
 *   FAKE_LLAMA_SAVE_HANG=1           a slot save never answers (until the client goes away).
 *   FAKE_LLAMA_RESTORE_FAIL=1        every slot restore answers the real 400 `Unable to restore slot: ...`.
 *   FAKE_LLAMA_RESTORE_HANG=1        a slot restore never answers.
 *   FAKE_LLAMA_RESTORE_UNUSED=1      a slot restore succeeds, but nothing of it is reused (like a sliding-window model).
 *   FAKE_LLAMA_SLOT_ACTION_MS=0      delay of each slot save/restore, in ms.
 *   FAKE_LLAMA_CLOSE_ON_REUSE=0      the first N POSTs arriving on a connection that already served a request are
 *                                    met by closing it unanswered (a keep-alive close racing the reuse).
 *   FAKE_LLAMA_BUSY_HEALTH_MS=0      while a generation is in flight, /health answers only after N ms (a busy server).
 *   FAKE_LLAMA_HTTP_THREADS=0        cpp-httplib's fixed thread pool: /health waits until no more than N connections
 *                                    are open, its own included (each open connection holds a thread).
 *   LLAMA_SERVER_ROUTER_PORT=P       router-child mode (see above).
 */
// The code is split into modules under ./fake-llama/ (plain JavaScript, checked with // @ts-check), in the order
// they are evaluated: knobs (environment), log, args (the command line is read, and --help/--version or a bad flag
// exits, while that module is evaluated), state, then the HTTP layer, the routes and the generation. startup.mjs
// holds main(): bind, "load", serve.
import "./fake-llama/knobs.mjs";
import "./fake-llama/args.mjs";
import { main } from "./fake-llama/startup.mjs";

main().catch((e) => {
  process.stderr.write(`fake-llama-server: ${e?.stack ?? e}\n`);
  process.exit(70);
});
