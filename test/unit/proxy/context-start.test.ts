/**
 * The context cache through startProxy on the in-memory runner (test/support/fake-runner.ts): no llama-server
 * process. Each fake process is answered by a small in-process server standing in for llama-server's chat and slot
 * endpoints (slot files written into the --slot-save-path the cache gave the launch). A → B → A: A's KV cache is
 * saved at the swap and restored before its next request, which reuses it. This is what the runner port gives
 * startProxy (sweep, binaryInfo): the cache works on any runner, not only a LlamaServerRunner.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerConfig } from "../../../src/core/config.js";
import type { ContextStatus, ProxyEvent } from "../../../src/proxy/api-types.js";
import { startProxy, type RunningProxy } from "../../../src/proxy/index.js";
import { FakeRunner, type FakeUpstream } from "../../support/fake-runner.js";
import { writeFakeModel } from "../../support/fake-llama.js";

/** Bytes per token in a fake slot file (any size will do; the cache hashes what is written). */
const TOKEN_BYTES = 16;

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length > 0 ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>) : {};
}

function send(res: ServerResponse, status: number, json: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(json));
}

/**
 * One slot of llama-server, in memory: a chat's prompt (its words) is what the slot holds; a prompt that starts
 * with what the slot holds reuses it (`cache_n`). Save writes the held words into the save path, restore reads them.
 */
async function slotServer(config: ServerConfig): Promise<FakeUpstream> {
  let held: string[] = [];
  let task: number | undefined;
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      const action = url.searchParams.get("action");
      if (req.method === "GET" && url.pathname === "/props") return send(res, 200, { total_slots: 1 });
      if (req.method === "GET" && url.pathname === "/slots")
        return send(res, 200, [
          { id: 0, n_prompt_tokens: held.length, ...(task !== undefined ? { id_task: task } : {}) },
        ]);
      if (req.method === "POST" && url.pathname === "/slots/0" && config.slotSavePath) {
        const file = join(config.slotSavePath, String((await body(req)).filename));
        if (action === "save") {
          const data = Buffer.alloc(held.length * TOKEN_BYTES);
          data.write(held.join(" "));
          writeFileSync(file, data);
          return send(res, 200, { id_slot: 0, n_saved: held.length, n_written: data.length });
        }
        if (action === "restore") {
          const data = readFileSync(file);
          held = data.toString("utf8").replace(/\0+$/, "").split(" ");
          return send(res, 200, { id_slot: 0, n_restored: held.length, n_read: data.length });
        }
      }
      if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
        const messages = (await body(req)).messages as { content: string }[];
        const words = messages.flatMap((m) => m.content.split(" "));
        let reused = 0;
        while (reused < held.length && held[reused] === words[reused]) reused++;
        held = words;
        task = (task ?? 0) + 1;
        return send(res, 200, {
          object: "chat.completion",
          choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
          usage: { prompt_tokens: words.length, completion_tokens: 1, total_tokens: words.length + 1 },
          timings: { cache_n: reused, prompt_n: words.length - reused, predicted_n: 1 },
        });
      }
      send(res, 404, { error: { message: `no ${req.method} ${url.pathname}` } });
    })().catch((e: unknown) => send(res, 500, { error: { message: String(e) } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

async function start(t: TestContext): Promise<{ proxy: RunningProxy; runner: FakeRunner }> {
  const dir = mkdtempSync(join(tmpdir(), "gglib-context-start-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const configPath = join(dir, "gglib.yaml");
  const a = writeFakeModel(dir, "a");
  const b = writeFakeModel(dir, "b");
  writeFileSync(configPath, `maxModels: 1\nmodels:\n  a:\n    path: ${a}\n  b:\n    path: ${b}\n`);
  const runner = new FakeRunner();
  runner.upstream = slotServer;
  // a llama-server that can save its slots
  runner.binary = {
    ...runner.binary,
    caps: { ...runner.binary.caps, version: "fake", flags: new Set(["--slot-save-path", "--no-cache-idle-slots"]) },
  };
  const proxy = await startProxy({
    port: 0,
    configPath,
    runner,
    memoryBudget: "64GiB",
    watchConfig: false,
    contextCacheDir: join(dir, "kv-context"),
    contextCacheSaveAll: true,
  });
  t.after(() => proxy.close(1_000));
  return { proxy, runner };
}

async function chat(p: RunningProxy, model: string, content: string): Promise<{ cacheN: number }> {
  const r = await fetch(`${p.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content }] }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return { cacheN: ((await r.json()) as { timings: { cache_n: number } }).timings.cache_n };
}

async function contextOf(p: RunningProxy, model: string): Promise<ContextStatus | undefined> {
  const st = (await (await fetch(`${p.url}/api/status`)).json()) as {
    models: { name: string; context?: ContextStatus }[];
  };
  return st.models.find((m) => m.name === model)?.context;
}

const LONG = Array.from({ length: 300 }, (_, i) => `w${i}`).join(" ");

test("on the in-memory runner, startProxy's context cache saves A at the swap and restores it for A's next request", async (t) => {
  const { proxy, runner } = await start(t);
  assert.ok("dir" in proxy.report.contextCache, "the cache is on (the runner says which binary it runs)");
  const seen: ProxyEvent[] = [];
  proxy.controller.on((e) => seen.push(e));

  assert.equal((await chat(proxy, "a", LONG)).cacheN, 0);
  await chat(proxy, "b", "hi"); // maxModels 1: a is stopped, its slot saved first
  const saved = await contextOf(proxy, "a");
  assert.equal(saved?.enabled, true);
  assert.equal(saved?.savedSlots, 1);
  assert.equal(saved?.savedTokens, 300);
  assert.ok(saved.bytesOnDisk > 0);
  // the save path the cache gave a's launch is where its slot file went
  assert.ok(runner.starts[0]?.slotSavePath, "a's launch got a --slot-save-path");

  const again = await chat(proxy, "a", `${LONG} and more`);
  assert.equal(again.cacheN, 300, "the restored slot is reused");
  const restored = await contextOf(proxy, "a");
  assert.equal(restored?.lastRestore?.tokens, 300);
  assert.equal(restored?.lastRestore?.verified, true);
  assert.deepEqual(
    seen.flatMap((e) => (e.type === "context" && e.model === "a" ? [e.action] : [])),
    ["saved", "restored", "reused"],
  );
});

test("the runner's binary decides: one without --slot-save-path leaves every model's cache off, with the reason", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-context-start-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const runner = new FakeRunner(); // its default binary lists no flags
  runner.upstream = slotServer;
  const configPath = join(dir, "gglib.yaml");
  writeFileSync(configPath, `models:\n  a:\n    path: ${writeFakeModel(dir, "a")}\n`);
  const proxy = await startProxy({
    port: 0,
    configPath,
    runner,
    memoryBudget: "64GiB",
    watchConfig: false,
    contextCacheDir: join(dir, "kv-context"),
  });
  t.after(() => proxy.close(1_000));
  await chat(proxy, "a", "hello");
  const st = await contextOf(proxy, "a");
  assert.equal(st?.enabled, false);
  assert.match(st?.reason ?? "", /no --slot-save-path/);
  assert.equal(runner.starts[0]?.slotSavePath, undefined);
});
