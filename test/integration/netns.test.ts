// The test network itself (test/support/netns.ts): hosts reach each other at their addresses, a host's loopback
// is its own, and close() leaves no namespace, bridge, claim or process behind.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { createTestNet, type TestHost } from "../support/netns.js";

/** Starts a one-line HTTP server on `host` (at `host.ip:port`, and on its loopback) answering its own name. */
function serve(host: TestHost, port: number) {
  const code = `
    const http = require("node:http");
    const h = (req, res) => res.end(${JSON.stringify(host.name)});
    http.createServer(h).listen(${port}, ${JSON.stringify(host.ip)}, () => {
      http.createServer(h).listen(${port + 1}, "127.0.0.1", () => process.stdout.write("up\\n"));
    });`;
  const child = host.spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const up = new Promise<void>((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.once("exit", (c) => reject(new Error(`server on ${host.name} exited ${c}`)));
  });
  return { child, up };
}

/** GET from inside `host` (a node child in its namespace): the body, or the error code. */
function getFrom(host: TestHost, url: string): string {
  const code = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(3000) }).then((r) => r.text())
    .then((t) => process.stdout.write(t), (e) => process.stdout.write("ERR " + (e.cause?.code ?? e.name)));`;
  const [cmd, args] = host.argv(process.execPath, ["-e", code]);
  return execFileSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
}

test("test hosts: each reachable at its address, loopback its own, nothing left after close", async (t) => {
  const net = await createTestNet(["a", "b"]);
  if (net.reason) t.diagnostic(`loopback mode: ${net.reason}`);
  const [a, b] = net.hosts as [TestHost, TestHost];
  assert.notEqual(a.ip, b.ip);
  const port = 40000 + (process.pid % 5000) * 2;
  const sa = serve(a, port);
  try {
    await sa.up;
    // from the test process, and from the other host
    assert.equal(await (await fetch(`http://${a.ip}:${port}/`)).text(), "a");
    assert.equal(getFrom(b, `http://${a.ip}:${port}/`), "a");
    if (net.mode === "netns") {
      // a's loopback server is a's alone: not on the test's loopback, not on b's
      assert.equal(getFrom(a, `http://127.0.0.1:${port + 1}/`), "a");
      assert.match(getFrom(b, `http://127.0.0.1:${port + 1}/`), /^ERR /);
      await assert.rejects(fetch(`http://127.0.0.1:${port + 1}/`, { signal: AbortSignal.timeout(3000) }));
    }
  } finally {
    await net.close();
  }
  if (net.mode === "netns") {
    // close() killed the server still running in a's namespace
    await new Promise((r) => setTimeout(r, 200));
    assert.notEqual(sa.child.exitCode ?? sa.child.signalCode, null, "the host's process was killed");
    const left = existsSync("/run/netns")
      ? readdirSync("/run/netns").filter((n) => n.startsWith(`ggn${process.pid}-`))
      : [];
    assert.deepEqual(left, [], "no namespace left");
    const links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
    assert.doesNotMatch(links, new RegExp(`ggn[bv]${process.pid.toString(36)}`), "no bridge or veth left");
  } else {
    sa.child.kill("SIGKILL");
  }
  await net.close(); // twice is fine
});
