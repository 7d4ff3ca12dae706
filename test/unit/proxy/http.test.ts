// The proxy's HTTP helpers (src/proxy/http/): headers, errors, SSE error events, JSON bodies.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { errorBody } from "../../../src/proxy/http/errors.js";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "../../../src/proxy/http/headers.js";
import { sseErrorEvent } from "../../../src/proxy/http/sse.js";
import { parseJsonBody } from "../../../src/proxy/http/json.js";
import fc from "fast-check";
import { createParser } from "eventsource-parser";
import { HttpError } from "../../../src/core/errors.js";
import { RUNS, tricky } from "../../support/fuzz.js";

describe("proxy HTTP helpers", () => {
  test("credentials and hop-by-hop headers never go upstream; llama-server's CORS never comes back", () => {
    const h = upstreamRequestHeaders(
      {
        authorization: "Bearer secret",
        "x-api-key": "secret",
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        host: "proxy:8080",
        "content-length": "999",
        "accept-encoding": "gzip",
        "content-type": "application/json",
        "x-request-id": "r1",
        origin: "http://127.0.0.1:8080",
        "sec-fetch-site": "same-origin",
        "sec-fetch-mode": "cors",
        "sec-fetch-dest": "empty",
      },
      12,
    );
    assert.deepEqual(h, { "content-type": "application/json", "x-request-id": "r1", "content-length": "12" });
    const d = downstreamResponseHeaders({
      "access-control-allow-origin": "",
      "keep-alive": "timeout=5",
      "content-type": "text/event-stream",
      server: "llama.cpp",
    });
    assert.deepEqual(d, { "content-type": "text/event-stream", server: "llama.cpp" });
  });

  test("errors in OpenAI's shape; SSE error events in the endpoint's dialect", () => {
    assert.deepEqual(JSON.parse(errorBody(404, "model_not_found", "no")), {
      error: { message: "no", type: "not_found_error", code: "model_not_found" },
    });
    assert.match(
      sseErrorEvent("/v1/chat/completions", 502, "x", "boom"),
      /^data: \{"error":\{"message":"boom".*\n\ndata: \[DONE\]\n\n$/s,
    );
    assert.match(sseErrorEvent("/v1/messages", 502, "x", "boom"), /^event: error\ndata: \{"type":"error"/);
  });

  test("malformed JSON is a 400 (llama-server would answer 500)", () => {
    assert.throws(
      () => parseJsonBody(Buffer.from('{"model": "a",')),
      (e: unknown) => (e as { status: number }).status === 400,
    );
    assert.throws(
      () => parseJsonBody(Buffer.alloc(0)),
      (e: unknown) => (e as { status: number }).status === 400,
    );
    assert.throws(
      () => parseJsonBody(Buffer.from("[1]")),
      (e: unknown) => (e as { status: number }).status === 400,
    );
    assert.deepEqual(parseJsonBody(Buffer.from('{"model":"a","stream":true,"messages":[]}')), {
      model: "a",
      stream: true,
      messages: [],
    });
  });
});

describe("proxy HTTP helpers (properties)", () => {
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
