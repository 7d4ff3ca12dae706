/**
 * Bursts on the REAL llama-server under `gglib proxy` (issue 26), bounded in time: 300 concurrent chat requests, half
 * of them streamed, on one model, then over three models with --max-models 1. Every request gets its complete answer
 * or a documented refusal (503 + Retry-After), never a cut or a 502; no healthy model is killed (no hang declared,
 * no crash); the llama-server children, sampled every 25 ms, never outnumber the limit. The figures (answered,
 * refused, cut, peak children, time) are printed as diagnostics.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLlamaServer } from "../support/llama-server.js";
import { writeTinyModel } from "../support/tiny-models.js";
import { killQuietly, pidsWithArg, waitFor } from "../support/procs.js";
import { sseData, startProxyProcess, type ProxyProcess } from "../support/proxy-harness.js";

const REQUESTS = 300;
const MAX_TOKENS = 24;

interface Tally {
  answered: number;
  /** 503 + Retry-After. */
  refused: number;
  /** Refused at once but as `200` + an SSE error event (the undocumented way, before issue 26). */
  refusedAsSse: number;
  /** Anything else: a 502, a stream ended by an error, a body cut, no answer. */
  cut: number;
  /** What the cut ones got (the first few). */
  cuts: string[];
  peakChildren: number;
  ms: number;
}

/** A proxy process on the real llama-server over tiny models `names`, cleaned up after the test. */
async function realProxy(t: TestContext, names: string[], args: string[]): Promise<ProxyProcess> {
  const bin = await ensureLlamaServer();
  const dir = mkdtempSync(join(tmpdir(), "gglib-e2e-burst-"));
  t.after(async () => {
    for (const p of pidsWithArg(dir)) killQuietly(p);
    await waitFor(() => pidsWithArg(dir).length === 0, 3_000);
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, "models"));
  for (const [i, name] of names.entries())
    await writeTinyModel(join(dir, "models"), { name, kind: "chat", seed: i + 1 });
  return startProxyProcess(t, { dir, binary: bin, args });
}

/**
 * One request's outcome: "answered" (complete), "refused" (503 + Retry-After), "refusedAsSse" (a 200 stream whose
 * only event is a refusal) or why it counts as cut.
 */
async function one(url: string, model: string, stream: boolean, i: number): Promise<string> {
  let r: Response;
  try {
    r = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: `Hello number ${i}` }],
        max_tokens: MAX_TOKENS,
        stream,
      }),
      signal: AbortSignal.timeout(75_000),
    });
  } catch (e) {
    return `no answer: ${(e as Error).message}`;
  }
  let text: string;
  try {
    text = await r.text();
  } catch (e) {
    return `${r.status}, body cut: ${(e as Error).message}`;
  }
  if (r.status === 503) {
    const retry = Number(r.headers.get("retry-after"));
    return retry >= 1 && /"error"/.test(text) ? "refused" : `503 without Retry-After: ${text.slice(0, 200)}`;
  }
  if (r.status !== 200) return `${r.status}: ${text.slice(0, 300)}`;
  if (stream) {
    const events = sseData(text);
    if (events.at(-1) !== "[DONE]") return `stream cut short: …${text.slice(-200)}`;
    const err = events.find((e) => e.includes('"error"'));
    if (err && events.length === 2 && /"code":"(queue_full|queue_timeout|model_load_failed|model_busy)"/.test(err))
      return "refusedAsSse";
    if (err) return `stream error: ${err.slice(0, 300)}`;
    const finish = events.some((e) => e.includes('"finish_reason":"length"'));
    return finish ? "answered" : `stream without its end: …${text.slice(-200)}`;
  }
  const j = JSON.parse(text) as { model?: string; choices?: { finish_reason?: string }[] };
  if (j.model !== model) return `answered by ${j.model}, asked ${model}`;
  return j.choices?.[0]?.finish_reason === "length" ? "answered" : `incomplete: ${text.slice(0, 200)}`;
}

/** Fires every request at once, samples the llama-server children meanwhile, tallies the outcomes. */
async function burst(p: ProxyProcess, models: string[]): Promise<Tally> {
  let peakChildren = p.llamaPids().length;
  const sampler = setInterval(() => (peakChildren = Math.max(peakChildren, p.llamaPids().length)), 25);
  const t0 = Date.now();
  try {
    const outcomes = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => one(p.url, models[i % models.length]!, i % 2 === 0, i)),
    );
    const cuts = outcomes.filter((o) => o !== "answered" && o !== "refused" && o !== "refusedAsSse");
    return {
      answered: outcomes.filter((o) => o === "answered").length,
      refused: outcomes.filter((o) => o === "refused").length,
      refusedAsSse: outcomes.filter((o) => o === "refusedAsSse").length,
      cut: cuts.length,
      cuts: cuts.slice(0, 5),
      peakChildren: Math.max(peakChildren, p.llamaPids().length),
      ms: Date.now() - t0,
    };
  } finally {
    clearInterval(sampler);
  }
}

/** Crash events on the proxy's --json output, a declared hang included (a healthy model killed shows there). */
function killedModels(p: ProxyProcess): string[] {
  return p
    .stdout()
    .split("\n")
    .filter((l) => l.includes('"event":"crash"'));
}

function report(t: TestContext, what: string, r: Tally, p: ProxyProcess): void {
  t.diagnostic(
    `${what}: ${REQUESTS} requests in ${r.ms} ms: answered ${r.answered}, refused ${r.refused} (503 + Retry-After), ` +
      `refused as SSE 200 ${r.refusedAsSse}, cut ${r.cut}, peak llama-server children ${r.peakChildren}, ` +
      `models killed ${killedModels(p).length}`,
  );
  for (const c of r.cuts) t.diagnostic(`cut: ${c}`);
}

test(
  `${REQUESTS} concurrent requests (half streamed) on one loaded model: every one answered in full, the model is not killed`,
  { timeout: 60_000 },
  async (t) => {
    const p = await realProxy(t, ["tiny-a"], []);
    assert.equal(await one(p.url, "tiny-a", false, -1), "answered");
    const [pid] = p.llamaPids();
    // the worst moment: the burst's connections arrive as the first health check (5 s after ready) goes out
    await new Promise((r) => setTimeout(r, 4_500));
    const r = await burst(p, ["tiny-a"]);
    report(t, "one model", r, p);
    assert.deepEqual(r.cuts, [], "no request cut");
    assert.equal(r.answered, REQUESTS, "a ready model answers every request of a burst");
    assert.deepEqual(killedModels(p), [], "no healthy model killed");
    assert.deepEqual(p.llamaPids(), [pid], "the same llama-server serves on");
  },
);

test(
  `${REQUESTS} concurrent requests over three models with --max-models 1: answered or refused with 503 + Retry-After, never cut, never two llama-servers`,
  { timeout: 75_000 },
  async (t) => {
    const models = ["tiny-a", "tiny-b", "tiny-c"];
    const p = await realProxy(t, models, ["--max-models", "1"]);
    assert.equal(await one(p.url, "tiny-a", false, -1), "answered");
    const r = await burst(p, models);
    report(t, "three models, --max-models 1", r, p);
    assert.deepEqual(r.cuts, [], "no request cut");
    assert.equal(r.refusedAsSse, 0, "a stream refused at once gets 503 + Retry-After, not an SSE 200");
    assert.equal(r.answered + r.refused, REQUESTS);
    assert.ok(r.answered >= REQUESTS / 3, `most are answered (${r.answered})`);
    assert.deepEqual(killedModels(p), [], "no healthy model killed");
    assert.ok(r.peakChildren <= 1, `never more llama-servers than --max-models (peak ${r.peakChildren})`);
  },
);
