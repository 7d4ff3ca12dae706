// llama.cpp's REAL rpc-server (the rig's, beside its llama-server): the protocol probe (ready with devices and
// free memory; busy while a llama-server holds its one seat; unreachable; not an rpc-server) and `gglib
// rpc-server` (found beside llama-server, ready line, loopback, stops on SIGTERM with its child).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseEndpoint } from "../../src/rpc/endpoint.js";
import { probeWorker } from "../../src/rpc/probe.js";
import { ensureLlamaServer } from "../support/llama-server.js";
import { GGLIB_BIN } from "../support/proxy-harness.js";
import { killQuietly, pidsWithArg, running, waitFor } from "../support/procs.js";
import { freePort, startRpcWorker, type RpcWorker } from "../support/rpc-worker.js";
import { writeTinyModel } from "../support/tiny-models.js";

/** Waits (up to 60 s) for the llama-server on `port` to answer /health; whether it did. */
function healthy(port: number): Promise<boolean> {
  return waitFor(
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/health`)).ok;
      } catch {
        return false;
      }
    },
    60_000,
    100,
  );
}

let dir: string;
let llamaServer: string;
let model: string;
const workers: RpcWorker[] = [];
const servers: Server[] = [];

before(async () => {
  llamaServer = await ensureLlamaServer();
  dir = mkdtempSync(join(tmpdir(), "gglib-rpc-worker-"));
  model = await writeTinyModel(dir, { name: "tiny-rpc", kind: "chat", layers: 2 });
});

after(async () => {
  for (const w of workers) await w.stop();
  for (const s of servers) s.close();
  for (const pid of pidsWithArg(dir)) killQuietly(pid);
  rmSync(dir, { recursive: true, force: true });
});

void describe("the RPC probe against the real rpc-server", { timeout: 120_000 }, () => {
  test("ready: protocol 6, its devices and their free memory", async () => {
    const w = await startRpcWorker();
    workers.push(w);
    const p = await probeWorker(parseEndpoint(w.endpoint));
    assert.equal(p.state, "ready");
    assert.ok(p.state === "ready");
    assert.match(p.version, /^6\.\d+\.\d+$/);
    assert.ok(p.devices.length >= 1);
    assert.ok(p.freeBytes > 0 && p.freeBytes <= p.totalBytes);
    // a probe leaves no connection behind: the worker is free for the next client at once
    const again = await probeWorker(parseEndpoint(w.endpoint));
    assert.equal(again.state, "ready");
  });

  test("busy while a llama-server holds its one connection; ready again once that llama-server is gone", async () => {
    const w = await startRpcWorker();
    workers.push(w);
    const port = await freePort();
    const ls = spawn(llamaServer, ["-m", model, "--port", String(port), "-c", "256", "-lv", "4", "--rpc", w.endpoint], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    ls.stderr.on("data", (b: Buffer) => (log += b.toString()));
    ls.stdout.on("data", (b: Buffer) => (log += b.toString()));
    try {
      const up = await healthy(port);
      assert.ok(up, `llama-server --rpc did not come up: ${log.slice(-800)}`);
      assert.match(log, new RegExp(`RPC0\\[${w.endpoint.replace(/\./g, "\\.")}\\] model buffer size`));
      const t0 = Date.now();
      const p = await probeWorker(parseEndpoint(w.endpoint), { answerTimeoutMs: 800 });
      assert.equal(p.state, "busy", JSON.stringify(p));
      assert.ok(p.state === "busy");
      assert.match(p.detail, /one client at a time/);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      ls.kill("SIGKILL");
      await waitFor(() => ls.exitCode !== null || ls.signalCode !== null, 10_000);
    }
    // the worker takes the next client (here, the probe) once llama-server's connection closed
    const back = await waitFor(
      async () => (await probeWorker(parseEndpoint(w.endpoint))).state === "ready",
      10_000,
      100,
    );
    assert.ok(back, `the worker is ready again after its llama-server is gone: ${w.output().slice(-600)}`);
  });

  test("unreachable (nothing listens) and incompatible (something else answers)", async () => {
    const closed = await freePort();
    const down = await probeWorker(parseEndpoint(`127.0.0.1:${closed}`));
    assert.equal(down.state, "unreachable");
    assert.ok(down.state === "unreachable");
    assert.match(down.detail, /connection refused/);

    const junk = createServer((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const hangup = createServer((s) => s.destroy());
    servers.push(junk, hangup);
    const listen = (srv: Server) =>
      new Promise<number>((r) => srv.listen(0, "127.0.0.1", () => r((srv.address() as { port: number }).port)));
    const a = await probeWorker(parseEndpoint(`127.0.0.1:${await listen(junk)}`));
    assert.equal(a.state, "incompatible");
    assert.ok(a.state === "incompatible");
    assert.match(a.detail, /not an rpc-server of protocol 6\.x/);
    const b = await probeWorker(parseEndpoint(`127.0.0.1:${await listen(hangup)}`));
    assert.equal(b.state, "incompatible");
  });
});

void describe("gglib rpc-server", { timeout: 120_000 }, () => {
  test("finds rpc-server beside llama-server, binds loopback, prints its devices, stops with its child on SIGTERM", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [GGLIB_BIN, "rpc-server", "--port", String(port), "--json"], {
      env: { ...process.env, GGLIB_LLAMA_SERVER: llamaServer, GGLIB_DATA_DIR: join(dir, "data") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      assert.ok(await waitFor(() => out.includes('"event":"ready"'), 30_000), `no ready line: ${out} ${err}`);
      const ready = JSON.parse(out.split("\n").find((l) => l.includes('"ready"'))!) as {
        endpoint: string;
        pid: number;
        version: string;
        devices: { name: string; freeBytes: number }[];
      };
      assert.equal(ready.endpoint, `127.0.0.1:${port}`);
      assert.match(ready.version, /^6\./);
      assert.ok(ready.devices.length >= 1 && ready.devices[0]!.freeBytes > 0);
      assert.equal(ready.devices[0]!.name, "CPU");
      assert.doesNotMatch(err, /WARNING/, "no open-network warning on loopback");
      const p = await probeWorker(parseEndpoint(ready.endpoint));
      assert.equal(p.state, "ready");
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      assert.ok(await waitFor(() => !running(ready.pid), 5_000), "rpc-server stopped with gglib rpc-server");
      assert.match(out, /"event":"exited","expected":true/);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("a client that hangs up before the answer kills a bare rpc-server (SIGPIPE); the one gglib runs survives", async () => {
    // what a probe that gave up (or a main host killed mid-request) does: HELLO, then gone before the answer
    const rude = (endpoint: string) =>
      new Promise<void>((resolve) => {
        const [host, port] = endpoint.split(":");
        const s = connect({ host: host!, port: Number(port) }, () => {
          const hello = Buffer.alloc(33);
          hello[0] = 14;
          hello.writeBigUInt64LE(24n, 1);
          s.write(hello, () => s.destroy());
        });
        s.on("close", () => resolve());
        s.on("error", () => resolve());
      });
    // a llama-server holds the worker, the rude client waits in its backlog, then the llama-server goes away
    const hold = async (endpoint: string) => {
      const port = await freePort();
      const ls = spawn(llamaServer, ["-m", model, "--port", String(port), "-c", "256", "--rpc", endpoint], {
        stdio: "ignore",
      });
      await healthy(port);
      await rude(endpoint);
      ls.kill("SIGKILL");
      await waitFor(() => ls.exitCode !== null || ls.signalCode !== null, 10_000);
    };

    const bare = await startRpcWorker();
    workers.push(bare);
    const bareExit = new Promise<NodeJS.Signals | null>((r) => bare.child.on("exit", (_c, sig) => r(sig)));
    await hold(bare.endpoint);
    assert.equal(await bareExit, "SIGPIPE", "llama.cpp's rpc-server dies of SIGPIPE (80fb11a)");

    const port = await freePort();
    const child = spawn(process.execPath, [GGLIB_BIN, "rpc-server", "--port", String(port), "--json"], {
      env: { ...process.env, GGLIB_LLAMA_SERVER: llamaServer, GGLIB_DATA_DIR: join(dir, "data") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    try {
      assert.ok(await waitFor(() => out.includes('"event":"ready"'), 30_000), `no ready line: ${out}`);
      await hold(`127.0.0.1:${port}`);
      const alive = await waitFor(
        async () => (await probeWorker(parseEndpoint(`127.0.0.1:${port}`))).state === "ready",
        10_000,
        100,
      );
      assert.ok(alive, "gglib's rpc-server still serves after a client hung up early");
      assert.doesNotMatch(out, /"event":"exited"/);
    } finally {
      child.kill("SIGTERM");
      await waitFor(() => child.exitCode !== null, 5_000);
      child.kill("SIGKILL");
    }
  });

  test("a clear error when rpc-server is missing", async () => {
    const child = spawn(process.execPath, [GGLIB_BIN, "rpc-server", "--binary", join(dir, "no-such-rpc-server")], {
      env: { ...process.env, GGLIB_DATA_DIR: join(dir, "data") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    assert.equal(code, 1);
    assert.match(err, /rpc-server binary not found at .*no-such-rpc-server \(from --binary\)/);
    assert.match(err, /gglib llama install/);
  });
});
