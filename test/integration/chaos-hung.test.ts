/**
 * Chaos: a llama-server that hangs (SIGSTOP: alive, holding its port, answering nothing) under `gglib proxy`. The
 * runner's health monitor (every 5 s, 2 s timeout; a hang is three failed checks in a row, 1 s apart, with no progress
 * on its requests: ~13-16 s) must find it, requests to the model must not wait forever, the hung process is killed and
 * the next request starts a fresh one. (A bug found here, fixed in e643867.)
 * Separate from chaos-proxy.test.ts because it takes ~20 s.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { postJson, startProxyProcess, type ProxyProcess } from "../support/proxy-harness.js";
import { running, waitFor } from "../support/procs.js";

const msgs = [{ role: "user", content: "hi" }];

/** A ready model "a" whose llama-server is then SIGSTOPped. */
async function hungModel(t: TestContext): Promise<{ p: ProxyProcess; pid: number }> {
  const p = await startProxyProcess(t, { models: ["a"], knobs: { loadMs: 50 } });
  const warm = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs });
  assert.equal(warm.status, 200);
  await warm.arrayBuffer();
  const [pid] = p.llamaPids();
  assert.ok(pid, "a llama-server runs");
  process.kill(pid, "SIGSTOP");
  t.after(() => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  });
  return { p, pid };
}

test(
  "the health monitor reports a SIGSTOPped llama-server as unhealthy (a health event on `gglib proxy --json`)",
  { timeout: 45_000 },
  async (t) => {
    const { p } = await hungModel(t);
    const t0 = Date.now();
    const seen = await waitFor(() => /"event":"health"[^\n]*"status":"unhealthy"/.test(p.stdout()), 30_000, 100);
    t.diagnostic(`unhealthy reported after ${Date.now() - t0} ms`);
    assert.ok(seen, `a health event: ${p.stdout().slice(-1500)}`);
    const line = p
      .stdout()
      .split("\n")
      .find((l) => l.includes('"event":"health"') && l.includes("unhealthy"))!;
    assert.equal((JSON.parse(line) as { model: string }).model, "a");
  },
);

test(
  "a SIGSTOPped (hung) llama-server is found by the health monitor: requests to it do not hang forever",
  {
    timeout: 60_000,
  },
  async (t) => {
    const { p, pid } = await hungModel(t);
    // the runner's health monitor polls every 5 s with a 2 s timeout and needs three failed checks 1 s apart
    const t0 = Date.now();
    let status = 0;
    let text = "";
    try {
      const res = await postJson(
        p.url,
        "/v1/chat/completions",
        { model: "a", messages: msgs },
        {},
        AbortSignal.timeout(30_000),
      );
      status = res.status;
      text = await res.text();
    } catch (e) {
      text = `no answer after ${Date.now() - t0} ms: ${(e as Error).message}`;
    }
    assert.ok(
      status === 200 || status >= 500,
      `an answer (from a restarted server) or a clear error within 30 s; got ${status}: ${text}`,
    );
    if (status !== 200) {
      const e = (JSON.parse(text) as { error: { message: unknown; type: unknown; code: unknown } }).error;
      assert.deepEqual([typeof e.message, typeof e.type, typeof e.code], ["string", "string", "string"], text);
    }
    t.diagnostic(`hung server: ${status} after ${Date.now() - t0} ms: ${text.slice(0, 200)}`);
    assert.ok(await waitFor(() => !running(pid), 5_000), "the hung process was killed");
    // the next request gets a fresh llama-server
    const again = await postJson(
      p.url,
      "/v1/chat/completions",
      { model: "a", messages: msgs },
      {},
      AbortSignal.timeout(15_000),
    );
    assert.equal(again.status, 200, await again.clone().text());
    assert.equal(((await again.json()) as { model: string }).model, "a");
    const now = p.llamaPids();
    assert.equal(now.length, 1);
    assert.notEqual(now[0], pid);
  },
);

test(
  "a llama-server that hangs while loading (SIGSTOP) is ended by --load-timeout: waiting requests get a clear error, the process is killed",
  { timeout: 45_000 },
  async (t) => {
    const p = await startProxyProcess(t, { models: ["a"], args: ["--load-timeout", "3"], knobs: { loadMs: 1_500 } });
    const t0 = Date.now();
    const plain = postJson(
      p.url,
      "/v1/chat/completions",
      { model: "a", messages: msgs },
      {},
      AbortSignal.timeout(30_000),
    );
    let pid: number | undefined;
    assert.ok(await waitFor(() => (pid = p.llamaPids()[0]) !== undefined, 10_000, 20));
    process.kill(pid!, "SIGSTOP");
    t.after(() => {
      try {
        process.kill(pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    });
    const res = await plain;
    const text = await res.text();
    const ms = Date.now() - t0;
    t.diagnostic(`${res.status} after ${ms} ms: ${text.slice(0, 240)}`);
    assert.ok(res.status >= 500, `${res.status}: ${text}`);
    const e = (JSON.parse(text) as { error: { message: unknown; type: unknown; code: unknown } }).error;
    assert.deepEqual([typeof e.message, typeof e.type, typeof e.code], ["string", "string", "string"], text);
    assert.ok(ms < 15_000, `within the load timeout and the stop grace (${ms} ms)`);
    assert.ok(await waitFor(() => !running(pid!), 8_000), "the stopped process was killed, not left behind");
  },
);
