/** Peer settings: the schema (config file) and their resolution (key from the environment, URL, filter, timeouts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../../src/models/config-file.js";
import { offered, resolvePeer, resolvePeers } from "../../../src/peers/config.js";
import { GglibError } from "../../../src/core/errors.js";

const yaml = (peers: string) => `peers:\n${peers}`;

test("a config file's peers parse, and resolve with defaults", () => {
  const { config } = parseConfig(
    yaml("  gpu2:\n    url: http://10.0.0.2:8080\n    apiKeyEnv: GPU2_KEY\n    filter: '^qwen'\n"),
    "/x/c.yaml",
  );
  const [p] = resolvePeers(config.peers, { GPU2_KEY: "sk-2" });
  assert.ok(p);
  assert.equal(p.name, "gpu2");
  assert.equal(p.origin, "http://10.0.0.2:8080");
  assert.equal(p.basePath, "");
  assert.equal(p.apiKey, "sk-2");
  assert.equal(p.kind, "auto");
  assert.equal(p.connectTimeoutMs, 5000);
  assert.equal(p.headersTimeoutMs, 0);
  assert.equal(p.healthTimeoutMs, 5000);
  assert.equal(p.pollIntervalMs, 2000);
  assert.equal(p.events, true);
  assert.ok(offered(p, "qwen3"));
  assert.ok(!offered(p, "llama"));
});

test("apiKey takes ${env.NAME}, a literal, or nothing; a missing variable is a clear error", () => {
  assert.equal(resolvePeer("a", { url: "http://h:1", apiKey: "${env.K}" }, { K: "v" }).apiKey, "v");
  assert.equal(resolvePeer("a", { url: "http://h:1", apiKey: "literal" }, {}).apiKey, "literal");
  assert.equal(resolvePeer("a", { url: "http://h:1" }, {}).apiKey, undefined);
  assert.throws(
    () => resolvePeer("a", { url: "http://h:1", apiKey: "${env.NOPE}" }, {}),
    (e: unknown) => e instanceof GglibError && /Peer 'a': apiKey names the environment variable NOPE/.test(e.message),
  );
  assert.throws(() => resolvePeer("a", { url: "http://h:1", apiKeyEnv: "NOPE" }, {}), /NOPE, which is not set/);
  assert.throws(() => resolvePeer("a", { url: "http://h:1", apiKey: "${HOME}" }, {}), /not '\$\{env.NAME\}'/);
});

test("bad peers are refused with the peer and the field named", () => {
  const bad = (peers: string, re: RegExp) =>
    assert.throws(
      () => resolvePeers(parseConfig(yaml(peers), "/x/c.yaml").config.peers, {}),
      (e: unknown) => e instanceof GglibError && re.test(e.message),
    );
  bad("  a/b:\n    url: http://h:1\n", /peers\.a\/b: 'a\/b' is not a peer name/);
  bad("  a:\n    url: ftp://h:1\n", /peers\.a\.url/);
  bad("  a:\n    url: http://h:1\n    extra: 1\n", /peers\.a/);
  bad("  a:\n    url: http://h:1\n    apiKey: x\n    apiKeyEnv: Y\n", /apiKey or apiKeyEnv, not both/);
  bad("  a:\n    url: http://h:1\n    kind: ollama\n", /peers\.a\.kind/);
  bad("  a:\n    url: http://h:1\n    filter: '('\n", /Peer 'a': filter is not a regular expression/);
  bad("  a:\n    url: http://user:pw@h:1\n", /holds credentials/);
  bad("  a:\n    url: http://h:1/v1\n", /ends with \/v1/);
});

test("a base path is kept (no trailing slash); models and filter both apply", () => {
  const p = resolvePeer("a", { url: "https://h.example/llm/", models: ["x", "y"], filter: "y" }, {});
  assert.equal(p.origin, "https://h.example");
  assert.equal(p.basePath, "/llm");
  assert.ok(offered(p, "y"));
  assert.ok(!offered(p, "x"));
  assert.ok(!offered(p, "z"));
});
