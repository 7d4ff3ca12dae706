// Numbers as people write and read them (src/core/units.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, parseSize } from "../../../src/core/units.js";

test("sizes people type: parseSize", () => {
  assert.equal(parseSize("24GiB"), 24 * 1024 ** 3);
  assert.equal(parseSize("512 MiB"), 512 * 1024 ** 2);
  assert.equal(parseSize("8G"), 8 * 1024 ** 3);
  assert.equal(parseSize("1.5g"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("1000"), 1000);
  assert.equal(parseSize(42), 42);
  assert.throws(() => parseSize("lots"), /Invalid size/);
});

test("sizes people read: formatBytes, binary units, three significant digits", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(12 * 1024), "12.0 KiB");
  assert.equal(formatBytes(320 * 1024 ** 2), "320 MiB");
  assert.equal(formatBytes(1.5 * 1024 ** 3), "1.5 GiB");
  assert.equal(formatBytes(2 * 1024 ** 4), "2.0 TiB");
  assert.equal(formatBytes(1024 ** 5), "1024 TiB", "TiB is the largest unit");
  assert.equal(formatBytes(-5 * 1024 ** 2), "-5.0 MiB");
});
