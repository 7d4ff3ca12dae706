/**
 * The other tools' stores under a running `gglib proxy` (a real child process, the fake llama-server), every
 * store pointed at a temp folder through the tools' own variables and HOME (never the real home): the models
 * are listed with their source in /v1/models and /api/tags, answer chat requests by their store's names, are
 * refused by /api/delete with the owning tool named, and a store changing under the proxy (a pull, a removal, a
 * broken manifest) is picked up by the watch without a restart. Nothing in a store is written.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { postJson, proxyDir, startProxyProcess } from "../support/proxy-harness.js";
import { waitFor } from "../support/procs.js";
import { writeHfCacheRepo, writeLmStudioModel, writeOllamaModel } from "../support/tool-stores.js";
import { writeTinyModel } from "../support/tiny-models.js";

interface Listed {
  id: string;
  aliases: string[];
  meta: { source: string; path: string };
}

function treeState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = statSync(p, { throwIfNoEntry: false });
      out.push(`${p} ${st?.size ?? "dangling"} ${st?.mtimeMs ?? ""}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

void test("a proxy serves Ollama, LM Studio and HF cache models in place, refuses to delete them, follows a pull", async (t) => {
  const dir = proxyDir(t, []);
  const src = join(dir, "src");
  mkdirSync(src);
  const a = await writeTinyModel(src, { name: "tiny-a", kind: "chat", seed: 1 });
  const b = await writeTinyModel(src, { name: "tiny-b", kind: "chat", seed: 2 });
  const home = join(dir, "home");
  const ollama = join(dir, "ollama");
  const hub = join(dir, "hub");
  writeOllamaModel(ollama, { model: "qwen3", tag: "8b", gguf: a, params: { temperature: 0.6 } });
  writeOllamaModel(ollama, { model: "qwen3", tag: "latest", gguf: a });
  writeHfCacheRepo(hub, "org/Tiny-GGUF", { "Tiny-Q4_K_M.gguf": b });
  // LM Studio at its default place under HOME
  writeLmStudioModel(join(home, ".lmstudio", "models"), "lmstudio-community/B-GGUF", { "B-Q8_0.gguf": b });
  const before = { ollama: treeState(ollama), hub: treeState(hub) };

  const p = await startProxyProcess(t, {
    dir,
    env: {
      HOME: home,
      OLLAMA_MODELS: ollama,
      HF_HUB_CACHE: hub,
      LLAMA_CACHE: join(dir, "llama-cache"),
      GGLIB_STORES: "",
    },
  });
  const list = async (): Promise<Listed[]> =>
    ((await (await fetch(`${p.url}/v1/models`)).json()) as { data: Listed[] }).data;
  const models = await list();
  assert.deepEqual(
    models.map((m) => [m.id, m.aliases, m.meta.source]),
    [
      ["qwen3:8b", ["qwen3"], "ollama"],
      ["lmstudio-community/B-GGUF:Q8_0", ["lmstudio-community/B-GGUF"], "lmstudio"],
      ["org/Tiny-GGUF:Q4_K_M", ["org/Tiny-GGUF"], "hf-cache"],
    ],
  );
  assert.match(models[0]!.meta.path, /ollama\/blobs\/sha256-[0-9a-f]{64}$/);

  // Ollama's clients name it `qwen3:latest`; OpenAI clients by its store name
  for (const model of ["qwen3:latest", "org/Tiny-GGUF:Q4_K_M"]) {
    const r = await postJson(p.url, "/v1/chat/completions", { model, messages: [{ role: "user", content: "hi" }] });
    assert.equal(r.status, 200, `${model}: ${await r.clone().text()}`);
    await r.text();
  }
  const tags = (await (await fetch(`${p.url}/api/tags`)).json()) as { models: { name: string; source: string }[] };
  assert.deepEqual(
    tags.models.map((m) => [m.name, m.source]),
    [
      ["qwen3:8b", "ollama"],
      ["lmstudio-community/B-GGUF:Q8_0", "lmstudio"],
      ["org/Tiny-GGUF:Q4_K_M", "hf-cache"],
    ],
  );

  // read-only: /api/delete names the owner, and nothing in the store changed
  const del = await fetch(`${p.url}/api/delete`, { method: "DELETE", body: JSON.stringify({ model: "qwen3:8b" }) });
  assert.equal(del.status, 400);
  assert.match(
    ((await del.json()) as { error: string }).error,
    /"qwen3:8b" belongs to Ollama \(.*ollama\); gglib reads other tools' stores and never changes them: remove it with `ollama rm qwen3:8b`/,
  );
  const hubDel = await fetch(`${p.url}/api/delete`, {
    method: "DELETE",
    body: JSON.stringify({ model: "org/Tiny-GGUF" }),
  });
  assert.equal(hubDel.status, 400);
  assert.match(((await hubDel.json()) as { error: string }).error, /belongs to the Hugging Face cache/);
  assert.deepEqual(treeState(ollama), before.ollama, "the Ollama store is untouched");
  assert.deepEqual(treeState(hub), before.hub, "the hub cache is untouched");

  // a pull in Ollama while the proxy runs: the watch reloads (no restart, no polling)
  writeOllamaModel(ollama, { model: "me/new", tag: "1b", gguf: b });
  assert.ok(
    await waitFor(async () => (await list()).some((m) => m.id === "me/new:1b"), 10_000, 200),
    "the pulled model appears",
  );
  // a broken manifest: a warning in the reload's record, the other models still served
  const broken = join(ollama, "manifests", "registry.ollama.ai", "library", "broken");
  mkdirSync(broken, { recursive: true });
  writeFileSync(join(broken, "latest"), "{ half a manifest");
  // `ollama rm`: its manifest goes, the model goes
  rmSync(join(ollama, "manifests", "registry.ollama.ai", "me"), { recursive: true });
  assert.ok(
    await waitFor(async () => !(await list()).some((m) => m.id === "me/new:1b"), 10_000, 200),
    "the removed model disappears",
  );
  const cfg = (await (await fetch(`${p.url}/api/config`)).json()) as {
    lastReload: { ok: boolean; trigger: string; warnings: string[] };
  };
  assert.equal(cfg.lastReload.ok, true);
  assert.match(cfg.lastReload.trigger, /^store changed: ollama/);
  assert.ok(
    cfg.lastReload.warnings.some((w) => /the manifest of broken .* is unusable: not JSON/.test(w)),
    cfg.lastReload.warnings.join("\n"),
  );
  assert.deepEqual(
    (await list()).map((m) => m.id),
    ["qwen3:8b", "lmstudio-community/B-GGUF:Q8_0", "org/Tiny-GGUF:Q4_K_M"],
  );
  assert.equal(p.child.exitCode, null, "the proxy is still running");
});
