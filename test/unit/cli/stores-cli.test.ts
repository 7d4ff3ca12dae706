/**
 * `gglib models list/show/rm` over the other tools' stores (in-process, every store in a temp folder through the
 * tools' own variables and HOME): where each model lives, `--skip-store`, the Ollama params shown, and `rm`
 * refusing with the owning tool named while the store stays as it was.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../../src/cli/main.js";
import { writeHfCacheRepo, writeOllamaModel } from "../../support/tool-stores.js";
import { writeTinyModel } from "../../support/tiny-models.js";

const VARS = ["GGLIB_DATA_DIR", "HOME", "OLLAMA_MODELS", "HF_HUB_CACHE", "LLAMA_CACHE", "GGLIB_STORES", "NO_COLOR"];

async function gglib(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = {
    out: process.stdout.write.bind(process.stdout),
    err: process.stderr.write.bind(process.stderr),
    exit: process.exitCode,
  };
  const savedEnv = Object.fromEntries(VARS.map((k) => [k, process.env[k]]));
  let stdout = "";
  let stderr = "";
  for (const k of VARS) delete process.env[k];
  Object.assign(process.env, env);
  process.stdout.write = (c: string | Uint8Array) => ((stdout += String(c)), true);
  process.stderr.write = (c: string | Uint8Array) => ((stderr += String(c)), true);
  try {
    const code = await main(["node", "gglib", ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    for (const k of VARS) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
    process.exitCode = saved.exit;
  }
}

function treeState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(`${p} ${statSync(p).size} ${statSync(p).mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

void test("gglib models list/show/rm over Ollama's store and the HF cache", async (t) => {
  const d = mkdtempSync(join(tmpdir(), "gglib-stores-cli-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  mkdirSync(join(d, "src"));
  const a = await writeTinyModel(join(d, "src"), { name: "tiny-a", kind: "chat", seed: 1 });
  const ollama = join(d, "ollama");
  const hub = join(d, "hub");
  writeOllamaModel(ollama, {
    model: "qwen3",
    tag: "8b",
    gguf: a,
    params: { temperature: 0.6 },
    template: "{{ .Prompt }}",
  });
  writeHfCacheRepo(hub, "org/Tiny-GGUF", { "Tiny-Q4_K_M.gguf": a });
  const env = {
    GGLIB_DATA_DIR: join(d, "data"),
    HOME: join(d, "home"),
    OLLAMA_MODELS: ollama,
    HF_HUB_CACHE: hub,
    LLAMA_CACHE: join(d, "llama"),
    NO_COLOR: "1",
  };
  const before = treeState(ollama);

  const list = await gglib(env, "models", "list", "--json");
  assert.equal(list.code, 0, list.stderr);
  const j = JSON.parse(list.stdout) as {
    models: { name: string; source: string; sizeBytes?: number; store?: { root: string; params?: unknown } }[];
    stores: { store: string; root: string }[];
  };
  assert.deepEqual(
    j.models.map((m) => [m.name, m.source]),
    [
      ["qwen3:8b", "ollama"],
      ["org/Tiny-GGUF:Q4_K_M", "hf-cache"],
    ],
  );
  assert.deepEqual(j.models[0]!.store?.params, { temperature: 0.6 });
  assert.equal(j.models[0]!.sizeBytes, statSync(a).size, "the blob's size");
  assert.deepEqual(j.stores, [
    { store: "ollama", root: ollama },
    { store: "hf-cache", root: hub },
  ]);
  const text = await gglib(env, "models", "list");
  assert.match(text.stdout, /qwen3:8b\s+ollama/);
  assert.match(text.stdout, /Stores read \(in place, never changed\): ollama .*ollama, hf-cache .*hub/);

  const skipped = await gglib(env, "models", "list", "--json", "--skip-store", "ollama");
  assert.deepEqual(
    (JSON.parse(skipped.stdout) as { models: { name: string }[] }).models.map((m) => m.name),
    ["org/Tiny-GGUF:Q4_K_M"],
  );
  const badSkip = await gglib(env, "models", "list", "--skip-store", "olama");
  assert.notEqual(badSkip.code, 0);
  assert.match(
    badSkip.stderr,
    /--skip-store: "olama" is not a store; the stores are ollama, lmstudio, hf-cache, llama-cache/,
  );
  const none = await gglib({ ...env, GGLIB_STORES: "none" }, "models", "list", "--json");
  assert.deepEqual((JSON.parse(none.stdout) as { models: unknown[] }).models, []);

  const show = await gglib(env, "models", "show", "qwen3:8b");
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /store: {4}.*ollama \(.*manifests\/registry\.ollama\.ai\/library\/qwen3\/8b\); read-only/);
  assert.match(show.stdout, /params: {3}\{"temperature":0\.6\} \(the store's; not applied\)/);

  const rm = await gglib(env, "models", "rm", "qwen3:8b");
  assert.notEqual(rm.code, 0);
  assert.match(rm.stderr, /"qwen3:8b" belongs to Ollama .*`ollama rm qwen3:8b`/);
  assert.deepEqual(treeState(ollama), before, "nothing in Ollama's store changed");
});
