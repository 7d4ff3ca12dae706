import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseChildLine, EXIT_COMMAND } from "../../../src/process/child-protocol.js";
import { failureReason, isBindFailure, isShutdownStarted, logLevel } from "../../../src/process/llama-log.js";
import { LogBuffer } from "../../../src/process/log-buffer.js";
import { healthChanged } from "../../../src/process/health-monitor.js";
import { cmdlineMatches } from "../../../src/process/pidfile.js";
import { parseHelpFlags, parseVersion } from "../../../src/llama/capabilities.js";
import { LineSplitter } from "../../../src/process/lines.js";

// recorded stdout of a real llama-server in child mode (fixture 07i-child-mode)
const READY =
  'cmd_child_to_router:state:{"state":"ready","payload":{"id":"tiny-a","aliases":["tiny-a"],"tags":[],"object":"model","created":1795609881,"owned_by":"llamacpp","meta":{"vocab_type":true,"n_vocab":32000,"n_ctx":2048,"n_ctx_train":2048,"n_embd":64,"n_params":4178240,"size":8357120,"ftype":"F16"}}}';

describe("child protocol", () => {
  test("loading lines give progress", () => {
    const m = parseChildLine(
      'cmd_child_to_router:state:{"state":"loading","payload":{"stages":["text_model"],"current":"text_model","value":0.42}}',
    );
    assert.deepEqual(m, { kind: "loading", progress: { stage: "text_model", stages: ["text_model"], value: 0.42 } });
  });
  test("ready line carries the model entry", () => {
    const m = parseChildLine(READY);
    assert.equal(m?.kind, "ready");
    assert.equal(m?.kind === "ready" && m.info.meta?.n_ctx, 2048);
  });
  test("progress values are clamped; malformed and foreign lines are ignored", () => {
    const m = parseChildLine('cmd_child_to_router:state:{"state":"loading","payload":{"value":7}}');
    assert.equal(m?.kind === "loading" && m.progress.value, 1);
    assert.equal(parseChildLine("cmd_child_to_router:state:{not json"), undefined);
    assert.equal(parseChildLine("0.00.019.823 I srv    load_model: loading model"), undefined);
    assert.equal(parseChildLine("cmd_child_to_router:state:[1]"), undefined);
  });
  test("exit command is one line", () => assert.equal(EXIT_COMMAND, "cmd_router_to_child:exit\n"));
});

describe("llama-server log lines", () => {
  test("reason of a missing model (fixture 07a)", () => {
    const lines = readFileSync("test/fixtures/llama-server/07a-missing-model.stderr.txt", "utf8").split("\n");
    assert.match(failureReason(lines) ?? "", /failed to open GGUF file/);
  });
  test("reason of a truncated GGUF (fixture 07b)", () => {
    const lines = readFileSync("test/fixtures/llama-server/07b-truncated-gguf.stderr.txt", "utf8").split("\n");
    assert.match(failureReason(lines) ?? "", /failed to read key-value pairs/);
  });
  test("an unknown flag (fixture 07d)", () => {
    assert.equal(failureReason(["error: invalid argument: --bogus-flag"]), "error: invalid argument: --bogus-flag");
  });
  test("bind failure and shutdown markers (fixtures 07c, 07e)", () => {
    assert.ok(
      isBindFailure(
        "0.00.035.111 E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 28114",
      ),
    );
    assert.ok(!isBindFailure("0.00.259.684 I srv  llama_server: listening on http://127.0.0.1:28101"));
    assert.ok(isShutdownStarted("0.05.001.000 I srv    operator(): operator(): cleaning up before exit..."));
    assert.equal(logLevel("0.00.019.823 E srv    load_model: x"), "E");
    assert.equal(failureReason(["0.00.1.1 I fine"]), undefined);
  });
});

describe("LogBuffer", () => {
  test("keeps the last N lines in order", () => {
    const b = new LogBuffer(3);
    for (const l of ["a", "b", "c", "d", "e"]) b.push(l);
    assert.deepEqual(b.tail(), ["c", "d", "e"]);
    assert.deepEqual(b.tail(2), ["d", "e"]);
    assert.deepEqual(b.tail(10), ["c", "d", "e"]);
    assert.equal(b.total, 5);
    assert.throws(() => new LogBuffer(0));
  });
});

describe("LineSplitter", () => {
  test("splits on \\n, \\r\\n and \\r across chunks, including multibyte characters split in two", () => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l));
    const euro = Buffer.from("€");
    s.push("a\r\nb");
    s.push(Buffer.concat([Buffer.from("\nc"), euro.subarray(0, 1)]));
    s.push(Buffer.concat([euro.subarray(1), Buffer.from("\r[ 50%] x\n")]));
    s.push("tail");
    s.end();
    assert.deepEqual(out, ["a", "b", "c€", "[ 50%] x", "tail"]);
  });
  test("bounds an endless line", () => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l), 10);
    s.push("x".repeat(25));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.length, 10);
  });
});

describe("health change detection", () => {
  test("reports only changes of status", () => {
    assert.ok(healthChanged(undefined, { status: "healthy" }));
    assert.ok(!healthChanged({ status: "healthy" }, { status: "healthy" }));
    assert.ok(healthChanged({ status: "healthy" }, { status: "unhealthy", reason: "timeout" }));
    assert.ok(!healthChanged({ status: "unhealthy", reason: "a" }, { status: "unhealthy", reason: "b" }));
  });
});

describe("pidfile command-line check", () => {
  test("matches our binary directly or behind an interpreter, and the port", () => {
    assert.ok(cmdlineMatches(["/opt/llama-server", "-m", "x", "--port", "9001"], ["/opt/llama-server"], 9001));
    assert.ok(
      cmdlineMatches(["node", "/t/fake-llama-server.mjs", "--port", "9001"], ["/t/fake-llama-server.mjs"], 9001),
    );
    assert.ok(!cmdlineMatches(["/opt/llama-server", "--port", "9002"], ["/opt/llama-server"], 9001));
    assert.ok(!cmdlineMatches(["/usr/bin/vim", "/opt/llama-server"], ["/other"], undefined));
  });
});

describe("capability probe parsers", () => {
  test("flags from the recorded --help", () => {
    const flags = parseHelpFlags(readFileSync("test/fixtures/llama-server/server-help.txt", "utf8"));
    for (const f of [
      "-m",
      "--host",
      "--port",
      "-a",
      "--alias",
      "--metrics",
      "-c",
      "-ngl",
      "--jinja",
      "--no-jinja",
      "--reasoning-format",
      "--reasoning-budget",
      "-fa",
      "--parallel",
      "--cache-type-k",
      "--cache-type-v",
      "--embeddings",
      "--mlock",
      "--models-dir",
      "--cache-type-k-draft",
      "-ctkd",
    ]) {
      assert.ok(flags.has(f), f);
    }
    assert.ok(!flags.has("--bogus-flag"));
    assert.ok(!flags.has("-0"));
  });
  test("version text (fixture server-version.txt)", () => {
    const v = parseVersion("version: 0.4.0-dev (build 1, commit 80fb11a)\nbuilt with GNU 12.2.0 for Linux x86_64\n");
    assert.deepEqual(v, {
      version: "0.4.0-dev (build 1, commit 80fb11a)",
      build: 1,
      commit: "80fb11a",
      builtWith: "built with GNU 12.2.0 for Linux x86_64",
    });
    assert.deepEqual(parseVersion("garbage"), {
      version: undefined,
      build: undefined,
      commit: undefined,
      builtWith: undefined,
    });
  });
});
