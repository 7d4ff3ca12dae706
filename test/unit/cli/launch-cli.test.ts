/** gglib launch: the proxy URL it uses (pure parts of src/cli/commands/launch/proxy.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_PROXY_URL, isLoopbackUrl, proxyUrlOf } from "../../../src/cli/commands/launch/proxy.js";

test("the proxy URL: --url, else $GGLIB_PROXY_URL, else the config file's host and port, else the default", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gglib-launch-url-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "gglib.yaml");
  writeFileSync(config, "host: 0.0.0.0\nport: 11434\n");
  assert.equal(proxyUrlOf("http://box:9000/v1/", {}, config), "http://box:9000");
  assert.equal(proxyUrlOf(undefined, { GGLIB_PROXY_URL: "http://127.0.0.1:8181/" }, config), "http://127.0.0.1:8181");
  assert.equal(proxyUrlOf(undefined, {}, config), "http://127.0.0.1:11434", "a wildcard bind is reached on loopback");
  writeFileSync(config, "port: 8099\n");
  assert.equal(proxyUrlOf(undefined, {}, config), "http://127.0.0.1:8099");
  assert.equal(proxyUrlOf(undefined, {}, join(dir, "missing.yaml")), DEFAULT_PROXY_URL);
});

test("a proxy is started only for a loopback URL", () => {
  assert.ok(isLoopbackUrl("http://127.0.0.1:8080"));
  assert.ok(isLoopbackUrl("http://localhost:8080"));
  assert.ok(isLoopbackUrl("http://[::1]:8080"));
  assert.ok(!isLoopbackUrl("http://10.0.0.2:8080"));
  assert.ok(!isLoopbackUrl("not a url"));
});
