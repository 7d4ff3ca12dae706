// The bounded scan of a multipart body's text fields (src/proxy/http/multipart.ts).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { multipartBoundary, multipartFields } from "../../../src/proxy/http/multipart.js";

/** A body as FormData writes it (undici's serializer: the real thing, not a hand-made imitation). */
async function formBody(fill: (f: FormData) => void): Promise<{ body: Buffer; type: string }> {
  const f = new FormData();
  fill(f);
  const r = new Response(f);
  return { body: Buffer.from(await r.arrayBuffer()), type: r.headers.get("content-type")! };
}

describe("multipartFields", () => {
  test("the model field after a file part (the OpenAI Node SDK's order) and before one", async () => {
    const audio = new Uint8Array(200_000).map((_, i) => i % 256); // binary, with CR LF and dashes inside
    for (const order of ["file-first", "model-first"]) {
      const { body, type } = await formBody((f) => {
        if (order === "model-first") f.append("model", "whisper-small");
        f.append("file", new Blob([audio]), "a.wav");
        if (order === "file-first") f.append("model", "whisper-small");
        f.append("stream", "true");
      });
      const boundary = multipartBoundary(type)!;
      const got = multipartFields(body, boundary, ["model", "stream"]);
      assert.equal(got.get("model"), "whisper-small", order);
      assert.equal(got.get("stream"), "true", order);
    }
  });

  test("a file part named model is not a model name; a field over 1 KiB neither; none found → empty", async () => {
    const { body, type } = await formBody((f) => {
      f.append("model", new Blob(["x"]), "model.txt");
      f.append("prompt", "y".repeat(5000));
    });
    const b = multipartBoundary(type)!;
    assert.equal(multipartFields(body, b, ["model"]).size, 0);
    const long = await formBody((f) => f.append("model", "m".repeat(2000)));
    assert.equal(multipartFields(long.body, multipartBoundary(long.type)!, ["model"]).size, 0);
  });

  test("a quoted boundary, a preamble, a truncated body", () => {
    assert.equal(multipartBoundary('multipart/form-data; boundary="a b:c"'), "a b:c");
    assert.equal(multipartBoundary("multipart/form-data; charset=utf-8; boundary=XyZ"), "XyZ");
    assert.equal(multipartBoundary("multipart/form-data"), undefined);
    const text = 'preamble\r\n--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nqwen\r\n--XyZ--\r\n';
    assert.equal(multipartFields(Buffer.from(text), "XyZ", ["model"]).get("model"), "qwen");
    const cut = '--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nqwe';
    assert.equal(multipartFields(Buffer.from(cut), "XyZ", ["model"]).size, 0);
    assert.equal(multipartFields(Buffer.from("not multipart at all"), "XyZ", ["model"]).size, 0);
  });
});
