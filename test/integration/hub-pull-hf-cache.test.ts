// `pullModel(…, { hfCache: true })` / `gglib pull --hf-cache` against the local fake hub: the files land in the
// Hugging Face hub cache layout (blobs named by SHA-256, snapshot links, refs/main), where the store discovery
// (src/models/stores) lists them under the repo's name and a config `hf:` entry finds them; a second pull reuses
// the blobs; nothing is registered.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pullModel } from "../../src/hub/pull.js";
import { scanHfCache } from "../../src/models/stores/hf-cache.js";
import { resolveHfRef } from "../../src/models/stores/hf-ref.js";
import { encodeGguf } from "../support/gguf-writer.js";
import { startFakeHub, type FakeHub } from "../support/fake-hub.js";
import { tinyModelDocument } from "../support/tiny-models.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
let hub: FakeHub;
let q4: Uint8Array;
let q8: Uint8Array;
const dir = mkdtempSync(join(tmpdir(), "gglib-pull-hfcache-"));

before(async () => {
  q4 = await encodeGguf(tinyModelDocument({ name: "tiny-q4", kind: "chat", seed: 1 }));
  q8 = await encodeGguf(tinyModelDocument({ name: "tiny-q8", kind: "chat", seed: 2 }));
  hub = await startFakeHub({
    repos: [
      {
        id: "test-user/Tiny-GGUF",
        sha: "c".repeat(40),
        files: [
          { path: "Tiny-Q4_K_M.gguf", content: q4 },
          { path: "Tiny-Q8_0.gguf", content: q8 },
          { path: "README.md", content: new TextEncoder().encode("# tiny\n"), git: true },
        ],
      },
    ],
  });
});

after(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

void test("a pull into the hub cache: blobs by hash, snapshot links, refs/main; listed by the store; reused", async () => {
  const cache = join(dir, "hub");
  const r = await pullModel("test-user/Tiny-GGUF:Q8_0", { modelsDir: cache, hfCache: true, hubUrl: hub.url, env: {} });
  const repoDir = join(cache, "models--test-user--Tiny-GGUF");
  const link = join(repoDir, "snapshots", "c".repeat(40), "Tiny-Q8_0.gguf");
  assert.equal(r.name, "test-user/Tiny-GGUF:Q8_0");
  assert.equal(r.registered, false);
  assert.equal(r.modelPath, link);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), join("..", "..", "blobs", sha256(q8)), "a relative link, as huggingface_hub makes");
  assert.equal(realpathSync(link), join(realpathSync(repoDir), "blobs", sha256(q8)));
  assert.equal(readFileSync(join(repoDir, "refs", "main"), "utf8"), "c".repeat(40));
  assert.deepEqual(
    scanHfCache(cache).models.map((m) => [m.name, m.path]),
    [["test-user/Tiny-GGUF:Q8_0", link]],
  );
  const cfg = resolveHfRef("hf:test-user/Tiny-GGUF:q8_0", [cache]);
  assert.equal(cfg.ok && cfg.model.path, link);

  // the other quantization beside it; then the first again: its blob is reused, nothing downloaded
  await pullModel("test-user/Tiny-GGUF:Q4_K_M", { modelsDir: cache, hfCache: true, hubUrl: hub.url, env: {} });
  assert.deepEqual(
    scanHfCache(cache).models.map((m) => m.name),
    ["test-user/Tiny-GGUF:Q4_K_M", "test-user/Tiny-GGUF:Q8_0"],
  );
  const again = await pullModel("test-user/Tiny-GGUF:Q8_0", {
    modelsDir: cache,
    hfCache: true,
    hubUrl: hub.url,
    env: {},
  });
  assert.equal(again.transferredBytes, 0);
  assert.equal(again.files[0]!.reused, true);
});
