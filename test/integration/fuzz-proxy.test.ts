/**
 * Fuzz: malformed HTTP at `gglib proxy` (the real command, a child process) over raw sockets (node:net): invalid
 * JSON, wrong types, invalid UTF-8, bodies over the 32 MiB limit, huge headers, path tricks under /upstream/,
 * unknown methods, HTTP/1.0, pipelining, request smuggling. Every one gets a 4xx in OpenAI's error shape (or a clean
 * close where HTTP itself fails), the proxy keeps answering /health after each, and its RSS stays flat over a few
 * thousand bad requests. Slow headers (slowloris) are cut by the header timeout: with a short timeout on an
 * in-process proxy by default, with the command's default 30 s under GGLIB_LONG_TESTS=1.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProxy } from "../../src/proxy/index.js";
import { writeFakeModel } from "../support/fake-llama.js";
import { startProxyProcess, type ProxyProcess } from "../support/proxy-harness.js";

const LONG = process.env.GGLIB_LONG_TESTS === "1";

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection (or reset it). */
  closed: boolean;
  raw: string;
}

/** Parses consecutive HTTP/1.x responses (content-length or chunked bodies). */
function parseResponses(buf: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", pos);
    if (headEnd < 0) break;
    const head = buf.subarray(pos, headEnd).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "");
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const l of head.slice(1)) {
      const i = l.indexOf(":");
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let p = headEnd + 4;
    let body: Buffer;
    if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"]);
      if (buf.length < p + n) break; // not all here yet
      body = buf.subarray(p, p + n);
      p += n;
    } else if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      const parts: Buffer[] = [];
      for (;;) {
        const le = buf.indexOf("\r\n", p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString("latin1"), 16);
        p = le + 2;
        if (!size) {
          p += 2;
          break;
        }
        parts.push(buf.subarray(p, p + size));
        p += size + 2;
      }
      body = Buffer.concat(parts);
    } else {
      body = buf.subarray(p);
      p = buf.length;
    }
    out.push({ status: Number(m[1]), headers, body: body.toString("utf8") });
    pos = p;
  }
  return out;
}

/** Sends raw bytes; collects what comes back until the server closes, `expect` responses arrived, or timeoutMs. */
function exchange(
  port: number,
  data: (string | Buffer)[],
  o: { expect?: number; timeoutMs?: number; gapMs?: number; end?: boolean } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let closed = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      resolve({ responses: parseResponses(buf), closed, raw: buf.toString("latin1").slice(0, 2000) });
    };
    const timer = setTimeout(finish, o.timeoutMs ?? 10_000);
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      if (o.expect !== undefined && parseResponses(Buffer.concat(chunks)).length >= o.expect) finish();
    });
    sock.on("error", () => {
      closed = true;
      finish();
    });
    sock.on("close", () => {
      closed = true;
      finish();
    });
    sock.on("connect", () => {
      void (async () => {
        for (const d of data) {
          if (sock.destroyed) return;
          sock.write(d);
          if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
        }
        if (o.end && !sock.destroyed) sock.end();
      })();
    });
  });
}

/** An error reply in OpenAI's shape. llama-server's own errors (passed through) carry a numeric code. */
function assertOpenAiError(r: RawResponse, what: string): { message: string; type: string; code: string | number } {
  let body: { error?: { message?: unknown; type?: unknown; code?: unknown } };
  try {
    body = JSON.parse(r.body) as typeof body;
  } catch {
    assert.fail(`${what}: the ${r.status} body is not JSON: ${r.body.slice(0, 300)}`);
  }
  assert.ok(body.error, `${what}: {"error":…}: ${r.body.slice(0, 300)}`);
  assert.equal(typeof body.error.message, "string", `${what}: error.message`);
  assert.ok((body.error.message as string).length > 0, `${what}: a message`);
  assert.equal(typeof body.error.type, "string", `${what}: error.type`);
  assert.ok(typeof body.error.code === "string" || typeof body.error.code === "number", `${what}: error.code`);
  return body.error as { message: string; type: string; code: string | number };
}

async function assertHealthy(p: { url: string }, what: string): Promise<void> {
  const r = await fetch(`${p.url}/health`);
  assert.equal(r.status, 200, `the proxy still answers /health after: ${what}`);
  await r.arrayBuffer();
}

const req = (method: string, path: string, body?: string | Buffer, extra = "", version = "1.1"): Buffer => {
  const b = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head =
    `${method} ${path} HTTP/${version}\r\nHost: x\r\nConnection: close\r\n${extra}` +
    (body !== undefined ? `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n` : "") +
    "\r\n";
  return Buffer.concat([Buffer.from(head, "latin1"), b]);
};

interface Case {
  name: string;
  data: (string | Buffer)[];
  /** Allowed statuses; default any 4xx. "close": a clean close without a response is also fine. */
  status?: number[];
  close?: boolean;
}

/** Malformed percent-encoding in a model name in the path (was a 500 from decodeURIComponent's URIError, fixed in 55cf7ad). */
const MALFORMED_PERCENT: Case[] = [
  { name: "/upstream/<malformed %>/health", data: [req("GET", "/upstream/%E0%A4%A/health")], status: [400, 404] },
  { name: "/upstream/%/health", data: [req("GET", "/upstream/%/health")], status: [400, 404] },
  { name: "/api/logs/<malformed %>", data: [req("GET", "/api/logs/%ZZ")], status: [400, 404] },
];

function cases(): Case[] {
  const chat = "/v1/chat/completions";
  const bad: Case[] = [
    { name: "invalid JSON", data: [req("POST", chat, '{"model":"a","messages":[')], status: [400] },
    { name: "empty body", data: [req("POST", chat, "")], status: [400] },
    { name: "JSON array", data: [req("POST", chat, "[1,2]")], status: [400] },
    { name: "JSON null", data: [req("POST", chat, "null")], status: [400] },
    { name: "JSON string", data: [req("POST", chat, '"a"')], status: [400] },
    { name: "model: number", data: [req("POST", chat, '{"model":123,"messages":[]}')], status: [400] },
    { name: "model: array", data: [req("POST", chat, '{"model":["a"],"messages":[]}')], status: [400] },
    { name: "model: object", data: [req("POST", chat, '{"model":{"name":"a"},"messages":[]}')], status: [400] },
    { name: "model: null", data: [req("POST", chat, '{"model":null}')], status: [400] },
    { name: "model: unknown", data: [req("POST", chat, '{"model":"nope","messages":[]}')], status: [404] },
    {
      name: "model: huge unknown name",
      data: [req("POST", chat, JSON.stringify({ model: "x".repeat(100_000) }))],
      status: [404],
    },
    { name: "__proto__ model", data: [req("POST", chat, '{"__proto__":{"model":"a"},"messages":[]}')], status: [400] },
    {
      name: "model: invalid UTF-8",
      data: [
        req("POST", chat, Buffer.from([...Buffer.from('{"model":"a'), 0xff, 0xfe, ...Buffer.from('","messages":[]}')])),
      ],
      // refused before the name is looked up: JSON must be UTF-8 (llama-server would answer 500)
      status: [400],
    },
    {
      name: "body: invalid UTF-8 bytes",
      data: [req("POST", chat, Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1]))],
      status: [400],
    },
    { name: "body: lone surrogate escape", data: [req("POST", chat, '{"model":"\\ud800"}')], status: [404] },
    { name: "body: deep nesting", data: [req("POST", chat, "[".repeat(200_000) + "]".repeat(200_000))], status: [400] },
    {
      // valid JSON that names a model: refused before it reaches llama-server, whose parser would overflow its stack
      name: "body: deep nesting under a model",
      data: [req("POST", chat, `{"model":"a","messages":[],"x":${"[".repeat(200_000)}${"]".repeat(200_000)}}`)],
      status: [400],
    },
    {
      name: "declared body over 32 MiB",
      data: [
        req("POST", chat, undefined, `Content-Type: application/json\r\nContent-Length: ${33 * 1024 * 1024}\r\n`),
        Buffer.alloc(65_536, 0x20),
      ],
      status: [413],
    },
    {
      name: "negative content-length",
      data: ["POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"],
      status: [400],
    },
    {
      name: "non-numeric content-length",
      data: ["POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"],
      status: [400],
    },
    {
      name: "request smuggling: content-length + transfer-encoding",
      data: [
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
      ],
      status: [400],
    },
    {
      name: "huge header (100 KB)",
      data: [`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`],
      status: [400, 431],
      close: true,
    },
    {
      name: "10 000 headers",
      data: [
        `GET /v1/models HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 10_000 }, (_, i) => `X-H${i}: v`).join("\r\n")}\r\n\r\n`,
      ],
      status: [400, 431],
      close: true,
    },
    {
      name: "header with a NUL byte",
      data: ["GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n"],
      status: [400],
    },
    {
      name: "garbage request line",
      data: ["\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u01fc\u0003\u0003 hello\r\n\r\n"],
      status: [400],
      close: true,
    },
    {
      name: "unknown method FOO",
      data: ["FOO /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"],
      status: [400, 405, 501],
      close: true,
    },
    { name: "PROPFIND", data: [req("PROPFIND", "/v1/models")], status: [400, 404, 405] },
    { name: "DELETE without a model", data: [req("DELETE", chat)], status: [400] },
    {
      name: "CONNECT",
      data: ["CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"],
      status: [400, 405],
      close: true,
    },
    { name: "HTTP/2 preface", data: ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"], status: [400, 505], close: true },
    { name: "HTTP/1.0 bad JSON", data: [req("POST", chat, "{", "", "1.0")], status: [400] },
    {
      name: "absolute-form URL to another host",
      data: [req("POST", "http://evil.example/v1/chat/completions", '{"model":"nope"}')],
      status: [400, 404],
    },
    { name: "asterisk-form", data: [req("GET", "*")], status: [400, 404] },
    { name: "path without a slash", data: [req("GET", "v1/models")], status: [400, 404], close: true },
    // /upstream/ path tricks
    { name: "/upstream/ without a model", data: [req("GET", "/upstream/")], status: [400] },
    { name: "/upstream/../health", data: [req("GET", "/upstream/../health")], status: [400, 404] },
    { name: "/upstream/..%2fapi%2fstatus", data: [req("GET", "/upstream/..%2fapi%2fstatus")], status: [400, 404] },
    { name: "/upstream/%2e%2e/health", data: [req("GET", "/upstream/%2e%2e/health")], status: [400, 404] },
    { name: "/upstream/nope%00/health", data: [req("GET", "/upstream/nope%00/health")], status: [400, 404] },
    { name: "/api/logs/../../etc/passwd", data: [req("GET", "/api/logs/..%2f..%2fetc%2fpasswd")], status: [400, 404] },
    { name: "/models/load with bad JSON", data: [req("POST", "/models/load", "{")], status: [400] },
    { name: "/models/load with model: 1", data: [req("POST", "/models/load", '{"model":1}')], status: [400] },
    {
      name: "/models/unload of an unknown model",
      data: [req("POST", "/models/unload", '{"model":"zz"}')],
      status: [404],
    },
    {
      name: "/models/unload of a model not running",
      data: [req("POST", "/models/unload", '{"model":"a"}')],
      status: [400],
    },
    { name: "?model= unknown", data: [req("GET", "/props?model=nope")], status: [404] },
    { name: "?model=<malformed %>", data: [req("GET", "/props?model=%E0%A4%A")], status: [400, 404] },
  ];
  return bad;
}

describe("fuzz: malformed HTTP at gglib proxy", { timeout: 60_000 }, () => {
  let p: ProxyProcess;

  async function check(cs: Case[]): Promise<string[]> {
    const port = Number(new URL(p.url).port);
    const failures: string[] = [];
    for (const c of cs) {
      const ex = await exchange(port, c.data, { expect: 1 });
      const r = ex.responses[0];
      if (!r) {
        if (!(c.close && ex.closed))
          failures.push(`${c.name}: no response (closed: ${ex.closed}) ${ex.raw.slice(0, 200)}`);
      } else {
        const ok = c.status ? c.status.includes(r.status) : r.status >= 400 && r.status < 500;
        if (!ok)
          failures.push(
            `${c.name}: status ${r.status} (want ${c.status?.join("/") ?? "4xx"}): ${r.body.slice(0, 200)}`,
          );
        else {
          try {
            assertOpenAiError(r, c.name);
          } catch (e) {
            failures.push((e as Error).message);
          }
        }
      }
      await assertHealthy(p, c.name);
    }
    return failures;
  }

  test("every malformed request gets a 4xx in OpenAI's error shape (or a clean close); the proxy never crashes", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const failures = await check(cases());
    assert.deepEqual(failures, [], failures.join("\n"));
    assert.equal(p.llamaPids().length, 0, "no bad request loaded a model");
  });

  test("a malformed percent-encoding in the model part of /upstream/{model}/… or /api/logs/{model} is a 400, not a 500", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const failures = await check(MALFORMED_PERCENT);
    assert.deepEqual(failures, [], failures.join("\n"));
  });

  test("wrong types for messages/stream/max_tokens with a real model: llama-server's answer or a 4xx, never a 5xx; `stream` is read the same way by both", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const port = Number(new URL(p.url).port);
    const bodies = [
      { model: "a", messages: "x" },
      { model: "a", messages: [{ role: 1, content: 2 }] },
      { model: "a", messages: {} },
      { model: "a", messages: [{ role: "user", content: "x" }], stream: "true" },
      { model: "a", messages: [{ role: "user", content: "x" }], stream: 1 },
      { model: "a", messages: [{ role: "user", content: "x" }], stream: null },
      { model: "a", messages: [{ role: "user", content: "x" }], max_tokens: "many" },
      { model: "a", messages: [{ role: "user", content: "x" }], max_tokens: -1 },
      { model: "a" },
    ];
    for (const b of bodies) {
      const ex = await exchange(port, [req("POST", "/v1/chat/completions", JSON.stringify(b))], { expect: 1 });
      const r = ex.responses[0];
      const what = JSON.stringify(b);
      assert.ok(r, `${what}: a response`);
      assert.ok(r.status < 500, `${what}: ${r.status} ${r.body.slice(0, 200)}`);
      if (r.status >= 400) assertOpenAiError(r, what);
      else {
        // only a JSON `true` makes a stream, for the proxy and for llama-server alike
        assert.doesNotMatch(r.headers["content-type"] ?? "", /event-stream/, `${what} is not a stream`);
        assert.equal((JSON.parse(r.body) as { model: string }).model, "a");
      }
      await assertHealthy(p, what);
    }
  });

  test("300 random mutations (1–2 each) of valid requests (bytes flipped, cut, CR/LF and NUL inserted): never a 500, never a crash", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const port = Number(new URL(p.url).port);
    const seeds = [
      req(
        "POST",
        "/v1/chat/completions",
        JSON.stringify({ model: "a", messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
      ),
      req("GET", "/v1/models"),
      req("POST", "/upstream/a/tokenize", JSON.stringify({ content: "hi" })),
      req("POST", "/models/unload", JSON.stringify({ model: "a" })),
    ];
    const seed = Number(process.env.GGLIB_FUZZ_SEED ?? Date.now() % 100_000);
    let x = seed;
    const rand = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    const bad: string[] = [];
    const statuses = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(seeds[rand(seeds.length)]!);
      let m: Buffer = b;
      for (let k = 0, n = 1 + rand(2); k < n; k++) {
        const at = rand(m.length);
        switch (rand(4)) {
          case 0:
            m[at] = rand(256);
            break;
          case 1:
            m = m.subarray(0, Math.max(1, at));
            break;
          case 2:
            m = Buffer.concat([
              m.subarray(0, at),
              Buffer.from(["\r\n", "\n", "\u0000", ":", " ", "%", "\r\n\r\n"][rand(7)]!),
              m.subarray(at),
            ]);
            break;
          default:
            m = Buffer.concat([m.subarray(0, at), m.subarray(Math.min(m.length, at + 1 + rand(8)))]);
        }
      }
      // end: a request cut short gets EOF (not a 3 s wait for bytes that never come)
      const ex = await exchange(port, [m], { expect: 1, timeoutMs: 3_000, end: true });
      const r = ex.responses[0];
      const key = r
        ? `${r.status}${r.status >= 400 ? ` ${/"code":"?([\w-]+)/.exec(r.body)?.[1] ?? ""}` : ""}`
        : ex.closed
          ? "closed"
          : "no answer (timeout)";
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (r && r.status >= 500)
        bad.push(
          `#${i} (seed ${seed}): ${r.status} ${r.body.slice(0, 200)} for ${JSON.stringify(m.toString("latin1").slice(0, 200))}`,
        );
      if (r && r.status >= 400) {
        try {
          assertOpenAiError(r, `#${i}`);
        } catch (e) {
          bad.push(
            `#${i} (seed ${seed}): ${(e as Error).message} for ${JSON.stringify(m.toString("latin1").slice(0, 300))}; got ${JSON.stringify(ex.raw.slice(0, 300))}`,
          );
        }
      }
    }
    await assertHealthy(p, "300 mutations");
    t.diagnostic(`seed ${seed}: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.deepEqual(bad, []);
  });

  test("an HTTP/1.1 request without a Host header gets a 400 in OpenAI's shape", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const failures = await check([
      {
        name: "POST without Host",
        data: ["POST /v1/chat/completions HTTP/1.1\r\nConnection: close\r\nContent-Length: 1\r\n\r\n{"],
        status: [400],
      },
      { name: "GET without Host", data: ["GET /v1/nothing HTTP/1.1\r\nConnection: close\r\n\r\n"], status: [400, 404] },
    ]);
    assert.deepEqual(failures, [], failures.join("\n"));
  });

  test("a chunked body over 32 MiB is cut with 413; HTTP/1.0 and pipelined requests are answered in order", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const port = Number(new URL(p.url).port);
    // 33 MiB, chunked (no content-length to check up front)
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const frames: (string | Buffer)[] = [
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for (let i = 0; i < 33; i++) frames.push(`${chunk.length.toString(16)}\r\n`, chunk, "\r\n");
    frames.push("0\r\n\r\n");
    const big = await exchange(port, frames, { expect: 1, timeoutMs: 20_000 });
    assert.equal(big.responses[0]?.status, 413, big.raw.slice(0, 300));
    assert.equal(assertOpenAiError(big.responses[0], "chunked 33 MiB").code, "request_too_large");
    await assertHealthy(p, "33 MiB body");

    const h10 = await exchange(port, ["GET /v1/models HTTP/1.0\r\n\r\n"], { expect: 1 });
    assert.equal(h10.responses[0]?.status, 200);
    assert.match(h10.responses[0].body, /"object":"list"/);

    const piped = await exchange(
      port,
      [
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
          "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{" +
          'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"model":"zz"}' +
          "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ],
      { expect: 4 },
    );
    assert.deepEqual(
      piped.responses.map((r) => r.status),
      [200, 400, 404, 200],
      piped.raw.slice(0, 1500),
    );
    assertOpenAiError(piped.responses[1]!, "pipelined bad JSON");
    assertOpenAiError(piped.responses[2]!, "pipelined unknown model");
  });

  test("RSS stays flat over 2 × 3 000 bad requests", async (t) => {
    p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
    const port = Number(new URL(p.url).port);
    const mix = cases().filter((c) => !/32 MiB|deep nesting|huge|10 000/.test(c.name));
    const run = async (n: number) => {
      let i = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (i < n) {
            const c = mix[i++ % mix.length]!;
            await exchange(port, c.data, { expect: 1, timeoutMs: 5_000 });
          }
        }),
      );
    };
    await run(300); // warm-up: JIT, buffers, lazily loaded modules
    const rssBefore = p.rssKb();
    const fdBefore = p.fdCount();
    const t0 = Date.now();
    await run(3_000);
    const ms = Date.now() - t0;
    const rssMid = p.rssKb();
    await run(3_000);
    await assertHealthy(p, "6 000 bad requests");
    const rssAfter = p.rssKb();
    const fdAfter = p.fdCount();
    const mib = (kb: number) => Math.round(kb / 1024);
    t.diagnostic(
      `2 × 3000 bad requests (first round ${ms} ms); proxy RSS ${mib(rssBefore)} → ${mib(rssMid)} → ${mib(rssAfter)} MiB, fds ${fdBefore} → ${fdAfter}`,
    );
    // flat: the heap settles after the first round (GC is lazy), the second round does not keep growing it
    assert.ok(rssAfter - rssBefore < 96 * 1024, `RSS grew by ${mib(rssAfter - rssBefore)} MiB`);
    assert.ok(
      rssAfter - rssMid < 32 * 1024,
      `RSS still growing in the second round: ${mib(rssMid)} → ${mib(rssAfter)} MiB`,
    );
    assert.ok(fdAfter <= fdBefore + 2, `fds ${fdBefore} → ${fdAfter}`);
  });

  test("slowloris: headers sent a byte at a time are cut by the header timeout (408 in OpenAI's shape), other clients are served meanwhile", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gglib-fuzz-slow-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFakeModel(dir, "a");
    const proxy = await startProxy({
      port: 0,
      modelsDir: dir,
      memoryBudget: "64GiB",
      headersTimeoutMs: 1_000,
      requestTimeoutMs: 3_000,
      runnerOptions: { pidsDir: null },
    });
    t.after(() => proxy.close(1_000));
    const port = proxy.port;
    const head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(400);
    const t0 = Date.now();
    const slow = Array.from({ length: 5 }, () =>
      exchange(
        port,
        [...head].map((ch) => ch),
        { gapMs: 50, timeoutMs: 15_000, expect: 1 },
      ),
    );
    // meanwhile the proxy serves others
    await new Promise((r) => setTimeout(r, 300));
    await assertHealthy(proxy, "slow clients connected");
    const res = await Promise.all(slow);
    const ms = Date.now() - t0;
    for (const r of res) {
      assert.ok(r.responses[0] || r.closed, "answered or closed");
      if (r.responses[0]) {
        assert.equal(r.responses[0].status, 408, r.raw);
        assert.equal(assertOpenAiError(r.responses[0], "slowloris").code, "request_timeout");
      }
    }
    assert.ok(ms < 10_000, `cut within the timeout + check interval (${ms} ms), not after the whole 20 s drip`);
    await assertHealthy(proxy, "slowloris");
  });

  test(
    "slowloris against the command's default header timeout (30 s)",
    { skip: LONG ? false : "GGLIB_LONG_TESTS=1 only", timeout: 120_000 },
    async (t) => {
      const proc = await startProxyProcess(t, { models: ["a"] });
      const port = Number(new URL(proc.url).port);
      const t0 = Date.now();
      const r = await exchange(
        port,
        ["GET /v1/models HTTP/1.1\r\nHost: x\r\n", ...Array.from({ length: 120 }, (_, i) => `X-${i}: y\r\n`)],
        { gapMs: 500, timeoutMs: 70_000, expect: 1 },
      );
      const ms = Date.now() - t0;
      assert.ok(r.responses[0]?.status === 408 || r.closed, r.raw);
      assert.ok(ms < 45_000, `cut after ${ms} ms`);
      await assertHealthy(proc, "slowloris");
    },
  );
});
