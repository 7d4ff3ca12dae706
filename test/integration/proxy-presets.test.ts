/**
 * Presets and multipart routing on the fake llama-server (which records each body as received): a config file's
 * preset through the `openai` client (its changes seen upstream, on the model's one process), the official
 * `ollama` client's create() / show() / list() / chat() / delete() on a preset kept in the registry, the older
 * Modelfile text, the refusals, and a multipart request routed by its `model` form field.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { Ollama } from "ollama";
import { Registry } from "../../src/models/registry.js";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy } from "../../src/proxy/index.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, readFakeStats, writeFakeModel } from "../support/fake-llama.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

async function rig(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), "gglib-presets-"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const a = writeFakeModel(dir, "a");
  const b = writeFakeModel(dir, "b");
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(
    configPath,
    [
      "models:",
      `  a: {path: ${JSON.stringify(a)}}`,
      `  b: {path: ${JSON.stringify(b)}}`,
      "presets:",
      "  a-cold:",
      "    model: a",
      "    set: {temperature: 0, max_tokens: 7, chat_template_kwargs: {enable_thinking: false}}",
      "    strip: [tools, tool_choice]",
      "    system: Be brief.",
      "",
    ].join("\n"),
  );
  const statsFile = join(dir, "stats.jsonl");
  const runner = new LlamaServerRunner({
    binaryPath: FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    healthIntervalMs: 0,
    stopGraceMs: 2_000,
    env: fakeLlamaEnv({ loadMs: 20, statsFile, statsBodies: true }),
    basePort: 20_000 + Math.floor(Math.random() * 20_000),
  });
  let spawns = 0;
  runner.on((e) => {
    if (e.type === "spawned") spawns++;
  });
  const registry = Registry.open({ dbPath: join(dir, "registry.db") });
  const proxy = await startProxy({ port: 0, memoryBudget: "64GiB", watchConfig: false, configPath, runner, registry });
  t.after(async () => {
    await proxy.close(2_000);
    registry.close();
  });
  const received = (path: string) => readFakeStats(statsFile).filter((l) => l.path === path && l.method === "POST");
  const lastBody = (path: string) => JSON.parse(received(path).at(-1)!.body!) as Record<string, unknown>;
  return { proxy, url: proxy.url, dir, registry, received, lastBody, spawns: () => spawns, a, b };
}

describe("presets on the fake llama-server", { timeout: 60_000 }, () => {
  test("a config preset through the openai client: rewritten upstream, on its model's process; listed", async (t) => {
    const { url, lastBody, received, spawns } = await rig(t);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "none", maxRetries: 0 });
    const r = await client.chat.completions.create({
      model: "a-cold",
      messages: [
        { role: "system", content: "You help." },
        { role: "user", content: "hi" },
      ],
      temperature: 1.3,
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      // @ts-expect-error llama-server's extension
      chat_template_kwargs: { other: 1 },
    });
    assert.ok(r.choices[0]!.message.content);
    const body = lastBody("/v1/chat/completions");
    assert.equal(body.model, "a");
    assert.equal(body.temperature, 0);
    assert.equal(body.max_tokens, 7);
    assert.deepEqual(body.chat_template_kwargs, { other: 1, enable_thinking: false });
    assert.equal(body.tools, undefined);
    assert.deepEqual(body.messages, [
      { role: "system", content: "Be brief.\n\nYou help." },
      { role: "user", content: "hi" },
    ]);
    // the model itself: its body as sent, on the same process (one spawn)
    const plain = { model: "a", messages: [{ role: "user", content: "yo" }], temperature: 1.3 };
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(plain),
    });
    assert.equal(res.status, 200);
    await res.text();
    assert.deepEqual(lastBody("/v1/chat/completions"), plain);
    const [first, second] = received("/v1/chat/completions");
    assert.equal(first!.pid, second!.pid);
    assert.equal(spawns(), 1);
    const models = await client.models.list();
    const entry = models.data.find((m) => m.id === "a-cold") as unknown as {
      meta: { preset: Record<string, unknown> };
    };
    assert.equal(entry.meta.preset.model, "a");
    assert.deepEqual(entry.meta.preset.strip, ["tools", "tool_choice"]);
    // an unknown name still gets the 404 that lists the models
    const miss = await client.chat.completions.create({ model: "nope", messages: [] }).catch((e: unknown) => e);
    assert.equal((miss as { status: number }).status, 404);
    assert.match((miss as Error).message, /a, a-cold, b/, "the 404 names the presets too");
  });

  test("ollama create() / show() / list() / chat() / delete() on a preset kept in the registry", async (t) => {
    const { url, lastBody, registry } = await rig(t);
    const ollama = new Ollama({ host: url });
    const created = await ollama.create({
      model: "coder",
      from: "a",
      system: "You write code.",
      parameters: { temperature: 0.25, num_predict: 33, stop: ["END"] },
    });
    assert.equal(created.status, "success");
    assert.deepEqual(
      registry.listPresets().map((p) => [p.name, p.model]),
      [["coder", "a"]],
    );
    const shown = await ollama.show({ model: "coder" });
    assert.match(shown.modelfile, /^FROM a$/m);
    assert.match(shown.modelfile, /^PARAMETER temperature 0\.25$/m);
    assert.match(shown.modelfile, /^PARAMETER num_predict 33$/m);
    assert.match(shown.modelfile, /^SYSTEM You write code\.$/m);
    assert.equal(shown.system, "You write code.");
    assert.match(shown.parameters, /temperature\s+0\.25/);
    const list = await ollama.list();
    assert.ok(
      list.models.some((m) => m.name === "coder:latest"),
      JSON.stringify(list.models.map((m) => m.name)),
    );
    const chat = await ollama.chat({ model: "coder", messages: [{ role: "user", content: "sort a list" }] });
    assert.equal(chat.model, "coder");
    const body = lastBody("/v1/chat/completions");
    assert.equal(body.model, "a");
    assert.equal(body.temperature, 0.25);
    assert.equal(body.max_tokens, 33);
    assert.deepEqual(body.stop, ["END"]);
    assert.deepEqual((body.messages as unknown[])[0], { role: "system", content: "You write code." });
    // a preset over a preset: the changes add up, on the same model
    await ollama.create({ model: "coder-hot", from: "coder", parameters: { temperature: 0.9 } });
    const over = await ollama.show({ model: "coder-hot" });
    assert.match(over.modelfile, /^FROM a$/m);
    assert.match(over.modelfile, /^PARAMETER temperature 0\.9$/m);
    assert.match(over.modelfile, /^PARAMETER num_predict 33$/m);
    // a copy of a preset is a preset with the same changes
    await ollama.copy({ source: "coder", destination: "coder-2" });
    assert.equal(registry.presets.get("coder-2")?.system, "You write code.");
    assert.deepEqual(registry.presets.get("coder-2")?.set, registry.presets.get("coder")?.set);
    await ollama.delete({ model: "coder-2" });
    await ollama.delete({ model: "coder" });
    await ollama.delete({ model: "coder-hot:latest" });
    assert.deepEqual(registry.listPresets(), []);
    assert.ok(!(await ollama.list()).models.some((m) => m.name.startsWith("coder")));
    await assert.rejects(ollama.show({ model: "coder" }), /not found/);
    // a config file's preset is not deleted over the API
    await assert.rejects(ollama.delete({ model: "a-cold" }), /config file/);
  });

  test("/api/create: the older Modelfile text, a GGUF path, and the refusals with their reasons", async (t) => {
    const { url, b, registry } = await rig(t);
    const create = (body: unknown) =>
      fetch(`${url}/api/create`, { method: "POST", body: JSON.stringify(body) }).then(async (r) => ({
        status: r.status,
        text: await r.text(),
      }));
    const old = await create({ model: "terse", modelfile: 'FROM a\nPARAMETER top_k 5\nSYSTEM """Short answers."""\n' });
    assert.equal(old.status, 200, old.text);
    assert.match(old.text, /"status":"success"/);
    assert.deepEqual(registry.presets.get("terse"), {
      name: "terse",
      source: "registry",
      model: "a",
      system: "Short answers.",
      systemMode: "default",
      set: { top_k: 5 },
    });
    // FROM the path of a GGUF already in the catalog: the preset runs on that model
    const byPath = await create({ model: "b-cold", from: b, parameters: { temperature: 0 }, stream: false });
    assert.equal(byPath.status, 200, byPath.text);
    assert.equal(registry.presets.get("b-cold")?.model, "b");
    const refusals: [unknown, number, RegExp][] = [
      [{ model: "x", from: "a", template: "{{ .Prompt }}" }, 400, /TEMPLATE cannot be set/],
      [{ model: "x", modelfile: "FROM a\nADAPTER /tmp/l.gguf" }, 400, /ADAPTER cannot be applied/],
      [{ model: "x", from: "a", quantize: "q4_K_M" }, 400, /quantizing is not supported/],
      [{ model: "x", from: "a", parameters: { num_ctx: 4096 } }, 400, /num_ctx is fixed when the model loads/],
      [{ model: "x", from: "nope" }, 404, /FROM "nope": no such model/],
      [{ model: "a", from: "b", system: "s" }, 409, /is the name of a model/],
      [{ model: "a-cold", from: "b", system: "s" }, 409, /preset of the config file/],
      [{ model: "x", from: "./rel.gguf" }, 400, /absolute path/],
    ];
    for (const [body, status, re] of refusals) {
      const r = await create(body);
      assert.equal(r.status, status, `${JSON.stringify(body)} → ${r.text}`);
      assert.match(JSON.parse(r.text).error, re);
    }
  });

  test("a multipart request is routed by its model form field and forwarded unchanged", async (t) => {
    const { url, received } = await rig(t);
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(50_000).map((_, i) => (i * 7) % 256)]), "a.wav");
    form.append("model", "b");
    form.append("response_format", "json");
    const wire = new Response(form);
    const type = wire.headers.get("content-type")!;
    const bytes = Buffer.from(await wire.arrayBuffer());
    const r = await fetch(`${url}/v1/audio/transcriptions`, {
      method: "POST",
      headers: { "content-type": type },
      body: bytes,
    });
    await r.text();
    const got = received("/v1/audio/transcriptions");
    assert.equal(got.length, 1, `status ${r.status}`);
    assert.equal(got[0]!.model, "b");
    assert.equal(got[0]!.contentType, type);
    assert.ok(Buffer.from(got[0]!.body!, "latin1").equals(bytes), "the body arrives byte for byte");
    // any multipart request, whatever its path (llama-server's answer is its own)
    const other = new FormData();
    other.append("image", new Blob(["png"]), "x.png");
    other.append("model", "a");
    const r2 = await fetch(`${url}/v1/images/edits`, { method: "POST", body: other });
    await r2.text();
    assert.equal(received("/v1/images/edits")[0]?.model, "a");
    // no model field: the 400 says where to put it
    const none = new FormData();
    none.append("file", new Blob(["x"]), "a.wav");
    const bad = await fetch(`${url}/v1/audio/transcriptions`, { method: "POST", body: none });
    assert.equal(bad.status, 400);
    const err = (await bad.json()) as { error: { code: string; message: string } };
    assert.equal(err.error.code, "model_missing");
    assert.match(err.error.message, /"model" form field/);
  });
});
