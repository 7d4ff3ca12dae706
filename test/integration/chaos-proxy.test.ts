/**
 * Chaos: `gglib proxy` (the real command, as a child process) on the fake llama-server while its processes are
 * killed under it: a llama-server SIGKILLed while it loads and while it streams (a SIGSTOPped one: chaos-hung.test.ts),
 * and the proxy itself SIGKILLed mid-load and started again. Clients must get prompt, clear errors (OpenAI's
 * error shape, or an SSE error event + [DONE] for open streams), later requests must succeed, and no process may
 * be left behind.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Agent, fetch as ufetch } from "undici";
import { postJson, sseData, startProxyProcess, waitGone, type ProxyProcess } from "../support/proxy-harness.js";
import { waitFor } from "../support/procs.js";

const msgs = [{ role: "user", content: "hi" }];

interface Outcome {
  status: number;
  text: string;
  /** ms from the kill to the end of the response */
  afterKillMs: number;
}

async function settle(p: Promise<Response>, killedAt: () => number): Promise<Outcome> {
  const res = await p;
  const text = await res.text();
  return { status: res.status, text, afterKillMs: Date.now() - killedAt() };
}

function assertErrorShape(text: string, what: string): { message: string; type: string; code: string } {
  const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown; code?: unknown } };
  assert.ok(body.error, `${what}: an error object: ${text}`);
  assert.equal(typeof body.error.message, "string", what);
  assert.equal(typeof body.error.type, "string", what);
  assert.equal(typeof body.error.code, "string", what);
  return body.error as { message: string; type: string; code: string };
}

/** The stream ended with an SSE error event (OpenAI shape) and then [DONE]. */
function assertSseError(text: string, what: string): string {
  const data = sseData(text);
  assert.equal(data.at(-1), "[DONE]", `${what}: ends with [DONE]: ${text.slice(-400)}`);
  const err = data
    .slice(0, -1)
    .reverse()
    .find((d) => d.includes('"error"'));
  assert.ok(err, `${what}: an error event before [DONE]: ${text.slice(-400)}`);
  return assertErrorShape(err, what).message;
}

/** The llama-server process of the (only) model, loading or not. */
async function loadingPid(p: ProxyProcess, timeoutMs = 10_000): Promise<number> {
  let pid: number | undefined;
  await waitFor(() => (pid = p.llamaPids()[0]) !== undefined, timeoutMs, 20);
  assert.ok(pid, "a llama-server was started");
  return pid;
}

/** The pid /api/status shows for a ready model. */
/** Sends until the model answers 200, following Retry-After while it is in its load-failure cooldown. */
async function untilOk(p: ProxyProcess, model: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await postJson(p.url, "/v1/chat/completions", { model, messages: msgs });
    const text = await r.text();
    if (r.status === 200) {
      assert.equal((JSON.parse(text) as { model: string }).model, model);
      return;
    }
    assert.equal(r.status, 503, `${model}: ${text}`);
    assert.equal(assertErrorShape(text, model).code, "model_load_failed");
    const wait = Number(r.headers.get("retry-after") ?? "1");
    assert.ok(Date.now() + wait * 1000 < end, `${model} still refused: ${text}`);
    await new Promise((res) => setTimeout(res, wait * 1000));
  }
}

async function pidOf(p: ProxyProcess, model: string, timeoutMs = 10_000): Promise<number> {
  let pid: number | undefined;
  await waitFor(
    async () => {
      const st = (await (await fetch(`${p.url}/api/status`)).json()) as { models: { name: string; pid?: number }[] };
      pid = st.models.find((m) => m.name === model)?.pid;
      return pid !== undefined;
    },
    timeoutMs,
    20,
  );
  assert.ok(pid, `${model} has a llama-server`);
  return pid;
}

describe("chaos: processes killed under the proxy", { timeout: 60_000 }, () => {
  test("llama-server SIGKILLed while loading: waiting requests get a prompt clear error (JSON and SSE); the next request loads it again", async (t) => {
    const p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 2_000 } });
    let killedAt = 0;
    const plain = settle(postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs }), () => killedAt);
    const stream = settle(
      postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, stream: true }),
      () => killedAt,
    );
    const pid = await loadingPid(p);
    await new Promise((r) => setTimeout(r, 300)); // well inside the 2 s load
    process.kill(pid, "SIGKILL");
    killedAt = Date.now();
    const [a, b] = await Promise.all([plain, stream]);
    assert.ok(a.status >= 500 && a.status < 600, `plain request: 5xx, got ${a.status} ${a.text}`);
    const e = assertErrorShape(a.text, "plain request");
    assert.match(e.message, /SIGKILL|signal|exited/i, `the error says the server died: ${e.message}`);
    assert.equal(b.status, 200, "the stream was committed while loading");
    assertSseError(b.text, "stream");
    assert.ok(
      a.afterKillMs < 3_000 && b.afterKillMs < 3_000,
      `prompt errors: ${a.afterKillMs} ms, ${b.afterKillMs} ms after the kill`,
    );
    assert.deepEqual(await waitGone([pid], 2_000), []);
    // a later request starts it again and succeeds (after the load-failure cooldown its 503 announces)
    await untilOk(p, "a", 15_000);
    assert.notEqual(await pidOf(p, "a"), pid);
    assert.equal(p.llamaPids().length, 1);
  });

  test("llama-server SIGKILLed mid-stream: open streams end with an SSE error event + [DONE], a plain request with a 502 JSON error; then it recovers", async (t) => {
    const p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50, tokens: -1, tokenIntervalMs: 30 } });
    // load first, then open the streams on the ready server
    const warm = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 2 });
    assert.equal(warm.status, 200);
    await warm.arrayBuffer();
    const pid = await pidOf(p, "a");
    const streams = await Promise.all(
      [1, 2, 3].map(() =>
        postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, stream: true, max_tokens: 100_000 }),
      ),
    );
    const readers = streams.map(async (res) => {
      assert.equal(res.status, 200);
      let text = "";
      const dec = new TextDecoder();
      for await (const chunk of res.body!) text += dec.decode(chunk as Uint8Array, { stream: true });
      return text;
    });
    let killedAt = 0;
    const plain = settle(
      postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 100_000 }),
      () => killedAt,
    );
    await new Promise((r) => setTimeout(r, 400)); // tokens are flowing
    process.kill(pid, "SIGKILL");
    killedAt = Date.now();
    const texts = await Promise.all(readers);
    const streamsEndedMs = Date.now() - killedAt;
    for (const [i, text] of texts.entries()) {
      assert.match(text, /"content"/, `stream ${i} had tokens before the kill`);
      const msg = assertSseError(text, `stream ${i}`);
      assert.match(msg, /SIGKILL|exited|signal/i, msg);
    }
    const a = await plain;
    assert.equal(a.status, 502, a.text);
    assertErrorShape(a.text, "plain request");
    assert.ok(
      streamsEndedMs < 3_000 && a.afterKillMs < 3_000,
      `prompt: streams ${streamsEndedMs} ms, plain ${a.afterKillMs} ms`,
    );
    assert.deepEqual(await waitGone([pid], 2_000), []);
    const again = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 3 });
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { model: string }).model, "a");
    assert.equal(p.llamaPids().length, 1, "one llama-server again");
  });

  test("random SIGKILLs of llama-servers during 6 s of mixed load over 3 models: every request ends (200 or a clear error), none hangs; the proxy recovers and leaks nothing", async (t) => {
    const p = await startProxyProcess(t, {
      models: ["a", "b", "c"],
      args: ["--max-models", "2"],
      knobs: { loadMs: 200, tokens: 20, tokenIntervalMs: 10 },
    });
    const client = new Agent({ keepAliveTimeout: 1_000 });
    let clientClosed = false;
    t.after(() => (clientClosed ? undefined : client.close()));
    const post = (body: unknown, signal: AbortSignal) =>
      ufetch(`${p.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        dispatcher: client,
        signal,
      });
    const fdBefore = p.fdCount();
    let stop = false;
    const kills: number[] = [];
    let loadingKills = 0;
    const killer = (async () => {
      await new Promise((r) => setTimeout(r, 500));
      while (!stop) {
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 300));
        // mostly servers that have answered (ready), sometimes one still loading
        const served = new Set(p.stats().map((s) => s.pid));
        const pids = p.llamaPids();
        const ready = pids.filter((x) => served.has(x));
        // (a kill while loading puts the model in a load-failure cooldown: a few of those, not a cascade)
        const pool =
          ready.length > 0 && (loadingKills >= 2 || Math.random() < 0.8) ? ready : loadingKills < 2 ? pids : [];
        if (pool.length === 0 || stop) continue;
        const victim = pool[Math.floor(Math.random() * pool.length)]!;
        try {
          process.kill(victim, "SIGKILL");
          kills.push(victim);
          if (!served.has(victim)) loadingKills++;
        } catch {
          /* already gone */
        }
      }
    })();
    const outcomes = { ok: 0, clearError: 0 };
    const codes = new Map<string, number>();
    const bad: string[] = [];
    let n = 0;
    const one = async (i: number) => {
      const model = ["a", "b", "c"][Math.floor(Math.random() * 3)]!;
      const stream = i % 2 === 0;
      const res = await post({ model, messages: msgs, stream }, AbortSignal.timeout(20_000));
      const text = await res.text();
      if (stream && res.status === 200) {
        const data = sseData(text);
        if (data.at(-1) !== "[DONE]") bad.push(`#${i}: stream without [DONE]: ${text.slice(-200)}`);
        else if (data.some((d) => d.includes('"error"'))) {
          assertSseError(text, `#${i}`);
          outcomes.clearError++;
          codes.set("stream-error", (codes.get("stream-error") ?? 0) + 1);
        } else outcomes.ok++;
        for (const d of data)
          if (d !== "[DONE]" && !d.includes('"error"') && (JSON.parse(d) as { model: string }).model !== model)
            bad.push(`#${i}: chunk of another model`);
      } else if (res.status === 200) {
        if ((JSON.parse(text) as { model: string }).model !== model) bad.push(`#${i}: answered by another model`);
        outcomes.ok++;
      } else {
        const e = assertErrorShape(text, `#${i} (${res.status})`);
        codes.set(`${res.status} ${e.code}`, (codes.get(`${res.status} ${e.code}`) ?? 0) + 1);
        if (res.status < 500) bad.push(`#${i}: ${res.status} ${text}`);
        outcomes.clearError++;
      }
    };
    const until = Date.now() + 6_000;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (Date.now() < until) {
          await one(n++);
          // a refused request (cooldown) comes back at once: do not spin
          await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    stop = true;
    await killer;
    t.diagnostic(
      `${n} requests, ${kills.length} llama-servers SIGKILLed (${loadingKills} while loading); ${outcomes.ok} answers, ${outcomes.clearError} clear errors ` +
        JSON.stringify(Object.fromEntries(codes)),
    );
    assert.deepEqual(bad, []);
    assert.ok(kills.length >= 3, `the chaos happened (${kills.length} kills)`);
    assert.ok(outcomes.ok > 0, "requests between the kills succeed");
    // afterwards every model answers (a model killed while loading is refused with 503 + Retry-After during its
    // load-failure cooldown, which doubles per failure: follow Retry-After)
    for (const m of ["a", "b", "c"]) await untilOk(p, m, 40_000);
    assert.deepEqual(await waitGone(kills, 2_000), [], "killed servers are reaped");
    assert.ok(p.llamaPids().length <= 2, "--max-models 2 holds");
    await client.close();
    clientClosed = true;
    // the baseline had no llama-server: unload the models (each running server holds 3 pipes)
    for (const m of ["a", "b", "c"]) await (await postJson(p.url, "/models/unload", { model: m })).arrayBuffer();
    assert.ok(await waitFor(() => p.llamaPids().length === 0, 10_000), "models unloaded");
    const settled = await waitFor(() => p.fdCount() <= fdBefore + 2, 10_000, 100);
    t.diagnostic(`proxy fds ${fdBefore} → ${p.fdCount()}`);
    assert.ok(settled, `fds: ${fdBefore} → ${p.fdCount()}`);
  });

  test("the proxy SIGKILLed mid-load: clients see the connection fail at once, its llama-server dies with it, a restarted proxy serves again", async (t) => {
    const p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 5_000 } });
    const attempt = async (body: unknown): Promise<string | Error> => {
      try {
        const r = await postJson(p.url, "/v1/chat/completions", body);
        return `status ${r.status}: ${await r.text()}`;
      } catch (e) {
        return e as Error;
      }
    };
    const plain = attempt({ model: "a", messages: msgs });
    const stream = attempt({ model: "a", messages: msgs, stream: true });
    const pid = await loadingPid(p);
    await new Promise((r) => setTimeout(r, 300));
    const killedAt = Date.now();
    process.kill(p.pid, "SIGKILL"); // the proxy process only: its llama-server is in its own process group
    const [a, b] = await Promise.all([plain, stream]);
    const failedMs = Date.now() - killedAt;
    assert.ok(a instanceof Error, `plain request fails: ${String(a)}`);
    // the stream had its 200 + keep-alive comments; its body ends with a network error (or early end without [DONE])
    assert.ok(b instanceof Error || !String(b).includes("[DONE]"), `stream cut: ${String(b)}`);
    assert.ok(failedMs < 2_000, `clients learn at once (${failedMs} ms)`);
    assert.deepEqual(
      await waitGone([pid], 3_000),
      [],
      "the loading llama-server died with the proxy (parent-death signal)",
    );
    await p.exited;

    // restart on the same folder (same data dir: pidfiles and orphan sweep)
    const p2 = await startProxyProcess(t, { dir: p.dir, knobs: { loadMs: 50 } });
    const r = await postJson(p2.url, "/v1/chat/completions", { model: "a", messages: msgs });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { model: string }).model, "a");
    assert.equal(p2.llamaPids().length, 1, "exactly one llama-server: nothing of the first run survived");
    p2.child.kill("SIGTERM");
    assert.equal((await p2.exited).code, 0);
    assert.deepEqual(await waitGone(p2.llamaPids(), 5_000), []);
  });
});
