import { test } from "node:test";
import assert from "node:assert/strict";
import { modelEndpoints, REDACTED, redactServer } from "../../../src/proxy/effective-config.js";

test("secret-looking env values and flag values are redacted; the rest is kept", () => {
  const s = redactServer({
    modelPath: "/m/a.gguf",
    env: { CUDA_VISIBLE_DEVICES: "0", HF_TOKEN: "hf_abc", MY_API_KEY: "k" },
    extraArgs: ["--temp", "0.6", "--api-key", "sk-1", "--hf-token=hf_x", "--api-key-file", "/k", "-c", "4096"],
  });
  assert.deepEqual(s.env, { CUDA_VISIBLE_DEVICES: "0", HF_TOKEN: REDACTED, MY_API_KEY: REDACTED });
  assert.deepEqual(s.extraArgs, [
    "--temp",
    "0.6",
    "--api-key",
    REDACTED,
    `--hf-token=${REDACTED}`,
    "--api-key-file",
    REDACTED,
    "-c",
    "4096",
  ]);
  assert.equal(s.modelPath, "/m/a.gguf");
});

test("endpoints a model supports follow its launch settings", () => {
  assert.deepEqual(modelEndpoints({ modelPath: "x" }), ["chat"]);
  assert.deepEqual(modelEndpoints({ modelPath: "x", embeddings: true, extraArgs: ["--reranking"] }), [
    "chat",
    "embeddings",
    "rerank",
  ]);
  assert.deepEqual(modelEndpoints({ modelPath: "x", embeddings: true, reranking: true }), [
    "chat",
    "embeddings",
    "rerank",
  ]);
});
