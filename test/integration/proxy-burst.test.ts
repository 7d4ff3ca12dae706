/**
 * Bursts on the fake llama-server under `gglib proxy` (issue 26): a busy model is not a hung one. A model whose
 * /health is slow while it generates is never killed; the proxy opens at most slots + 2 connections to it, so a
 * burst waits in the proxy instead of taking llama-server's HTTP threads (cpp-httplib: one per open connection)
 * from /health; a truly hung one (SIGSTOP) is still killed, and its room stays booked until its process is gone:
 * never two llama-servers under --max-models 1. A stream refused at once gets 503 + Retry-After, not an SSE 200.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { postJson, sseData, startProxyProcess } from "../support/proxy-harness.js";
import { running } from "../support/procs.js";

const msgs = [{ role: "user", content: "hi" }];

/** Open TCP sockets of a process (its listening socket included). */
function socketCount(pid: number): number {
  let n = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* gone */
  }
  return n;
}

/** A whole answer: a 200 whose stream ends with [DONE] and no error event, or a 200 JSON with its choices. */
async function complete(r: Response, stream: boolean): Promise<string | undefined> {
  const text = await r.text();
  if (r.status !== 200) return `${r.status}: ${text.slice(0, 300)}`;
  if (stream) {
    const events = sseData(text);
    if (events.at(-1) !== "[DONE]") return `a stream cut short: ${text.slice(-300)}`;
    const err = events.find((e) => e.includes('"error"'));
    return err ? `an error event: ${err.slice(0, 300)}` : undefined;
  }
  const j = JSON.parse(text) as { choices?: unknown[] };
  return Array.isArray(j.choices) && j.choices.length > 0 ? undefined : `no choices: ${text.slice(0, 300)}`;
}

test(
  "a busy model whose /health takes 3 s while it generates is not killed: 22 s of streams all complete",
  { timeout: 60_000 },
  async (t) => {
    const p = await startProxyProcess(t, {
      models: ["a"],
      knobs: { busyHealthMs: 3_000, tokens: -1, tokenIntervalMs: 100 },
    });
    const warm = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 1 });
    assert.equal(warm.status, 200, await warm.text());
    const [pid] = p.llamaPids();
    assert.ok(pid);
    // longer than the old rule needed (one failed check at ≤ 7 s) and than three failed checks (~16 s)
    const runs = Array.from({ length: 4 }, async () => {
      const r = await postJson(p.url, "/v1/chat/completions", {
        model: "a",
        messages: msgs,
        stream: true,
        max_tokens: 220,
      });
      return complete(r, true);
    });
    const problems = (await Promise.all(runs)).filter((x) => x !== undefined);
    assert.deepEqual(problems, [], "every stream complete");
    assert.ok(running(pid), "the same llama-server still runs");
    assert.deepEqual(p.llamaPids(), [pid]);
    assert.doesNotMatch(p.stdout(), /"status":"unhealthy"|"event":"crash"/, "no hang declared");
  },
);

test(
  "150 concurrent requests on a model with 8 HTTP threads: at most slots + 2 connections to it, /health answers, none cut",
  { timeout: 90_000 },
  async (t) => {
    // cpp-httplib's threads: max(slots + 4, cores - 1); the fake has 4 slots
    const p = await startProxyProcess(t, {
      models: ["a"],
      knobs: { httpThreads: 8, tokens: -1, tokenIntervalMs: 10 },
    });
    const warm = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 1 });
    assert.equal(warm.status, 200, await warm.text());
    const [pid] = p.llamaPids();
    assert.ok(pid);
    const base = socketCount(pid);
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, socketCount(pid))), 20);
    const t0 = Date.now();
    try {
      const runs = Array.from({ length: 150 }, async (_, i) => {
        const stream = i % 2 === 0;
        const r = await postJson(p.url, "/v1/chat/completions", {
          model: "a",
          messages: msgs,
          stream,
          max_tokens: 40,
        });
        return complete(r, stream);
      });
      // monitoring GETs are not queued behind the burst: they have a connection of their own
      await new Promise((r) => setTimeout(r, 2_000));
      const tProps = Date.now();
      const props = await fetch(`${p.url}/props?model=a`);
      assert.equal(props.status, 200, await props.text());
      const propsMs = Date.now() - tProps;
      const problems = (await Promise.all(runs)).filter((x) => x !== undefined);
      t.diagnostic(
        `150 requests in ${Date.now() - t0} ms; peak sockets of llama-server ${peak} (idle ${base}); /props mid-burst ${propsMs} ms`,
      );
      assert.ok(propsMs < 2_000, `GET /props answered in ${propsMs} ms during the burst`);
      assert.deepEqual(problems, [], "every request answered in full");
    } finally {
      clearInterval(sampler);
    }
    // 4 slots + 2, plus a health check on its own connection and a resend's connection at most
    assert.ok(peak - base <= 6 + 2, `at most slots + 2 connections from the proxy (peak ${peak}, idle ${base})`);
    assert.ok(running(pid));
    assert.deepEqual(p.llamaPids(), [pid]);
    assert.doesNotMatch(p.stdout(), /"status":"unhealthy"|"event":"crash"/);
  },
);

test(
  "a hung model (SIGSTOP) is still killed, and its room stays booked until it is gone: never two llama-servers under --max-models 1",
  { timeout: 60_000 },
  async (t) => {
    const p = await startProxyProcess(t, {
      models: ["a", "b"],
      args: ["--max-models", "1"],
      knobs: { tokens: -1, tokenIntervalMs: 50 },
    });
    const warm = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, max_tokens: 1 });
    assert.equal(warm.status, 200, await warm.text());
    const [pid] = p.llamaPids();
    assert.ok(pid);
    t.after(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    });
    // a stream in flight on a, then a hangs
    const streaming = postJson(p.url, "/v1/chat/completions", {
      model: "a",
      messages: msgs,
      stream: true,
      max_tokens: 2_000,
    });
    const r = await streaming;
    assert.equal(r.status, 200);
    const reader = r.body!.getReader();
    await reader.read();
    process.kill(pid, "SIGSTOP");
    const t0 = Date.now();
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, p.llamaPids().length)), 10);
    try {
      // b must wait for a's room: a's process has to be gone first
      const b = await postJson(
        p.url,
        "/v1/chat/completions",
        { model: "b", messages: msgs, max_tokens: 4 },
        {},
        AbortSignal.timeout(40_000),
      );
      assert.equal(b.status, 200, await b.clone().text());
      assert.equal(((await b.json()) as { model: string }).model, "b");
      t.diagnostic(`b answered ${Date.now() - t0} ms after a hung`);
    } finally {
      clearInterval(sampler);
    }
    assert.equal(peak, 1, "never two llama-servers at once");
    assert.ok(!running(pid), "the hung process was killed before b started");
    // the stream on a ended with an error naming the hang
    let text = "";
    for (let c = await reader.read(); !c.done; c = await reader.read()) text += new TextDecoder().decode(c.value);
    assert.match(text, /stopped answering its health checks[^"]*no progress on its requests/);
    assert.equal(sseData(text).at(-1), "[DONE]");
  },
);

test("a stream refused at once (the model is backing off after a failed load) gets 503 + Retry-After, not an SSE 200", async (t) => {
  const p = await startProxyProcess(t, {
    models: ["a"],
    knobs: { failLoad: { exitCode: 1, message: "llama_model_load: error loading model: corrupted" } },
  });
  const first = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, stream: true });
  // the first one waited for the load: its stream was committed, the failure comes as an SSE error
  assert.equal(first.status, 200);
  assert.match(await first.text(), /error loading model/);
  const again = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs, stream: true });
  const body = await again.text();
  assert.equal(again.status, 503, body);
  assert.ok(Number(again.headers.get("retry-after")) >= 1, `Retry-After: ${again.headers.get("retry-after")}`);
  assert.match(again.headers.get("content-type") ?? "", /application\/json/);
  assert.match((JSON.parse(body) as { error: { message: string } }).error.message, /error loading model/);
});
