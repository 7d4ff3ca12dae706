import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeDeviceCount,
  decodeDeviceMemory,
  decodeHello,
  deviceCountRequest,
  deviceMemoryRequest,
  helloRequest,
  takeResponse,
} from "../../../src/rpc/protocol.js";

void describe("RPC protocol codecs (ggml-rpc.cpp, protocol 6)", () => {
  test("requests: cmd byte, u64 little-endian size, payload", () => {
    const hello = helloRequest();
    assert.equal(hello.length, 1 + 8 + 24);
    assert.equal(hello[0], 14);
    assert.equal(hello.readBigUInt64LE(1), 24n);
    assert.ok(
      hello.subarray(9).every((b) => b === 0),
      "plain TCP: no capability bits",
    );
    assert.deepEqual([...deviceCountRequest()], [15, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...deviceMemoryRequest(2)], [11, 4, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
  });

  test("responses: split off one at a time, incomplete waits, a wrong size is refused", () => {
    const payload = Buffer.alloc(16);
    payload.writeBigUInt64LE(3n * 1024n ** 3n, 0);
    payload.writeBigUInt64LE(8n * 1024n ** 3n, 8);
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(16n, 0);
    const whole = Buffer.concat([size, payload, Buffer.from([1, 2])]);
    assert.equal(takeResponse(whole.subarray(0, 7), 16), undefined);
    assert.equal(takeResponse(whole.subarray(0, 20), 16), undefined);
    const r = takeResponse(whole, 16);
    assert.ok(r && "payload" in r);
    assert.deepEqual(decodeDeviceMemory(r.payload), { freeBytes: 3 * 1024 ** 3, totalBytes: 8 * 1024 ** 3 });
    assert.deepEqual([...r.rest], [1, 2]);
    const bad = takeResponse(whole, 4);
    assert.ok(bad && "error" in bad);
    assert.match(bad.error, /16 bytes where 4 were expected/);
  });

  test("hello and device count payloads", () => {
    const h = Buffer.alloc(28);
    h.set([6, 1, 2], 0);
    assert.deepEqual(decodeHello(h), { major: 6, minor: 1, patch: 2 });
    const c = Buffer.alloc(4);
    c.writeUInt32LE(3, 0);
    assert.equal(decodeDeviceCount(c), 3);
  });
});
