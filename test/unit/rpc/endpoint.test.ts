import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  endpointProblem,
  isLoopbackHost,
  openNetworkWarning,
  parseEndpoint,
  uniqueEndpoints,
} from "../../../src/rpc/endpoint.js";
import { bindHost, helpFlags, parseDeviceBanner, rpcServerArgs } from "../../../src/rpc/server.js";

const HELP = `Usage: rpc-server [options]

options:
  -h, --help                       show this help message and exit
  -t, --threads N                  number of threads for the CPU device (default: 1)
  -d, --device <dev1,dev2,...>     comma-separated list of devices
  -H, --host HOST                  host to bind to (default: 127.0.0.1)
  -p, --port PORT                  port to bind to (default: 50052)
  -c, --cache                      enable local file cache
`;

void describe("RPC worker addresses", () => {
  test("host:port with a name or an IPv4 address; whitespace trimmed", () => {
    assert.deepEqual(parseEndpoint("192.168.1.20:50052"), {
      host: "192.168.1.20",
      port: 50052,
      text: "192.168.1.20:50052",
    });
    assert.deepEqual(parseEndpoint(" gpu-box.lan:1 "), { host: "gpu-box.lan", port: 1, text: "gpu-box.lan:1" });
    assert.equal(endpointProblem("localhost:65535"), undefined);
  });

  test("bad addresses say what is wrong", () => {
    assert.match(endpointProblem("192.168.1.20") ?? "", /no port: write host:port/);
    assert.match(endpointProblem("[::1]:50052") ?? "", /not IPv6/);
    assert.match(endpointProblem("fe80::1:50052") ?? "", /not IPv6/);
    assert.match(endpointProblem("host:0") ?? "", /port must be a number from 1 to 65535/);
    assert.match(endpointProblem("host:70000") ?? "", /port must be/);
    assert.match(endpointProblem("host:abc") ?? "", /port must be/);
    assert.match(endpointProblem("bad_host!:1") ?? "", /not a host name or an IPv4 address/);
    assert.match(endpointProblem("300.1.1.1:1") ?? "", /not an IPv4 address/);
    assert.match(endpointProblem(":50052") ?? "", /not a host name/);
    assert.throws(() => parseEndpoint("nope"), /Invalid RPC worker address "nope" has no port/);
  });

  test("each worker once, in order", () => {
    assert.deepEqual(
      uniqueEndpoints(["a:1", "b:2", " a:1", "a:01"]).map((e) => e.text),
      ["a:1", "b:2"],
    );
  });

  test("loopback binds and the open-network warning", () => {
    assert.equal(isLoopbackHost("127.0.0.1"), true);
    assert.equal(isLoopbackHost("127.9.0.3"), true);
    assert.equal(isLoopbackHost("localhost"), true);
    assert.equal(isLoopbackHost("0.0.0.0"), false);
    assert.equal(isLoopbackHost("192.168.1.20"), false);
    const w = openNetworkWarning("0.0.0.0", 50052);
    assert.match(w, /0\.0\.0\.0:50052/);
    assert.match(w, /no\s+authentication/);
    assert.match(w, /trusted\s+network/);
  });
});

void describe("gglib rpc-server's argv", () => {
  test("loopback by default, rpc-server's own flags", () => {
    assert.deepEqual(rpcServerArgs({}, HELP), ["--host", "127.0.0.1", "--port", "50052"]);
    assert.deepEqual(
      rpcServerArgs({ host: "10.0.0.2", port: 50100, threads: 8, devices: ["CUDA0", "CUDA1"], cache: true }, HELP),
      ["--host", "10.0.0.2", "--port", "50100", "--threads", "8", "--device", "CUDA0,CUDA1", "--cache"],
    );
    assert.equal(bindHost("localhost"), "127.0.0.1");
  });

  test("a host name or IPv6 cannot be bound; --mem only where the binary lists it", () => {
    assert.throws(() => bindHost("gpu-box"), /--host must be an IPv4 address/);
    assert.throws(() => bindHost("::1"), /IPv4/);
    assert.throws(() => rpcServerArgs({ memBytes: 2 * 1024 ** 3 }, HELP), /has no --mem option/);
    const withMem = HELP + "  -m, --mem <MiB>                  memory to offer\n";
    assert.ok(helpFlags(withMem).has("--mem"));
    assert.deepEqual(rpcServerArgs({ memBytes: 2 * 1024 ** 3 }, withMem).slice(-2), ["--mem", "2048"]);
  });

  test("the device lines of its start banner", () => {
    const lines = [
      "Starting RPC server v6.0.0",
      "  endpoint       : 127.0.0.1:50052",
      "  local cache    : n/a",
      "Devices:",
      "  CPU: AMD EPYC (24105 MiB, 24105 MiB free)",
      "  CUDA0: NVIDIA GeForce RTX 5090 (32109 MiB, 31588 MiB free)",
      "  transport      : TCP",
    ];
    assert.deepEqual(parseDeviceBanner(lines), [
      { name: "CPU", description: "AMD EPYC", totalMiB: 24105, freeMiB: 24105 },
      { name: "CUDA0", description: "NVIDIA GeForce RTX 5090", totalMiB: 32109, freeMiB: 31588 },
    ]);
  });
});
