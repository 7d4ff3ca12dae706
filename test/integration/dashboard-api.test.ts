// The management API the dashboard adds (src/proxy/routes/dashboard.ts), over HTTP on an in-process proxy with
// the fake llama-server: activity, system, effective config (redacted), reload with its errors, the proxy's own
// log, pin; bad input gets a 4xx in the API's error shape; with a key, nothing answers without it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dashboardProxy } from "../support/dashboard.js";
import { postJson, sseData } from "../support/proxy-harness.js";

const config = {
  apiKeys: ["sk-dash"],
  models: {
    a: { path: "./models/a.gguf", env: { HF_TOKEN: "hf_secret_value", OMP_NUM_THREADS: "2" } },
    b: { path: "./models/b.gguf", extraArgs: ["--api-key", "sk-upstream-secret"] },
  },
};
const auth = { authorization: "Bearer sk-dash" };
const get = (url: string, path: string) => fetch(`${url}${path}`, { headers: auth });

async function errorOf(r: Response): Promise<{ status: number; code: string; message: string }> {
  const j = (await r.json()) as { error: { code: string; message: string } };
  return { status: r.status, code: j.error.code, message: j.error.message };
}

describe("dashboard API", { timeout: 60_000 }, () => {
  test("activity, config (redacted), system, proxy log, reload errors, pin; 401 without the key", async (t) => {
    const { proxy, configPath } = await dashboardProxy(t, { config, fakeModels: ["a", "b"] });
    const url = proxy.url;

    for (const p of ["/api/activity", "/api/system", "/api/config", "/api/proxy/logs"])
      assert.equal((await fetch(`${url}${p}`)).status, 401, p);
    assert.equal((await postJson(url, "/api/config/reload", {})).status, 401);
    assert.equal((await postJson(url, "/models/pin", { model: "a", pinned: true })).status, 401);
    // the static shell is open (it holds no data)
    assert.notEqual((await fetch(`${url}/ui/`)).status, 401);

    // activity: two requests, filtered by model (b's llama-server wants its own key: only a is asked)
    for (const model of ["a", "a"]) {
      const r = await postJson(
        url,
        "/v1/chat/completions",
        { model, messages: [{ role: "user", content: "hi" }] },
        auth,
      );
      assert.equal(r.status, 200);
      await r.text();
    }
    assert.equal(((await (await get(url, "/api/activity?model=b")).json()) as { records: [] }).records.length, 0);
    const act = (await (await get(url, "/api/activity?model=a&limit=1")).json()) as {
      capacity: number;
      total: number;
      records: Array<Record<string, unknown>>;
    };
    assert.equal(act.total, 2);
    assert.equal(act.records.length, 1);
    assert.equal(act.records[0]!.model, "a");
    assert.equal(act.records[0]!.seq, 2);
    assert.equal(act.records[0]!.path, "/v1/chat/completions");
    assert.equal(act.records[0]!.status, 200);
    assert.equal(typeof act.records[0]!.completionTokens, "number");
    for (const bad of ["limit=0", "limit=abc", "since=-1"]) {
      const e = await errorOf(await get(url, `/api/activity?${bad}`));
      assert.equal(e.status, 400, bad);
      assert.equal(e.code, "invalid_parameter");
    }

    // activity follow: the backlog, then a new record as it happens
    const ac = new AbortController();
    const stream = await fetch(`${url}/api/activity?follow=1&since=1`, { headers: auth, signal: ac.signal });
    const reader = stream.body!.getReader();
    let text = "";
    const readUntil = async (re: RegExp) => {
      while (!re.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString("utf8");
      }
    };
    await readUntil(/"seq":2/);
    const r3 = await postJson(url, "/v1/completions", { model: "a", prompt: "x", max_tokens: 2 }, auth);
    await r3.text();
    await readUntil(/"seq":3/);
    ac.abort();
    const events = sseData(text).map((d) => JSON.parse(d) as { seq: number; path: string });
    assert.deepEqual(
      events.map((e) => [e.seq, e.path]),
      [
        [2, "/v1/chat/completions"],
        [3, "/v1/completions"],
      ],
    );

    // config: effective settings, secrets redacted
    const cfgText = await (await get(url, "/api/config")).text();
    for (const secret of ["sk-dash", "hf_secret_value", "sk-upstream-secret"])
      assert.ok(!cfgText.includes(secret), secret);
    const cfg = JSON.parse(cfgText) as {
      settings: { apiKeys: number; configPath: string };
      models: Array<{ name: string; server: { env?: Record<string, string>; extraArgs?: string[] } }>;
      lastReload: unknown;
    };
    assert.equal(cfg.settings.apiKeys, 1);
    assert.equal(cfg.settings.configPath, configPath);
    assert.equal(cfg.models.find((m) => m.name === "a")!.server.env!.OMP_NUM_THREADS, "2");
    assert.equal(cfg.lastReload, null);

    // system: the machine and the binary
    const sys = (await (await get(url, "/api/system")).json()) as {
      machine: { cpu: { logicalCores: number }; ram: { totalBytes: number } };
      llamaServer: { path: string };
    };
    assert.ok(sys.machine.cpu.logicalCores > 0);
    assert.ok(sys.machine.ram.totalBytes > 0);
    assert.match(sys.llamaServer.path, /fake-llama-server/);

    // proxy log: state changes of the models
    const log = await (await get(url, "/api/proxy/logs?lines=50")).text();
    assert.match(log, /^\S+Z a: (unloaded|loading) → /m);
    assert.match(log, /a: loading → ready/);

    // reload: a broken config file is reported and kept as the last reload
    writeFileSync(configPath!, "models: [not, a, map\n");
    const bad = await postJson(url, "/api/config/reload", {}, auth);
    assert.equal(bad.status, 422);
    const badBody = (await bad.json()) as { ok: boolean; errors: string[]; trigger: string };
    assert.equal(badBody.ok, false);
    assert.equal(badBody.trigger, "api");
    assert.ok(badBody.errors.length > 0 && badBody.errors[0]!.length > 10, JSON.stringify(badBody.errors));
    const after = (await (await get(url, "/api/config")).json()) as { lastReload: { ok: boolean; errors: string[] } };
    assert.equal(after.lastReload.ok, false);
    assert.deepEqual(after.lastReload.errors, badBody.errors);
    // the models are kept
    assert.equal(proxy.controller.catalog().length, 2);
    writeFileSync(configPath!, JSON.stringify({ ...config, models: { a: config.models.a } }));
    const good = (await (await postJson(url, "/api/config/reload", {}, auth)).json()) as {
      ok: boolean;
      removed: string[];
    };
    assert.equal(good.ok, true);
    assert.deepEqual(good.removed, ["b"]);

    // pin
    const pin = await postJson(url, "/models/pin", { model: "a", pinned: true }, auth);
    assert.equal(pin.status, 200);
    assert.equal(proxy.controller.state("a")?.spec.pinned, true);
    const listed = (await (await get(url, "/v1/models")).json()) as {
      data: Array<{ id: string; meta: { pinned: boolean } }>;
    };
    assert.equal(listed.data.find((m) => m.id === "a")!.meta.pinned, true);
    assert.equal((await errorOf(await postJson(url, "/models/pin", { model: "zz", pinned: true }, auth))).status, 404);
    assert.equal((await errorOf(await postJson(url, "/models/pin", { model: "a" }, auth))).status, 400);
    assert.equal((await errorOf(await postJson(url, "/models/pin", "[1]", auth))).code, "invalid_json");
  });
});
