/**
 * The fake llama-server (test/support/fake-llama-server.mjs) checked against the recorded transcripts of a real
 * llama-server (copies in test/fixtures/llama-server/): exact HTTP bytes, SSE framing, log lines, exit codes,
 * signals, the router-child protocol and the fault knobs other tests rely on.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  FAKE_LLAMA_SERVER,
  fakeLlamaEnv,
  freePort,
  readFakeStats,
  startFakeLlama,
  writeFakeModel,
  type FakeLlamaProcess,
} from "../support/fake-llama.js";

const FIX = fileURLToPath(new URL("../fixtures/llama-server/", import.meta.url));
const fixture = (name: string): Buffer => readFileSync(join(FIX, name));
const fixtureText = (name: string): string => fixture(name).toString("utf8");

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "fake-llama-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function start(t: TestContext, ...args: Parameters<typeof startFakeLlama>): Promise<FakeLlamaProcess> {
  const fake = await startFakeLlama(...args);
  t.after(() => fake.kill());
  return fake;
}

/** Run the fake to completion (it is expected to exit on its own). */
function runFake(
  args: string[],
  env: NodeJS.ProcessEnv = fakeLlamaEnv(),
  cwd = tmpdir(),
): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(FAKE_LLAMA_SERVER, args, { env, cwd, encoding: "utf8", timeout: 20_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Log lines without their timestamps, with the given strings replaced by placeholders. */
function normalizeLog(text: string, replace: Record<string, string> = {}): string[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      let s = l.replace(/^\d+\.\d{2}\.\d{3}\.\d{3} /, "");
      for (const [from, to] of Object.entries(replace)) s = s.split(from).join(to);
      return s;
    });
}

// ---------------------------------------------------------------------------------------------------------------
// raw HTTP

interface RawResponse {
  bytes: Buffer;
  head: string;
  status: number;
  closedByServer: boolean;
}

/** Send raw request bytes and read one whole response (Content-Length, chunked terminator, or close). */
function rawExchange(port: number, request: string | Buffer, sock?: Socket): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = sock ?? connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let closed = false;
    const complete = (): boolean => {
      const he = buf.indexOf("\r\n\r\n");
      if (he < 0) return false;
      const head = buf.toString("latin1", 0, he);
      const cl = /\r\nContent-Length: (\d+)/i.exec(head);
      if (cl) return buf.length >= he + 4 + Number(cl[1]);
      if (/\r\nTransfer-Encoding: chunked/i.test(head)) return buf.subarray(he).includes("\r\n0\r\n\r\n");
      return closed;
    };
    const done = (): void => {
      s.off("data", onData);
      s.off("close", onClose);
      const he = buf.indexOf("\r\n\r\n");
      const head = buf.toString("latin1", 0, Math.max(0, he));
      resolve({ bytes: buf, head, status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), closedByServer: closed });
    };
    // a response that says `Connection: close` is only done when the server has closed the socket
    const announcesClose = (): boolean =>
      /\r\nConnection: close\r\n/i.test(buf.toString("latin1", 0, Math.max(0, buf.indexOf("\r\n\r\n") + 2)));
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (complete() && !announcesClose()) done();
    };
    const onClose = (): void => {
      closed = true;
      if (buf.length === 0) reject(new Error("connection closed without a response"));
      else done();
    };
    s.on("data", onData);
    s.on("close", onClose);
    s.on("error", () => {});
    s.write(request);
  });
}

/** The request a fixture recorded (its .json holds request_raw) is not copied; rebuild the same bytes here. */
function httpRequest(method: string, path: string, body?: string, extra: string[] = []): string {
  const lines = [
    `${method} ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "User-Agent: fixture-capture/1",
    "Accept: */*",
    ...extra,
  ];
  if (body !== undefined) lines.push("Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`);
  return lines.join("\r\n") + "\r\n\r\n" + (body ?? "");
}

/** An open streaming request whose bytes can be watched as they arrive. */
function openStream(
  port: number,
  body: string,
): {
  sock: Socket;
  bytes: () => Buffer;
  closed: () => boolean;
  waitFor: (pred: (b: Buffer) => boolean, timeoutMs?: number) => Promise<void>;
} {
  const sock = connect(port, "127.0.0.1");
  let buf = Buffer.alloc(0);
  let closed = false;
  const waiters = new Set<() => void>();
  sock.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (const w of [...waiters]) w();
  });
  sock.on("close", () => {
    closed = true;
    for (const w of [...waiters]) w();
  });
  sock.on("error", () => {});
  sock.write(httpRequest("POST", "/v1/chat/completions", body));
  return {
    sock,
    bytes: () => buf,
    closed: () => closed,
    waitFor: (pred, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (pred(buf)) {
            cleanup();
            resolve();
          } else if (closed) {
            cleanup();
            reject(new Error(`stream closed; got:\n${buf.toString()}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timeout; got:\n${buf.toString()}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}

interface Chunked {
  head: string;
  chunks: string[];
  terminated: boolean;
}
function parseChunked(raw: Buffer): Chunked {
  const he = raw.indexOf("\r\n\r\n");
  const head = raw.toString("latin1", 0, he);
  const chunks: string[] = [];
  let o = he + 4;
  let terminated = false;
  while (o < raw.length) {
    const eol = raw.indexOf("\r\n", o);
    if (eol < 0) break;
    const size = parseInt(raw.toString("latin1", o, eol), 16);
    if (size === 0) {
      terminated = raw.toString("latin1", eol, eol + 4) === "\r\n\r\n";
      break;
    }
    if (eol + 2 + size + 2 > raw.length) break;
    assert.equal(raw.toString("latin1", eol + 2 + size, eol + 4 + size), "\r\n", "every HTTP chunk ends with CRLF");
    chunks.push(raw.toString("utf8", eol + 2, eol + 2 + size));
    o = eol + 4 + size;
  }
  return { head, chunks, terminated };
}

/** A compact description of a chat SSE stream: per HTTP chunk, per event, what it carries and its key order. */
function chatLayout(raw: Buffer): string[][] {
  return parseChunked(raw).chunks.map((chunk) => {
    assert.ok(chunk.endsWith("\n\n"), "chunks hold whole events");
    return chunk
      .slice(0, -2)
      .split("\n\n")
      .map((ev) => {
        assert.ok(ev.startsWith("data: "), ev);
        const data = ev.slice(6);
        if (data === "[DONE]") return "[DONE]";
        const o = JSON.parse(data);
        const choice = o.choices[0];
        const what = choice
          ? `delta:${Object.keys(choice.delta).join("+") || "{}"} finish:${choice.finish_reason}`
          : "no-choices";
        return `${what} keys:${Object.keys(o).join(",")}${choice ? ` choice:${Object.keys(choice).join(",")}` : ""}`;
      });
  });
}

const FIXTURE_STREAM_BODY =
  '{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}], "max_tokens": 16, "seed": 42, "temperature": 0.8, "stream": true}';

// ---------------------------------------------------------------------------------------------------------------

describe("fake llama-server: command line and startup failures", () => {
  test("--version, --help, an unknown flag and a bad number give the recorded output and exit codes", () => {
    const v = runFake(["--version"]);
    assert.equal(v.status, 0);
    assert.equal(v.stdout, "");
    assert.equal(v.stderr, fixtureText("server-version.txt"));

    const h = runFake(["--help"]);
    assert.equal(h.status, 0);
    assert.equal(h.stdout, fixtureText("server-help.txt"));

    const u = runFake(["-m", "x.gguf", "--port", "28115", "--bogus-flag"]);
    assert.equal(u.status, 1);
    assert.equal(u.stdout, "");
    assert.equal(u.stderr, fixtureText("07d-unknown-flag.stderr.txt"));

    const b = runFake(["-m", "x.gguf", "--port", "notanumber"]);
    assert.equal(b.status, 1);
    assert.equal(b.stderr, fixtureText("07d2-bad-flag-value.stderr.txt"));
  });

  test("the flags gglib passes are accepted", async (t) => {
    const fake = await start(t, {
      args: [
        "-c",
        "4096",
        "-ngl",
        "0",
        "--jinja",
        "--reasoning-format",
        "deepseek",
        "--reasoning-budget",
        "-1",
        "-fa",
        "on",
        "-np",
        "2",
        "--cache-type-k",
        "q8_0",
        "--cache-type-v",
        "q8_0",
        "--mlock",
        "--no-jinja",
        "--alias",
        "my-model",
        "--metrics",
        "-lv",
        "3",
        "--embeddings",
      ],
    });
    const r = await fetch(`${fake.baseUrl}/v1/models`);
    const body = (await r.json()) as { data: { id: string; meta: { n_ctx: number } }[] };
    assert.equal(body.data[0]!.id, "my-model");
    assert.equal(body.data[0]!.meta.n_ctx, 2048, "per slot, as the real one reports it");
    assert.match(fake.stderr(), /initializing, n_slots = 2, n_ctx_slot = 2048, kv_unified = 'false'/);
  });

  test("a missing model file prints the 07a lines and exits with 1", (t) => {
    const dir = tempDir(t);
    const model = join(dir, "does-not-exist.gguf");
    const r = runFake(["-m", model, "--port", String(28111)], fakeLlamaEnv(), dir);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "");
    const want = normalizeLog(fixtureText("07a-missing-model.stderr.txt"), {
      "/data/llm/models/does-not-exist.gguf": "<M>",
    });
    assert.deepEqual(normalizeLog(r.stderr, { [model]: "<M>" }), want);
  });

  test("a file that is not GGUF prints the 07b2 lines and exits with 1", (t) => {
    const dir = tempDir(t);
    const model = join(dir, "garbage.gguf");
    writeFileSync(model, "NOTAGGUF".repeat(100));
    const r = runFake(["-m", model, "--port", "28113"], fakeLlamaEnv(), dir);
    assert.equal(r.status, 1);
    assert.deepEqual(
      normalizeLog(r.stderr, { [model]: "<M>" }),
      normalizeLog(fixtureText("07b2-not-gguf.stderr.txt"), { "/var/fx-garbage.gguf": "<M>" }),
    );
  });

  test("a port in use prints the 07c lines and exits with 1 (and so does FAKE_LLAMA_REFUSE_BIND)", async (t) => {
    const dir = tempDir(t);
    const model = writeFakeModel(dir);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    t.after(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const want = normalizeLog(fixtureText("07c-port-in-use.stderr.txt"), { "28114": "<P>" });
    const r = runFake(["-m", model, "--host", "127.0.0.1", "--port", String(port)], fakeLlamaEnv(), dir);
    assert.equal(r.status, 1);
    assert.deepEqual(normalizeLog(r.stderr, { [String(port)]: "<P>" }), want);

    const free = await freePort();
    const r2 = runFake(
      ["-m", model, "--host", "127.0.0.1", "--port", String(free)],
      fakeLlamaEnv({ refuseBind: true }),
      dir,
    );
    assert.equal(r2.status, 1);
    assert.deepEqual(normalizeLog(r2.stderr, { [String(free)]: "<P>" }), want);
  });

  test("FAKE_LLAMA_FAIL_LOAD fails during the load with the given message and exit code", async (t) => {
    const fake = await start(t, {
      knobs: { loadMs: 300, failLoad: { exitCode: 3, message: "out of memory: cannot allocate 4096 MiB" } },
      waitReady: false,
    });
    const r = await fake.exited;
    assert.equal(r.code, 3);
    assert.match(
      fake.stderr(),
      /^\d+\.\d{2}\.\d{3}\.\d{3} E llama_model_load: out of memory: cannot allocate 4096 MiB$/m,
    );
    assert.match(fake.stderr(), /E srv {2}llama_server: exiting due to model loading error/);

    const crash = await start(t, {
      knobs: { loadMs: 10, failLoad: { exitCode: "SIGABRT", message: "GGML_ASSERT failed" } },
      waitReady: false,
    });
    assert.equal((await crash.exited).signal, "SIGABRT");
  });
});

describe("fake llama-server: HTTP bytes match the recorded ones", () => {
  test("while loading every route answers the exact 503; then /health answers the exact 200", async (t) => {
    const fake = await start(t, { knobs: { loadMs: 2500 }, waitReady: false });
    await fake.waitForLine(/load_model: loading model/);
    const h503 = await rawExchange(fake.port, httpRequest("GET", "/health"));
    assert.equal(h503.bytes.toString("latin1"), fixture("06-while-loading-GET-health-503.raw").toString("latin1"));
    assert.ok(h503.closedByServer, "a 503 closes the connection");
    const c503 = await rawExchange(
      fake.port,
      httpRequest("POST", "/v1/chat/completions", '{"messages":[{"role":"user","content":"Hi"}]}'),
    );
    assert.equal(
      c503.bytes.toString("latin1"),
      fixture("06-while-loading-POST-v1_chat_completions-503.raw").toString("latin1"),
    );
    const unknown = await rawExchange(fake.port, httpRequest("GET", "/v1/does-not-exist"));
    assert.equal(unknown.status, 503, "even unknown routes get the loading answer");

    await fake.waitReady();
    const sock = connect(fake.port, "127.0.0.1");
    t.after(() => sock.destroy());
    const ok1 = await rawExchange(fake.port, httpRequest("GET", "/health"), sock);
    assert.equal(ok1.bytes.toString("latin1"), fixture("02-health.raw").toString("latin1"));
    // keep-alive: the same socket serves the next request
    const ok2 = await rawExchange(fake.port, httpRequest("GET", "/v1/health"), sock);
    assert.equal(ok2.bytes.toString("latin1"), fixture("02-health.raw").toString("latin1"));
  });

  test("errors: 404, malformed JSON 500s, disabled features 501, CORS preflight", async (t) => {
    const fake = await start(t);
    const cases: [string, string][] = [
      [httpRequest("GET", "/v1/does-not-exist"), "06-unknown-route-get.raw"],
      [httpRequest("GET", "/v1/chat/completions"), "06-wrong-method-get-chat.raw"],
      [
        httpRequest("POST", "/v1/chat/completions", '{"messages": [{"role": "user", "content": "Hi"}'),
        "06-malformed-json-chat.raw",
      ],
      [httpRequest("POST", "/completion", '{"prompt": "Hi", '), "06-malformed-json-completion.raw"],
      [httpRequest("POST", "/v1/chat/completions", ""), "06-empty-body-chat.raw"],
      [httpRequest("POST", "/v1/embeddings", '{"input": "Hi"}'), "06-embeddings-without-flag.raw"],
      [httpRequest("POST", "/rerank", '{"query": "a", "documents": ["b"]}'), "06-rerank-disabled.raw"],
      [httpRequest("POST", "/infill", '{"input_prefix": "a", "input_suffix": "b"}'), "06-infill-unsupported.raw"],
      [
        httpRequest("OPTIONS", "/v1/chat/completions", undefined, [
          "Origin: http://example.com",
          "Access-Control-Request-Method: POST",
          "Access-Control-Request-Headers: content-type,authorization",
        ]),
        "02-cors-preflight.raw",
      ],
    ];
    for (const [req, file] of cases) {
      const r = await rawExchange(fake.port, req);
      assert.equal(r.bytes.toString("latin1"), fixture(file).toString("latin1"), file);
      if (r.status >= 400) assert.ok(r.closedByServer, `${file}: error responses close the connection`);
    }
    assert.match(
      fake.stderr(),
      /W srv {4}operator\(\): got exception: \{"error":\{"code":500,"message":"\[json\.exception\.parse_error\.101\] parse error at line 1, column 48/,
    );
  });

  test("--api-key: 401 with the recorded bytes, /health stays public, Bearer and X-Api-Key work", async (t) => {
    const fake = await start(t, { args: ["--api-key", "sekrit"] });
    const bad = await rawExchange(
      fake.port,
      httpRequest(
        "POST",
        "/v1/chat/completions",
        '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}',
        ["Authorization: Bearer wrong"],
      ),
    );
    assert.equal(bad.bytes.toString("latin1"), fixture("06-apikey-chat-wrongkey.raw").toString("latin1"));
    assert.equal((await fetch(`${fake.baseUrl}/health`)).status, 200);
    assert.equal((await fetch(`${fake.baseUrl}/v1/models`)).status, 401);
    assert.equal(
      (await fetch(`${fake.baseUrl}/v1/models`, { headers: { authorization: "Bearer sekrit" } })).status,
      200,
    );
    assert.equal((await fetch(`${fake.baseUrl}/v1/models`, { headers: { "x-api-key": "sekrit" } })).status, 200);
    assert.doesNotMatch(fake.stderr(), /no API key is set/);
  });

  test("a chat stream has the recorded chunk layout, key order and [DONE]", async (t) => {
    const fake = await start(t, { knobs: { tokens: -1 } });
    for (const [body, file] of [
      [FIXTURE_STREAM_BODY, "03-chat-stream.raw"],
      [
        FIXTURE_STREAM_BODY.replace('"stream": true', '"stream": true, "stream_options": {"include_usage": true}'),
        "03-chat-stream-include-usage.raw",
      ],
    ] as const) {
      const r = await rawExchange(fake.port, httpRequest("POST", "/v1/chat/completions", body));
      const got = parseChunked(r.bytes);
      const want = parseChunked(fixture(file));
      assert.equal(got.head, want.head, `${file}: same headers, same order`);
      assert.ok(got.terminated);
      assert.deepEqual(chatLayout(r.bytes), chatLayout(fixture(file)), file);
      assert.equal(got.chunks.at(-1), "data: [DONE]\n\n");
      // the first HTTP chunk holds the role chunk and the first token
      assert.equal(got.chunks[0]!.split("\n\n").length - 1, 2);
    }
  });

  test("the other generation endpoints have the recorded shapes", async (t) => {
    const fake = await start(t, { args: ["--alias", "tiny"] });
    const post = async (path: string, body: object): Promise<{ status: number; text: string }> => {
      const r = await fetch(`${fake.baseUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
      return { status: r.status, text: await r.text() };
    };
    const chat = JSON.parse(
      (await post("/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }], max_tokens: 4 })).text,
    );
    assert.deepEqual(Object.keys(chat), [
      "choices",
      "created",
      "model",
      "system_fingerprint",
      "object",
      "usage",
      "id",
      "timings",
    ]);
    assert.equal(chat.model, "tiny");
    assert.equal(chat.choices[0].finish_reason, "length");
    assert.equal(chat.usage.completion_tokens, 4);
    assert.match(chat.id, /^chatcmpl-[A-Za-z0-9]{32}$/);

    const native = await post("/completion", { prompt: "Once upon a time", n_predict: 3, stream: true });
    assert.doesNotMatch(native.text, /\[DONE\]/, "the native endpoint sends no [DONE]");
    const events = native.text
      .split("\n\n")
      .filter(Boolean)
      .map((e) => JSON.parse(e.slice(6)));
    assert.deepEqual(
      events.map((e) => e.stop),
      [false, false, false, true],
    );
    assert.equal(events.at(-1).stop_type, "limit");

    const oai = await post("/v1/completions", { prompt: "Once upon a time", max_tokens: 2, stream: true });
    assert.match(oai.text, /"object":"text_completion"/);
    assert.ok(oai.text.endsWith("data: [DONE]\n\n"));

    const anth = await post("/v1/messages", {
      model: "x",
      max_tokens: 3,
      stream: true,
      messages: [{ role: "user", content: "Hi" }],
    });
    const types = [...anth.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual(types, [
      "message_start",
      "content_block_start",
      "content_block_delta",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);

    const resp = await post("/v1/responses", { model: "x", input: "Hi", max_output_tokens: 2, stream: true });
    const rtypes = [...resp.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual(rtypes, [
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "response.output_text.delta",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);

    const missing = await post("/v1/chat/completions", { max_tokens: 4 });
    assert.equal(missing.status, 400);
    assert.equal(
      missing.text,
      '{"error":{"code":400,"message":"\'messages\' is required","type":"invalid_request_error"}}',
    );
    const metrics = await fetch(`${fake.baseUrl}/metrics`);
    assert.equal(metrics.status, 501);
  });

  test("a reasoning model streams reasoning_content first; --reasoning-format none inlines <think>", async (t) => {
    const dir = tempDir(t);
    const model = writeFakeModel(dir, "tiny-think");
    const ds = await start(t, {
      model,
      args: ["--reasoning-format", "deepseek"],
      knobs: { reasoningTokens: 2, tokens: 2 },
    });
    const r = await fetch(`${ds.baseUrl}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const deltas = (await r.text())
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)).choices[0].delta);
    assert.deepEqual(
      deltas.map((d) => Object.keys(d).join("+")),
      ["role+content", "reasoning_content", "reasoning_content", "content", "content", ""],
    );

    const none = await start(t, {
      model,
      args: ["--reasoning-format", "none"],
      knobs: { reasoningTokens: 2, tokens: 2 },
    });
    const r2 = await fetch(`${none.baseUrl}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }] }),
    });
    const msg = ((await r2.json()) as { choices: { message: { content: string; reasoning_content?: string } }[] })
      .choices[0]!.message;
    assert.ok(msg.content.startsWith("<think>\n"), msg.content);
    assert.match(msg.content, /<\/think>/);
    assert.equal(msg.reasoning_content, undefined);
  });

  test("-lv 4 prints the buffer-size lines", async (t) => {
    const fake = await start(t, { args: ["-lv", "4"] });
    for (const re of [
      /I load_tensors: {3}CPU_Mapped model buffer size = +\d+\.\d\d MiB/,
      /I llama_kv_cache: {8}CPU KV buffer size = +\d+\.\d\d MiB/,
      /I sched_reserve: {8}CPU compute buffer size = +\d+\.\d\d MiB/,
      /common_memory_breakdown_print: \| memory breakdown \[MiB\]/,
    ]) {
      assert.match(fake.stderr(), re);
    }
  });
});

describe("fake llama-server: process behaviour", () => {
  test("router-child mode: state lines on stdout, EOF on stdin exits with 1, the exit command with 0", async (t) => {
    const eof = await start(t, { knobs: { routerPort: 28199 }, args: ["--alias", "tiny-a"], stdin: "pipe" });
    await eof.waitForLine(/"state":"ready"/, 10_000, "stdout");
    const lines = eof.stdout().trim().split("\n");
    assert.equal(lines[0], fixtureText("07i-child-mode-exit-command.stdout.txt").split("\n")[0]);
    assert.equal(lines.at(-2), fixtureText("07i-child-mode-exit-command.stdout.txt").split("\n")[1]);
    const ready = JSON.parse(lines.at(-1)!.replace(/^cmd_child_to_router:state:/, ""));
    const wantReady = JSON.parse(
      fixtureText("07i-child-mode-exit-command.stdout.txt")
        .split("\n")[2]!
        .replace(/^cmd_child_to_router:state:/, ""),
    );
    assert.deepEqual(Object.keys(ready.payload), Object.keys(wantReady.payload));
    assert.deepEqual(Object.keys(ready.payload.meta), Object.keys(wantReady.payload.meta));
    assert.equal(ready.payload.id, "tiny-a");
    await eof.waitForLine(/child server monitoring thread started/);
    eof.child.stdin!.end();
    assert.deepEqual(await eof.exited, { code: 1, signal: null });
    assert.match(eof.stderr(), /I srv {4}operator\(\): EOF on stdin detected, forcing shutdown\.\.\./);

    const ex = await start(t, { knobs: { routerPort: 28199 }, args: ["--alias", "tiny-a"], stdin: "pipe" });
    await ex.waitForLine(/child server monitoring thread started/);
    ex.child.stdin!.write("cmd_router_to_child:exit\n");
    assert.deepEqual(await ex.exited, { code: 0, signal: null });
    assert.match(ex.stderr(), /exit command received, exiting\.\.\./);
  });

  test("without LLAMA_SERVER_ROUTER_PORT a closed stdin is ignored", async (t) => {
    const fake = await start(t, { stdin: "pipe" });
    fake.child.stdin!.end();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await fetch(`${fake.baseUrl}/health`)).status, 200);
    assert.equal(fake.child.exitCode, null);
  });

  test("SIGTERM at idle exits with 0; SIGTERM while loading kills the process", async (t) => {
    const idle = await start(t);
    idle.child.kill("SIGTERM");
    assert.deepEqual(await idle.exited, { code: 0, signal: null });
    assert.match(idle.stderr(), /I srv {4}operator\(\): operator\(\): cleaning up before exit\.\.\.$/m);

    const loading = await start(t, { knobs: { loadMs: 5000 }, waitReady: false });
    await loading.waitForLine(/load_model: loading model/);
    loading.child.kill("SIGTERM");
    assert.deepEqual(await loading.exited, { code: null, signal: "SIGTERM" });
  });

  test("SIGTERM during a stream: no more bytes, alive until the client disconnects, then exit 0", async (t) => {
    const fake = await start(t, { knobs: { tokens: -1, tokenIntervalMs: 20 }, args: ["-c", "100000"] });
    const s = openStream(fake.port, '{"messages":[{"role":"user","content":"Hi"}],"stream":true}');
    t.after(() => s.sock.destroy());
    await s.waitFor((b) => b.toString().split("data: ").length > 3);
    fake.child.kill("SIGTERM");
    await fake.waitForLine(/cleaning up before exit/);
    const after = s.bytes().length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fake.child.exitCode, null, "still alive while the stream is open");
    assert.equal(s.bytes().length, after, "nothing sent after the signal");
    assert.equal(s.closed(), false, "the connection stays open");
    assert.ok(
      !s.bytes().includes("\r\n0\r\n\r\n"),
      `the stream is not finished: ${JSON.stringify(s.bytes().toString().slice(-300))}`,
    );
    s.sock.destroy();
    assert.deepEqual(await fake.exited, { code: 0, signal: null });
    assert.match(fake.stderr(), /W srv {10}stop: cancel task, id_task = 0/);
  });

  test("a second signal during a stream exits with 1 at once", async (t) => {
    const fake = await start(t, { knobs: { tokens: -1, tokenIntervalMs: 20 } });
    const s = openStream(fake.port, '{"messages":[{"role":"user","content":"Hi"}],"stream":true}');
    t.after(() => s.sock.destroy());
    await s.waitFor((b) => b.includes("data: "));
    fake.child.kill("SIGTERM");
    await fake.waitForLine(/cleaning up before exit/);
    fake.child.kill("SIGINT");
    assert.deepEqual(await fake.exited, { code: 1, signal: null });
    assert.match(fake.stderr(), /^Received second interrupt, terminating immediately\.$/m);
    await s.waitFor(() => s.closed());
    assert.ok(!s.bytes().includes("\r\n0\r\n\r\n"), "the client sees EOF without the chunked terminator");
  });

  test("FAKE_LLAMA_IGNORE_SIGTERM ignores SIGTERM", async (t) => {
    const fake = await start(t, { knobs: { ignoreSigterm: true } });
    fake.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await fetch(`${fake.baseUrl}/health`)).status, 200);
    fake.child.kill("SIGINT");
    assert.deepEqual(await fake.exited, { code: 0, signal: null });
  });
});

describe("fake llama-server: slots and faults", () => {
  test("--parallel 1: a second request waits with no bytes until the first finishes", async (t) => {
    const fake = await start(t, { args: ["--parallel", "1"], knobs: { tokens: 20, tokenIntervalMs: 10 } });
    const a = openStream(fake.port, '{"messages":[{"role":"user","content":"A"}],"stream":true}');
    t.after(() => a.sock.destroy());
    await a.waitFor((b) => b.includes("data: "));
    const b = openStream(fake.port, '{"messages":[{"role":"user","content":"B"}],"stream":true}');
    t.after(() => b.sock.destroy());
    // wait until the fake has B in its queue (A holds the only slot)
    for (let i = 0; i < 200 && (await fake.state()).queued === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const st = await fake.state();
    assert.equal(st.queued, 1);
    assert.equal(st.inFlight, 2);
    const m = (await (await fetch(`${fake.baseUrl}/slots`)).json()) as { is_processing: boolean }[];
    assert.equal(m[0]!.is_processing, true);
    assert.equal(b.bytes().length, 0, "B has no bytes, not even headers");
    await b.waitFor((x) => x.length > 0);
    assert.ok(a.bytes().includes("data: [DONE]"), "B's first byte comes after A is done");
    await b.waitFor((x) => x.includes("\r\n0\r\n\r\n"));
  });

  test("a client disconnect mid-stream frees the slot", async (t) => {
    const fake = await start(t, { args: ["--parallel", "1"], knobs: { tokens: -1, tokenIntervalMs: 10 } });
    const a = openStream(fake.port, '{"messages":[{"role":"user","content":"A"}],"stream":true}');
    await a.waitFor((b) => b.includes("data: "));
    a.sock.destroy();
    await fake.waitForLine(/W srv {10}stop: cancel task, id_task = 0/);
    const r = await fetch(`${fake.baseUrl}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "B" }], max_tokens: 2 }),
    });
    assert.equal(r.status, 200);
    assert.equal((await fake.state()).inFlight, 0);
  });

  test("FAKE_LLAMA_CRASH_AFTER_CHUNKS: the process dies by SIGSEGV after N chunks", async (t) => {
    const fake = await start(t, { knobs: { crashAfterChunks: 2 } });
    const s = openStream(fake.port, '{"messages":[{"role":"user","content":"Hi"}],"stream":true}');
    t.after(() => s.sock.destroy());
    assert.deepEqual(await fake.exited, { code: null, signal: "SIGSEGV" });
    await s.waitFor(() => s.closed());
    const p = parseChunked(s.bytes());
    assert.equal(p.chunks.length, 2);
    assert.equal(p.terminated, false);
  });

  test("FAKE_LLAMA_STALL_AFTER_CHUNKS: stops sending but keeps the socket and the slot", async (t) => {
    const fake = await start(t, { knobs: { stallAfterChunks: 1 } });
    const s = openStream(fake.port, '{"messages":[{"role":"user","content":"Hi"}],"stream":true}');
    t.after(() => s.sock.destroy());
    await s.waitFor((b) => parseChunked(b).chunks.length === 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(parseChunked(s.bytes()).chunks.length, 1);
    assert.equal(s.closed(), false);
    assert.equal((await fake.state()).inFlight, 1);
    s.sock.destroy();
    await fake.waitForLine(/stop: cancel task/);
    assert.equal((await fake.state()).inFlight, 0);
  });

  test("FAKE_LLAMA_ERROR_AFTER_CHUNKS: the recorded mid-stream error, no [DONE]", async (t) => {
    const fake = await start(t, { knobs: { errorAfterChunks: 0 } });
    const r = await rawExchange(
      fake.port,
      httpRequest("POST", "/v1/chat/completions", '{"messages":[{"role":"user","content":"Hi"}],"stream":true}'),
    );
    const p = parseChunked(r.bytes);
    assert.equal(p.chunks.length, 2);
    assert.equal(
      p.chunks[1],
      'data: {"error":{"code":500,"message":"The model produced output that does not match the expected peg-native format","type":"server_error"}}\n\n',
    );
    assert.ok(p.terminated);
    const ns = await fetch(`${fake.baseUrl}/v1/chat/completions`, {
      method: "POST",
      body: '{"messages":[{"role":"user","content":"Hi"}]}',
    });
    assert.equal(ns.status, 500);
  });

  test("FAKE_LLAMA_STATS_FILE records which process served which request; /__fake/state counts them", async (t) => {
    const dir = tempDir(t);
    const stats = join(dir, "stats.jsonl");
    const a = await start(t, { args: ["--alias", "a"], knobs: { statsFile: stats } });
    const b = await start(t, { args: ["--alias", "b"], knobs: { statsFile: stats } });
    for (const f of [a, b, b]) {
      const r = await fetch(`${f.baseUrl}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], stream: true }),
      });
      await r.text();
    }
    const chats = readFakeStats(stats).filter((l) => l.path === "/v1/chat/completions");
    assert.deepEqual(
      chats.map((l) => [l.model, l.pid, l.stream]),
      [
        ["a", a.pid, true],
        ["b", b.pid, true],
        ["b", b.pid, true],
      ],
    );
    const st = await b.state();
    assert.equal(st.generations, 2);
    assert.equal(st.alias, "b");
    assert.equal(st.port, b.port);
  });

  test("FAKE_LLAMA_INSTANT answers at once", async (t) => {
    const fake = await start(t, { knobs: { instant: true } });
    const r = await fetch(`${fake.baseUrl}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const text = await r.text();
    assert.equal(r.headers.get("content-type"), "text/event-stream");
    assert.ok(text.endsWith("data: [DONE]\n\n"));
  });

  test("FAKE_LLAMA_RSS_MB raises the resident memory", async (t) => {
    const fake = await start(t, { knobs: { rssMb: 64 } });
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${fake.pid}/status`, "utf8"))?.[1]);
    assert.ok(rssKb > 64 * 1024, `VmRSS ${rssKb} kB`);
  });
});
