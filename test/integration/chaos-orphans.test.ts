/**
 * Chaos: orphans of an earlier run. A llama-server that outlived its gglib (the parent-death signal missed it: a
 * system without setpriv, or a gglib that crashed before it could stop it) is ended by the next proxy's sweep, at
 * start-up, before the auto memory budget is read (the start-up part was a bug found here, fixed in e643867).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { writePidfile } from "../../src/process/pidfile.js";
import { FAKE_LLAMA_SERVER, fakeLlamaEnv, freePort } from "../support/fake-llama.js";
import { postJson, proxyDir, startProxyProcess } from "../support/proxy-harness.js";
import { running, waitFor } from "../support/procs.js";

const msgs = [{ role: "user", content: "hi" }];

/**
 * An orphan: a fake llama-server in its own process group, with a
 * pidfile whose owner is dead, in the data dir of the proxy.
 */
async function plantOrphan(dir: string): Promise<{ pid: number; pidfile: string }> {
  const port = await freePort();
  const model = join(dir, "models", "a.gguf");
  const child = spawn(FAKE_LLAMA_SERVER, ["-m", model, "--host", "127.0.0.1", "--port", String(port)], {
    env: fakeLlamaEnv({ loadMs: 10 }),
    stdio: "ignore",
    detached: true,
  });
  child.unref();
  const pid = child.pid!;
  // the owner: a process that has exited
  const dead = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  const deadPid = dead.pid!;
  await new Promise((r) => dead.once("exit", r));
  const pidsDir = join(dir, "data", "pids");
  const pidfile = await writePidfile(pidsDir, "orphan-a", {
    pid,
    port,
    binaryPath: FAKE_LLAMA_SERVER,
    model: "a",
    modelPath: model,
    startedAt: Date.now(),
    ownerPid: deadPid,
  });
  assert.ok(await waitFor(() => running(pid), 2_000));
  return { pid, pidfile };
}

describe("chaos: orphans of an earlier run", { timeout: 60_000 }, () => {
  test("a restarted proxy sweeps an orphaned llama-server of an earlier run (pidfile with a dead owner) when it starts a model", async (t) => {
    const dir = proxyDir(t, ["a"]);
    const orphan = await plantOrphan(dir);
    const p = await startProxyProcess(t, { dir, knobs: { loadMs: 50 } });
    const r = await postJson(p.url, "/v1/chat/completions", { model: "a", messages: msgs });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    assert.ok(await waitFor(() => !running(orphan.pid), 3_000), "the orphan was ended");
    assert.ok(!existsSync(orphan.pidfile), "its pidfile was removed");
    assert.equal(p.llamaPids().length, 1, "only the new llama-server runs");
  });

  test("the orphan sweep runs when the proxy starts, before any request (an orphan holds memory the auto budget would miss)", async (t) => {
    const dir = proxyDir(t, ["a"]);
    const orphan = await plantOrphan(dir);
    await startProxyProcess(t, { dir, knobs: { loadMs: 50 } });
    // the sweep is done before the proxy says it is ready
    assert.ok(await waitFor(() => !running(orphan.pid), 1_000), "the orphan was ended at start-up");
    assert.ok(!existsSync(orphan.pidfile), "its pidfile was removed");
  });
});
