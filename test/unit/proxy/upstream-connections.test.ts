/**
 * The connection cap per llama-server (forward.ts upstreamConnections): its slots plus two, so a burst waits in
 * the proxy and llama-server keeps HTTP threads free for /health.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_SLOTS, SPARE_CONNECTIONS, upstreamConnections } from "../../../src/proxy/forward.js";

test("slots from --parallel, else llama-server's auto (4), plus two spare connections", () => {
  assert.equal(SPARE_CONNECTIONS, 2);
  assert.equal(upstreamConnections(undefined), DEFAULT_SLOTS + 2);
  assert.equal(upstreamConnections({}), 6);
  assert.equal(upstreamConnections({ parallel: 1 }), 3);
  assert.equal(upstreamConnections({ parallel: 16 }), 18);
});

test("a --parallel/-np in the extra args wins (the last one, as in llama-server); junk is ignored", () => {
  assert.equal(upstreamConnections({ parallel: 2, extraArgs: ["-np", "8"] }), 10);
  assert.equal(upstreamConnections({ extraArgs: ["--parallel=3", "--threads", "4"] }), 5);
  assert.equal(upstreamConnections({ extraArgs: ["-np", "2", "--parallel", "5"] }), 7);
  assert.equal(upstreamConnections({ extraArgs: ["-np", "x"] }), 6);
  assert.equal(upstreamConnections({ extraArgs: ["-np"] }), 6);
  assert.equal(upstreamConnections({ parallel: 2, extraArgs: ["-np", "0"] }), 4);
});
