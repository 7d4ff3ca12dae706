/**
 * What Ollama clients such as Codex's `--oss` do against the proxy (issue 23), on the fake llama-server: read
 * /api/version (Codex refuses below 0.13.4), list /api/tags (`a:latest`), "pull" a listed model (must answer
 * success in Ollama's shape, not 501), then send that listed name to the OpenAI, Anthropic and Ollama routes.
 */
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaServerRunner } from "../../src/runner/llama-server-runner.js";
import { startProxy } from "../../src/proxy/index.js";
import { OLLAMA_COMPAT_VERSION } from "../../src/proxy/routes/ollama/index.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, writeFakeModel } from "../support/fake-llama.js";
import { killQuietly, pidsWithArg } from "../support/procs.js";

async function rig(t: TestContext): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-ollama-names-"));
  t.after(() => {
    for (const pid of pidsWithArg(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  const path = writeFakeModel(dir, "agent");
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, `models:\n  agent:\n    path: ${JSON.stringify(path)}\n`);
  const runner = new LlamaServerRunner({
    binaryPath: FAKE_LLAMA_SERVER,
    pidsDir: join(dir, "pids"),
    healthIntervalMs: 0,
    stopGraceMs: 2_000,
    env: fakeLlamaEnv({ loadMs: 20 }),
    basePort: 20_000 + Math.floor(Math.random() * 20_000),
  });
  const proxy = await startProxy({ port: 0, memoryBudget: "64GiB", watchConfig: false, configPath, runner });
  t.after(() => proxy.close(2_000));
  return proxy.url;
}

const post = (url: string, body: unknown): Promise<Response> =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** Semantic version a.b.c → comparable number. */
const level = (v: string): number => {
  const [a = 0, b = 0, c = 0] = v.split(".").map(Number);
  return a * 1e6 + b * 1e3 + c;
};

describe("Ollama clients' names and calls (issue 23)", { timeout: 60_000 }, () => {
  test("/api/version reports a level Codex accepts (>= 0.13.4)", async (t) => {
    const url = await rig(t);
    const v = (await (await fetch(`${url}/api/version`)).json()) as { version: string };
    assert.equal(v.version, OLLAMA_COMPAT_VERSION);
    assert.ok(level(v.version) >= level("0.13.4"), v.version);
  });

  test("the name /api/tags lists is accepted on every route", async (t) => {
    const url = await rig(t);
    const tags = (await (await fetch(`${url}/api/tags`)).json()) as { models: { name: string }[] };
    assert.deepEqual(
      tags.models.map((m) => m.name),
      ["agent:latest"],
    );
    const name = tags.models[0]!.name;
    const msgs = [{ role: "user", content: "hi" }];
    const cases: [string, unknown][] = [
      ["/v1/chat/completions", { model: name, messages: msgs, max_tokens: 4 }],
      ["/v1/responses", { model: name, input: "hi", max_output_tokens: 4 }],
      ["/v1/messages", { model: name, messages: msgs, max_tokens: 4 }],
      ["/v1/completions", { model: name, prompt: "hi", max_tokens: 4 }],
      ["/api/chat", { model: name, messages: msgs, stream: false }],
      ["/api/generate", { model: name, prompt: "hi", stream: false }],
      ["/api/show", { model: name }],
    ];
    for (const [path, body] of cases) {
      const res = await post(`${url}${path}`, body);
      const text = await res.text();
      assert.equal(res.status, 200, `${path}: ${text}`);
    }
    // case-insensitive too, and other tags are still not found
    assert.equal((await post(`${url}/v1/chat/completions`, { model: "Agent:LATEST", messages: msgs })).status, 200);
    const other = await post(`${url}/v1/chat/completions`, { model: "agent:q8_0", messages: msgs });
    assert.equal(other.status, 404);
    assert.match(await other.text(), /Available models: agent/);
  });

  test("POST /api/pull of a model that is here answers success in Ollama's shape (streamed and not)", async (t) => {
    const url = await rig(t);
    for (const model of ["agent", "agent:latest", "AGENT"]) {
      const res = await post(`${url}/api/pull`, { model, stream: true });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /application\/x-ndjson/);
      const lines = (await res.text())
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { status: string; digest?: string; total?: number; completed?: number });
      assert.deepEqual(
        lines.map((l) => l.status.replace(/^pulling [0-9a-f]{12}$/, "pulling <digest>")),
        ["pulling manifest", "pulling <digest>", "verifying sha256 digest", "writing manifest", "success"],
      );
      const layer = lines[1]!;
      assert.match(layer.digest ?? "", /^sha256:[0-9a-f]{64}$/);
      assert.ok((layer.total ?? 0) > 0 && layer.completed === layer.total);
    }
    const plain = await post(`${url}/api/pull`, { name: "agent:latest", stream: false });
    assert.equal(plain.status, 200);
    assert.deepEqual(await plain.json(), { status: "success" });
    // a model that is not here still needs gglib pull (none wired in this proxy: no models folder)
    const missing = await post(`${url}/api/pull`, { model: "llama3.2" });
    assert.equal(missing.status, 501);
    assert.match(await missing.text(), /--models-dir/);
  });
});
