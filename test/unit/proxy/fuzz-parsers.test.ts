/**
 * Property-based tests (fast-check) of the parsers on the proxy's request path and the chat's stream path:
 * - parseJsonBody: any bytes give an object or a 400 HttpError (never another error), `model`/`stream` read as sent;
 * - resolveModelName: only catalog names come out; exact names and aliases win; case-insensitive only when unique;
 * - upstreamRequestHeaders / downstreamResponseHeaders: credentials, hop-by-hop, Connection-named (and llama-server's
 *   CORS) headers never cross the proxy;
 * - cmdlineMatches: the orphan sweep never takes another program for its llama-server;
 * - errorBody / sseErrorEvent: always OpenAI's shape / a parseable SSE error event followed by [DONE];
 * - ChatStreamParser: the same SSE bytes split at any boundaries (also inside UTF-8 sequences) give the same events;
 * - ThinkSplitter: `<think>` tags split anywhere give the same thinking and answer text.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createParser } from "eventsource-parser";
import { HttpError } from "../../../src/core/errors.js";
import { parseJsonBody } from "../../../src/proxy/http/json.js";
import { resolveModelName } from "../../../src/proxy/catalog.js";
import { errorBody } from "../../../src/proxy/http/errors.js";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "../../../src/proxy/http/headers.js";
import { sseErrorEvent } from "../../../src/proxy/http/sse.js";
import { cmdlineMatches } from "../../../src/process/pidfile.js";
import { ChatStreamParser, type ChatStreamEvent } from "../../../src/chat/stream.js";
import { ThinkSplitter, THINK_TAGS, type SplitPiece } from "../../../src/chat/think-splitter.js";

const RUNS = process.env.GGLIB_LONG_TESTS === "1" ? 5_000 : 300;

/** Cut points (sorted, unique, inside 1..len-1) for splitting a sequence of `len` units. */
function cuts(len: number): fc.Arbitrary<number[]> {
  if (len < 2) return fc.constant([]);
  return fc
    .uniqueArray(fc.integer({ min: 1, max: len - 1 }), { maxLength: Math.min(len - 1, 40) })
    .map((a) => a.sort((x, y) => x - y));
}

function splitAt<T extends { slice(a: number, b?: number): T }>(s: T & { length: number }, at: number[]): T[] {
  const out: T[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(s.slice(prev, c));
    prev = c;
  }
  out.push(s.slice(prev));
  return out;
}

// text with the characters that matter to the parsers: tag pieces, newlines, SSE field syntax, multi-byte UTF-8
const tricky = fc
  .array(
    fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(
        "<",
        ">",
        "/",
        "think",
        "<think>",
        "</think>",
        "</thi",
        "nk>",
        "\n",
        "\n\n",
        "\r\n",
        " ",
        "data:",
        ": ",
        "é",
        "日本",
        "🙂",
        "\u0000",
        "[DONE]",
      ),
    ),
    { maxLength: 12 },
  )
  .map((a) => a.join(""));

describe("proxy request parsing (properties)", () => {
  test("parseJsonBody: any bytes → a JSON object or a 400 HttpError; model and stream come back as sent", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const v = parseJsonBody(Buffer.from(bytes));
          assert.ok(typeof v === "object" && v !== null && !Array.isArray(v));
        } catch (e) {
          assert.ok(e instanceof HttpError, `not a HttpError: ${String(e)}`);
          assert.equal(e.status, 400);
          assert.equal(e.code, "invalid_json");
        }
      }),
      { numRuns: RUNS * 3 },
    );
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.jsonValue(),
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }),
        (model, stream, rest) => {
          const obj = { ...rest, model, stream };
          const v = parseJsonBody(Buffer.from(JSON.stringify(obj)));
          assert.deepEqual(v.model, JSON.parse(JSON.stringify(model)));
          assert.deepEqual(v.stream, JSON.parse(JSON.stringify(stream)));
        },
      ),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue().filter((v) => typeof v !== "object" || v === null || Array.isArray(v)),
          fc.constant(null),
        ),
        (v) => {
          assert.throws(
            () => parseJsonBody(Buffer.from(JSON.stringify(v))),
            (e: unknown) => e instanceof HttpError && e.status === 400,
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("resolveModelName: only catalog names; exact name, then alias; case-insensitive only when unambiguous", () => {
    const name = fc.string({ minLength: 1, maxLength: 6 });
    const catalog = fc.uniqueArray(fc.record({ name, aliases: fc.array(name, { maxLength: 3 }) }), {
      selector: (m) => m.name,
      minLength: 1,
      maxLength: 6,
    });
    fc.assert(
      fc.property(catalog, name, (models, requested) => {
        const names = new Set(models.map((m) => m.name));
        const r = resolveModelName(models, requested);
        if (r !== undefined) assert.ok(names.has(r), "a catalog name");
        // an exact name always wins
        for (const m of models) assert.equal(resolveModelName(models, m.name), m.name);
        if (names.has(requested)) assert.equal(r, requested);
        else {
          const owners = models.filter((m) => m.aliases.includes(requested));
          if (owners.length > 0) assert.equal(r, owners[0]!.name, "the first model with that alias");
          else {
            const lower = requested.toLowerCase();
            const hits = new Set(
              models
                .filter((m) => m.name.toLowerCase() === lower || m.aliases.some((a) => a.toLowerCase() === lower))
                .map((m) => m.name),
            );
            assert.equal(r, hits.size === 1 ? [...hits][0] : undefined);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  test("upstreamRequestHeaders: no credential, hop-by-hop or Connection-named header goes upstream; the rest passes unchanged", () => {
    const never = [
      "authorization",
      "x-api-key",
      "proxy-authorization",
      "proxy-authenticate",
      "proxy-connection",
      "connection",
      "keep-alive",
      "transfer-encoding",
      "trailer",
      "trailers",
      "upgrade",
      "te",
      "host",
      "expect",
      "accept-encoding",
    ];
    const headerName = fc.oneof(
      fc.constantFrom(...never, "content-type", "x-custom", "cookie", "user-agent"),
      fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
    );
    const value = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 3 }),
    );
    fc.assert(
      fc.property(
        fc.dictionary(headerName, value, { maxKeys: 10 }),
        fc.option(fc.nat(1_000_000), { nil: undefined }),
        (h, len) => {
          const out = upstreamRequestHeaders(h, len);
          const named = new Set(
            [h.connection]
              .flat()
              .filter((x): x is string => typeof x === "string")
              .flatMap((c) => c.split(","))
              .map((t) => t.trim().toLowerCase()),
          );
          for (const k of Object.keys(out)) {
            if (k === "content-length") continue;
            assert.ok(!never.includes(k), `${k} went upstream`);
            assert.ok(!named.has(k) || k === "close" || k === "keep-alive", `${k} is named in Connection`);
          }
          assert.equal(out["content-length"], len === undefined ? undefined : String(len));
          for (const [k, v] of Object.entries(h)) {
            if (never.includes(k) || named.has(k) || k === "content-length") continue;
            assert.equal(out[k], Array.isArray(v) ? v.join(", ") : v, `${k} passes unchanged`);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("downstreamResponseHeaders: llama-server's hop-by-hop and CORS headers never reach the client; the rest passes unchanged", () => {
    const never = [
      "connection",
      "keep-alive",
      "proxy-authenticate",
      "proxy-connection",
      "transfer-encoding",
      "upgrade",
      "te",
      "trailer",
      "trailers",
      "access-control-allow-origin",
      "access-control-allow-credentials",
      "access-control-allow-methods",
      "access-control-allow-headers",
    ];
    const headerName = fc.oneof(
      fc.constantFrom(...never, "content-type", "content-length", "x-request-id", "server"),
      fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
    );
    fc.assert(
      fc.property(
        fc.dictionary(
          headerName,
          fc.oneof(fc.string({ maxLength: 12 }), fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 2 })),
          { maxKeys: 10 },
        ),
        (h) => {
          const out = downstreamResponseHeaders(h);
          const named = new Set(
            [h.connection]
              .flat()
              .filter((x): x is string => typeof x === "string")
              .flatMap((c) => c.split(","))
              .map((t) => t.trim().toLowerCase()),
          );
          for (const k of Object.keys(out)) {
            assert.ok(!never.includes(k), `${k} reached the client`);
            assert.ok(!named.has(k), `${k} is named in Connection`);
          }
          for (const [k, v] of Object.entries(h)) if (!never.includes(k) && !named.has(k)) assert.deepEqual(out[k], v);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("cmdlineMatches (the orphan sweep's identity check): true only for the binary in the first 3 argv entries, and then only on its own --port", () => {
    const bin = "/opt/llama/bin/llama-server";
    const arg = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("--port", "8080", "9000", "node", bin, "-m"));
    fc.assert(
      fc.property(
        fc.array(arg, { maxLength: 10 }),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        (argv, port) => {
          const r = cmdlineMatches(argv, [bin], port);
          const runsIt = argv.slice(0, 3).includes(bin);
          if (!runsIt) assert.equal(r, false, "another program is never ours");
          else if (port === undefined) assert.equal(r, true);
          else {
            const i = argv.indexOf("--port");
            assert.equal(r, i >= 0 && argv[i + 1] === String(port));
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("errorBody and sseErrorEvent: OpenAI's shape for any status, code and message; SSE events parse and end with [DONE]", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 400, max: 599 }),
        fc.string({ maxLength: 20 }),
        tricky,
        fc.constantFrom("/v1/chat/completions", "/v1/completions", "/completion", "/v1/messages", "/v1/responses"),
        (status, code, message, path) => {
          const b = JSON.parse(errorBody(status, code, message)) as {
            error: { message: string; type: string; code: string };
          };
          assert.deepEqual([b.error.message, b.error.code], [message, code]);
          assert.equal(typeof b.error.type, "string");
          const events: { event?: string; data: string }[] = [];
          const p = createParser({ onEvent: (e) => events.push({ event: e.event, data: e.data }) });
          p.feed(sseErrorEvent(path, status, code, message));
          if (path.startsWith("/v1/messages")) {
            assert.equal(events.length, 1);
            assert.equal(events[0]!.event, "error");
            assert.equal((JSON.parse(events[0]!.data) as { error: { message: string } }).error.message, message);
          } else {
            assert.equal(events.length, 2, "the error, then [DONE]");
            assert.equal((JSON.parse(events[0]!.data) as { error: { message: string } }).error.message, message);
            assert.equal(events[1]!.data, "[DONE]");
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

/** Adjacent thinking/answer texts merged (how they are split into events is not part of the contract). */
function normalize(events: ChatStreamEvent[]): ChatStreamEvent[] {
  const out: ChatStreamEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if ((e.type === "thinking" || e.type === "answer") && last && last.type === e.type)
      out[out.length - 1] = { type: e.type, text: last.text + e.text };
    else out.push(e);
  }
  return out;
}

function mergePieces(pieces: SplitPiece[]): SplitPiece[] {
  const out: SplitPiece[] = [];
  for (const p of pieces) {
    const last = out[out.length - 1];
    if (last && last.kind === p.kind) out[out.length - 1] = { kind: p.kind, text: last.text + p.text };
    else out.push(p);
  }
  return out;
}

/** One SSE event of a chat stream, as llama-server or the proxy writes it. */
const sseEvent: fc.Arbitrary<string> = fc.oneof(
  tricky.map(
    (t) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: t } }], object: "chat.completion.chunk" })}\n\n`,
  ),
  tricky.map(
    (t) =>
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { reasoning_content: t } }], object: "chat.completion.chunk" })}\n\n`,
  ),
  fc
    .constantFrom("stop", "length")
    .map((r) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: r }] })}\n\n`),
  fc
    .record({ p: fc.nat(999), c: fc.nat(999) })
    .map(
      ({ p, c }) =>
        `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: p, completion_tokens: c }, timings: { predicted_per_second: 12.5 } })}\n\n`,
    ),
  fc.integer({ min: 0, max: 100 }).map((n) => `: loading some-model ${n}%\n\n`),
  fc.constant(": waiting for room to load some-model\n\n"),
  tricky.map((m) => `data: ${JSON.stringify({ error: { message: m, type: "server_error", code: 500 } })}\n\n`),
  fc.constant("data: [DONE]\n\n"),
  fc.constant("event: ping\ndata: {}\r\n\r\n"),
);

describe("chat stream parsers (properties)", () => {
  test("ChatStreamParser: the same SSE bytes split anywhere (inside UTF-8 sequences too) give the same events", () => {
    const stream = fc.array(sseEvent, { minLength: 1, maxLength: 12 }).map((evs) => Buffer.from(evs.join(""), "utf8"));
    fc.assert(
      fc.property(
        stream.chain((bytes) => fc.tuple(fc.constant(bytes), cuts(bytes.length), fc.boolean())),
        ([bytes, at, forcedOpen]) => {
          const whole = new ChatStreamParser({ forcedOpen });
          const expected = normalize([...whole.feed(bytes.toString("utf8")), ...whole.end()]);
          const split = new ChatStreamParser({ forcedOpen });
          const dec = new TextDecoder();
          const got: ChatStreamEvent[] = [];
          for (const piece of splitAt(bytes, at)) got.push(...split.feed(dec.decode(piece, { stream: true })));
          got.push(...split.feed(dec.decode()), ...split.end());
          assert.deepEqual(normalize(got), expected);
          assert.equal(split.done, whole.done);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("ThinkSplitter: tags split anywhere give the same thinking and answer text", () => {
    const text = fc
      .tuple(
        fc.constantFrom(...THINK_TAGS),
        fc.constantFrom("", " ", "\n"),
        tricky,
        fc.constantFrom("", "\n\n", " "),
        tricky,
        fc.boolean(),
      )
      .map(([tag, lead, thinking, gap, answer, withTags]) =>
        withTags ? `${lead}${tag.open}${thinking}${tag.close}${gap}${answer}` : `${lead}${thinking}${answer}`,
      );
    fc.assert(
      fc.property(
        text.chain((s) => fc.tuple(fc.constant(s), cuts(s.length), fc.boolean())),
        ([s, at, forcedOpen]) => {
          const whole = new ThinkSplitter({ forcedOpen });
          const expected = mergePieces([...whole.push(s), ...whole.end()]);
          const split = new ThinkSplitter({ forcedOpen });
          const got: SplitPiece[] = [];
          for (const piece of splitAt(s, at)) got.push(...split.push(piece));
          got.push(...split.end());
          assert.deepEqual(mergePieces(got), expected, JSON.stringify({ s, at }));
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });

  test("ThinkSplitter: <think>T</think>A (T, A free of tags) gives thinking T and answer A, whatever the split", () => {
    const plain = fc.string({ maxLength: 30 }).filter((s) => !/[<>]/.test(s) && s.trim() === s);
    fc.assert(
      fc.property(
        fc.tuple(plain, plain).chain(([t, a]) => {
          const s = `<think>${t}</think>\n\n${a}`;
          return fc.tuple(fc.constant({ t, a, s }), cuts(s.length));
        }),
        ([{ t, a, s }, at]) => {
          const sp = new ThinkSplitter();
          const pieces: SplitPiece[] = [];
          for (const piece of splitAt(s, at)) pieces.push(...sp.push(piece));
          pieces.push(...sp.end());
          const thinking = pieces
            .filter((p) => p.kind === "thinking")
            .map((p) => p.text)
            .join("");
          const answer = pieces
            .filter((p) => p.kind === "answer")
            .map((p) => p.text)
            .join("");
          assert.equal(thinking, t);
          assert.equal(answer, a);
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });
});
