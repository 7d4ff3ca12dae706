/**
 * Soak: thousands of requests (streaming and not) spread at random over three models behind `gglib proxy
 * --max-models 1` (the real command, as a child process) on the fake llama-server. Checks: every request gets
 * exactly one answer, from the model it named (the `model` field of the reply and of every stream chunk); the
 * fake saw exactly as many generations per model as were sent (none lost, none sent twice); never two
 * llama-servers at once (pid sampling during the run, and the fake's per-request pid log: the time spans of the
 * processes never overlap); no fd, process or port left at the end.
 *
 * 2 000 requests by default; GGLIB_LONG_TESTS=1 → 20 000.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { Agent, fetch as ufetch } from "undici";
import { startProxyProcess, sseData, waitGone } from "../support/proxy-harness.js";
import { waitFor } from "../support/procs.js";

const LONG = process.env.GGLIB_LONG_TESTS === "1";
const TOTAL = LONG ? 20_000 : 2_000;
const CONCURRENCY = 24;
const MODELS = ["a", "b", "c"];

/** Small deterministic PRNG (mulberry32) so a failure can be replayed with the printed seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test(
  `soak: ${TOTAL} requests over 3 models with --max-models 1: none lost, none doubled, none misrouted, nothing leaked`,
  { timeout: LONG ? 1_800_000 : 120_000 },
  async (t) => {
    const p = await startProxyProcess(t, {
      models: MODELS,
      args: ["--max-models", "1"],
      knobs: { loadMs: 20, tokens: 3 },
    });
    const client = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 2_000 });
    let clientClosed = false;
    t.after(() => (clientClosed ? undefined : client.close()));
    const seed = Number(process.env.GGLIB_SOAK_SEED ?? Date.now() % 1_000_000);
    const rand = rng(seed);
    const note = `seed ${seed}`;

    const chat = async (model: string, stream: boolean) => {
      const res = await ufetch(`${p.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, stream, max_tokens: 8, messages: [{ role: "user", content: `hi ${model}` }] }),
        dispatcher: client,
      });
      return { status: res.status, text: await res.text() };
    };

    // warm-up: each model once, so the fd baseline includes the proxy's lazily opened things
    for (const m of MODELS) assert.equal((await chat(m, false)).status, 200);
    const fdBefore = p.fdCount();
    const rssBefore = p.rssKb();
    const statsBefore = p.stats().length;

    // never two llama-servers at once: sample every 40 ms
    let maxAlive = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const n = p.llamaPids().length;
        samples++;
        if (n > maxAlive) maxAlive = n;
        await new Promise((r) => setTimeout(r, 40));
      }
    })();

    // the model of request i: random runs (a switch with probability SWITCH per request), so that the requests in
    // flight mostly want one or two models and swaps happen all along, but not at nearly every request
    const SWITCH = 1 / 25;
    const models: string[] = [];
    for (let i = 0, m = 0; i < TOTAL; i++) {
      if (rand() < SWITCH) m = Math.floor(rand() * MODELS.length);
      models.push(MODELS[m]!);
    }
    const modelOf = (i: number) => models[i]!;
    const sent = new Map<string, number>(MODELS.map((m) => [m, 0]));
    const problems: string[] = [];
    let answered = 0;
    let next = 0;
    const t0 = Date.now();
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= TOTAL) return;
        const model = modelOf(i);
        const stream = rand() < 0.5;
        sent.set(model, sent.get(model)! + 1);
        let r: { status: number; text: string };
        try {
          r = await chat(model, stream);
        } catch (e) {
          problems.push(`#${i} ${model}: request failed: ${(e as Error).message}`);
          continue;
        }
        answered++;
        if (r.status !== 200) {
          problems.push(`#${i} ${model}: status ${r.status}: ${r.text.slice(0, 200)}`);
          continue;
        }
        if (!stream) {
          const body = JSON.parse(r.text) as { model?: string; choices?: { message?: { content?: string } }[] };
          if (body.model !== model) problems.push(`#${i}: asked ${model}, answered by ${body.model}`);
          if (!body.choices?.[0]?.message?.content) problems.push(`#${i} ${model}: empty answer`);
          continue;
        }
        const data = sseData(r.text);
        const done = data.filter((d) => d === "[DONE]").length;
        if (done !== 1 || data.at(-1) !== "[DONE]")
          problems.push(`#${i} ${model}: stream has ${done} [DONE], last ${data.at(-1)}`);
        for (const d of data) {
          if (d === "[DONE]") continue;
          const chunk = JSON.parse(d) as { model?: string; error?: unknown };
          if (chunk.error) problems.push(`#${i} ${model}: stream error ${JSON.stringify(chunk.error)}`);
          else if (chunk.model !== model) problems.push(`#${i}: stream for ${model} has a chunk from ${chunk.model}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const elapsedMs = Date.now() - t0;
    sampling = false;
    await sampler;

    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems (${note})`);
    assert.equal(answered, TOTAL, `every request answered once (${note})`);

    // the fake's own log: one generation per request sent, per model; the pids' time spans never overlap
    const stats = p.stats().slice(statsBefore);
    const gens = stats.filter((s) => s.method === "POST" && s.path === "/v1/chat/completions");
    for (const m of MODELS) {
      assert.equal(
        gens.filter((s) => s.model === m).length,
        sent.get(m),
        `generations of ${m} seen by llama-server = requests sent (${note})`,
      );
    }
    const spans = new Map<number, { model: string; first: number; last: number }>();
    for (const s of p.stats()) {
      const sp = spans.get(s.pid);
      if (!sp) spans.set(s.pid, { model: s.model, first: s.t, last: s.t });
      else {
        assert.equal(sp.model, s.model, `pid ${s.pid} served one model only`);
        sp.last = Math.max(sp.last, s.t);
        sp.first = Math.min(sp.first, s.t);
      }
    }
    const ordered = [...spans.entries()].sort((x, y) => x[1].first - y[1].first);
    for (let k = 1; k < ordered.length; k++) {
      const [pa, a] = ordered[k - 1]!;
      const [pb, b] = ordered[k]!;
      assert.ok(
        b.first >= a.last,
        `pid ${pb} (${b.model}) got a request at ${b.first} while pid ${pa} (${a.model}) still served one at ${a.last}`,
      );
    }
    assert.ok(maxAlive <= 1, `at most one llama-server alive at any sample (saw ${maxAlive} in ${samples} samples)`);

    // nothing leaked: client connections closed, idle upstream sockets expire (keep-alive 4 s)
    await client.close();
    clientClosed = true;
    const fdSettled = await waitFor(() => p.fdCount() <= fdBefore + 2, 10_000, 100);
    const fdAfter = p.fdCount();
    const rssAfter = p.rssKb();
    t.diagnostic(
      `${TOTAL} requests in ${elapsedMs} ms (${Math.round((TOTAL * 1000) / elapsedMs)}/s), ${spans.size} llama-server processes (swaps), ` +
        `fd ${fdBefore} → ${fdAfter}, RSS ${Math.round(rssBefore / 1024)} → ${Math.round(rssAfter / 1024)} MiB, ${samples} pid samples, ${note}`,
    );
    assert.ok(fdSettled, `proxy fds back to the baseline: ${fdBefore} → ${fdAfter}`);
    assert.ok(rssAfter - rssBefore < 128 * 1024, `proxy RSS grew by ${Math.round((rssAfter - rssBefore) / 1024)} MiB`);

    const llamas = p.llamaPids();
    assert.ok(llamas.length <= 1);
    p.child.kill("SIGTERM");
    const exit = await p.exited;
    assert.equal(exit.code, 0, `proxy exits 0 on SIGTERM; stderr: ${p.stderr().slice(-1000)}`);
    assert.deepEqual(await waitGone(llamas, 5_000), [], "no llama-server left after the proxy stopped");
    assert.deepEqual(p.llamaPids(), []);
    // its port is free again
    const port = Number(new URL(p.url).port);
    await new Promise<void>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve()));
    });
  },
);

test(
  "soak: streams abandoned by their clients at random points are cancelled upstream; nothing stays in flight or open",
  { timeout: 120_000 },
  async (t) => {
    const N = LONG ? 3_000 : 300;
    const p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 20, tokens: -1, tokenIntervalMs: 5 } });
    const client = new Agent({ connections: 16, keepAliveTimeout: 1_000 });
    let clientClosed = false;
    t.after(() => (clientClosed ? undefined : client.close()));
    const warm = await ufetch(`${p.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "a", max_tokens: 2, messages: [{ role: "user", content: "x" }] }),
      dispatcher: client,
    });
    await warm.text();
    const fdBefore = p.fdCount();
    const st = (await (await fetch(`${p.url}/api/status`)).json()) as {
      models: { name: string; port?: number; pid?: number }[];
    };
    const fake = st.models[0]!;
    assert.ok(fake.port && fake.pid);
    let next = 0;
    let aborted = 0;
    let finished = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < N; i = next++) {
          const ac = new AbortController();
          // streams of 2 000 tokens × 5 ms (10 s): every one is abandoned, after 0–300 ms, at the headers or mid-body
          const after = Math.floor(Math.random() * 300);
          const timer = setTimeout(() => ac.abort(), after);
          try {
            const res = await ufetch(`${p.url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                model: "a",
                stream: true,
                max_tokens: 2_000,
                messages: [{ role: "user", content: `n${i}` }],
              }),
              dispatcher: client,
              signal: ac.signal,
            });
            for await (const chunk of res.body!) void chunk;
            finished++;
          } catch {
            aborted++;
          } finally {
            clearTimeout(timer);
          }
        }
      }),
    );
    const elapsed = Date.now() - t0;
    assert.equal(aborted + finished, N);
    assert.ok(aborted >= N * 0.9, `the clients went away (${aborted}/${N})`);
    // the proxy forgets them, and llama-server stops generating for them (the proxy aborts the upstream request)
    const idle = async () => {
      const s = (await (await fetch(`${p.url}/api/status`)).json()) as {
        models: { inFlight: number; queued: number }[];
      };
      const f = (await (await fetch(`http://127.0.0.1:${fake.port}/__fake/state`)).json()) as {
        inFlight: number;
        generations: number;
      };
      return s.models[0]!.inFlight === 0 && s.models[0]!.queued === 0 && f.inFlight === 0;
    };
    assert.ok(await waitFor(idle, 5_000, 100), "nothing in flight in the proxy or in llama-server");
    assert.equal(p.llamaPids().length, 1);
    assert.deepEqual(p.llamaPids(), [fake.pid], "the same llama-server all along");
    await client.close();
    clientClosed = true;
    const settled = await waitFor(() => p.fdCount() <= fdBefore + 2, 10_000, 100);
    t.diagnostic(`${N} streams (${aborted} abandoned) in ${elapsed} ms; proxy fds ${fdBefore} → ${p.fdCount()}`);
    assert.ok(settled, `fds ${fdBefore} → ${p.fdCount()}`);
  },
);
