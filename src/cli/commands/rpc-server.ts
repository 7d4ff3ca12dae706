import { spawn } from "node:child_process";
import { createServer } from "node:net";
import type { Command } from "commander";
import { GglibError } from "../../core/errors.js";
import { PORT } from "../../core/units.js";
import { resolveRpcServer } from "../../llama/binary.js";
import { run } from "../../process/exec.js";
import { LineSplitter } from "../../process/lines.js";
import { signalGroup } from "../../process/terminate/signals.js";
import { DEFAULT_RPC_HOST, DEFAULT_RPC_PORT, isLoopbackHost, openNetworkWarning } from "../../rpc/endpoint.js";
import { probeWorker, type WorkerProbe } from "../../rpc/probe.js";
import { bindHost, parseDeviceBanner, rpcServerArgs, type RpcServerOptions } from "../../rpc/server.js";
import { colors } from "../../term/color.js";
import { formatBytes } from "../../term/format.js";
import {
  addOptions,
  listOption,
  numberOption,
  readOptions,
  switchOption,
  textOption,
  type OptionTable,
} from "../options.js";

interface Flags extends RpcServerOptions {
  binary?: string;
  json?: boolean;
  verbose?: boolean;
  readyTimeout?: number;
}

const OPTIONS: OptionTable<Flags> = {
  host: textOption(
    "-H, --host <address>",
    "IPv4 address to listen on; anything but loopback is reachable from the network (no authentication!)",
    DEFAULT_RPC_HOST,
  ),
  port: {
    ...numberOption("-p, --port <port>", "port to listen on", { ...PORT, min: 1 }),
    defaultValue: DEFAULT_RPC_PORT,
  },
  threads: numberOption("-t, --threads <n>", "CPU threads for the CPU device (rpc-server's default: 1)", {
    kind: "integer",
    min: 1,
  }),
  devices: listOption(
    "-d, --device <names>",
    "devices to offer (comma-separated or repeated, e.g. CUDA0); default: all accelerators, else the CPU",
  ),
  cache: switchOption("-c, --cache", "keep large tensors in a local file cache (faster reloads of the same model)"),
  memBytes: numberOption("--mem <size>", "memory to offer (only if this rpc-server's --help lists --mem)", {
    kind: "size",
    example: "16GiB",
  }),
  binary: textOption("--binary <path>", "the rpc-server binary (default: beside gglib's llama-server, then PATH)"),
  readyTimeout: {
    ...numberOption("--ready-timeout <seconds>", "give up if it does not answer within this long", {
      kind: "seconds",
      min: 1,
    }),
    defaultValue: 15,
  },
  verbose: switchOption("-v, --verbose", "print rpc-server's own lines (each client connection)"),
  json: switchOption("--json", "print JSON lines on stdout (ready, client, exited)"),
};

export function register(program: Command): void {
  const cmd = program
    .command("rpc-server")
    .description(
      "Run llama.cpp's rpc-server: this machine's memory and devices for a model split across hosts (llama-server --rpc).",
    );
  addOptions(cmd, OPTIONS)
    .addHelpText(
      "after",
      `
The RPC protocol has no authentication and no encryption: whoever reaches the port can allocate memory and run
computations here. It listens on 127.0.0.1 unless --host says otherwise; use another address only on a network
you trust (a LAN you control, a VPN) and let only the main host in.

One client at a time: a worker serves one llama-server (one model) at a time; the proxy keeps models that share
a worker apart.

Examples:
  gglib rpc-server                                   this machine only (127.0.0.1:50052), e.g. to try it out
  gglib rpc-server --host 192.168.1.20               reachable on the LAN at 192.168.1.20:50052
  gglib rpc-server --host 10.0.0.2 --port 50100 -t 8 --cache
  gglib rpc-server --device CUDA0 --json             one GPU; JSON lines for scripts

Then on the main host, in the config file:
  models:
    big: { path: ./big.gguf, rpc: [192.168.1.20:50052] }

Exit status: 0 after Ctrl-C / SIGTERM, 1 if rpc-server could not start or died.`,
    )
    .action(async (o: Record<string, unknown>) => {
      process.exitCode = await rpcServer(readOptions(OPTIONS, o));
    });
}

async function rpcServer(f: Partial<Flags>): Promise<number> {
  const out = process.stdout;
  const err = process.stderr;
  const c = colors(err);
  const json = f.json === true;
  const emit = (event: Record<string, unknown>) => {
    if (json) out.write(JSON.stringify(event) + "\n");
  };
  const host = bindHost(f.host);
  const port = f.port ?? DEFAULT_RPC_PORT;
  const bin = await resolveRpcServer(f.binary ? { explicit: f.binary } : {});
  const help = await run(bin.path, ["--help"], { timeoutMs: 10_000 });
  const args = rpcServerArgs({ ...f, host, port }, help.stdout + help.stderr);
  if (!json) err.write(c.dim(`rpc-server: ${bin.path}\n`));
  if (!isLoopbackHost(host)) err.write(c.yellow(c.bold(openNetworkWarning(host, port))) + "\n");

  await checkPortFree(host, port);
  // rpc-server dies of SIGPIPE when a client hangs up before it has written its answer (a main host killed
  // mid-request, a probe that gave up): started with SIGPIPE ignored (kept across exec), it sees EPIPE instead,
  // drops that client and serves the next
  const [cmd, argv] =
    process.platform === "win32"
      ? [bin.path, args]
      : ["/bin/sh", ["-c", 'trap "" PIPE; exec "$0" "$@"', bin.path, ...args]];
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], detached: process.platform !== "win32" });
  const lines: string[] = [];
  let clients = 0;
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > 200) lines.shift();
    if (line.startsWith("Accepted client connection")) {
      clients++;
      // the first connection is our own readiness probe
      if (clients > 1) emit({ event: "client", connected: true });
    } else if (line.startsWith("Client connection closed") && clients > 1) emit({ event: "client", connected: false });
    if (f.verbose && !json) err.write(c.dim(line) + "\n");
  };
  const so = new LineSplitter(onLine);
  const se = new LineSplitter(onLine);
  child.stdout.on("data", (b: Buffer) => so.push(b));
  child.stderr.on("data", (b: Buffer) => se.push(b));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      so.end();
      se.end();
      resolve({ code, signal });
    });
  });
  const spawnError = new Promise<Error>((resolve) => child.on("error", resolve));

  let stopping = false;
  let signals = 0;
  const stop = (sig: NodeJS.Signals) => {
    signals++;
    stopping = true;
    if (child.pid === undefined) return;
    if (signals > 1) signalGroup(child.pid, "SIGKILL");
    else {
      if (!json) err.write(`\n${sig}: stopping rpc-server…\n`);
      signalGroup(child.pid, "SIGTERM");
    }
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("SIGHUP", stop);
  const killOnExit = () => {
    if (child.pid !== undefined && child.exitCode === null) signalGroup(child.pid, "SIGKILL");
  };
  process.on("exit", killOnExit);

  try {
    // ready: it answers the protocol's handshake on its port (its start banner is buffered until the first client)
    const probeHost = host === "0.0.0.0" ? "127.0.0.1" : host;
    const deadline = Date.now() + (f.readyTimeout ?? 15) * 1000;
    let probe: WorkerProbe | undefined;
    let gone: { code: number | null; signal: NodeJS.Signals | null } | Error | undefined;
    void exited.then((x) => (gone = x));
    void spawnError.then((e) => (gone = e));
    while (!gone && !stopping && Date.now() < deadline) {
      probe = await probeWorker({ host: probeHost, port, text: `${probeHost}:${port}` }, { answerTimeoutMs: 1_000 });
      if (probe.state === "ready") break;
      await new Promise((r) => setTimeout(r, 150));
    }
    if (gone instanceof Error) {
      throw new GglibError("binary_not_executable", `Cannot start ${bin.path}: ${gone.message}`);
    }
    // the answer must come from this child: one that exited (rpc-server exits 0 when it cannot bind) did not give it
    await new Promise((r) => setTimeout(r, 100));
    if (gone || probe?.state !== "ready") {
      if (stopping && !gone) {
        await exited;
        return 0;
      }
      if (!gone) killOnExit();
      const tail = lines.slice(-8);
      const why = tail.some((l) => /Failed to create server socket/.test(l))
        ? `it could not listen on ${host}:${port} (the port is taken, or the address is not one of this machine's).`
        : gone
          ? `it exited (${gone.signal ? `signal ${gone.signal}` : `exit code ${gone.code}`}) before it listened.`
          : `it did not answer on ${probeHost}:${port} within ${f.readyTimeout ?? 15} s (${probe?.state}: ${probe && probe.state !== "ready" ? probe.detail : ""}).`;
      emit({ event: "failed", error: `rpc-server did not start: ${why}`, log: tail });
      throw new GglibError("exited_during_load", `rpc-server did not start: ${why}`, {
        logTail: tail,
        hint: "Pick another port with --port, or an address of this machine with --host.",
      });
    }
    const banner = parseDeviceBanner(lines);
    const devices = probe.devices.map((d, i) => ({
      name: banner[i]?.name ?? `device ${i}`,
      description: banner[i]?.description ?? "",
      freeBytes: d.freeBytes,
      totalBytes: d.totalBytes,
    }));
    const endpoint = `${host === "0.0.0.0" ? "<this host's address>" : host}:${port}`;
    emit({ event: "ready", endpoint: `${host}:${port}`, pid: child.pid, version: probe.version, devices });
    if (!json) {
      const o = colors(out);
      out.write(
        `${o.green("●")} rpc-server listening on ${o.bold(`${host}:${port}`)} (RPC protocol ${probe.version}), pid ${child.pid}\n`,
      );
      for (const d of devices)
        out.write(
          `  ${d.name}${d.description ? ` (${d.description})` : ""}: ${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}\n`,
        );
      out.write(
        `  On the main host: rpc: [${endpoint}] in the model's settings. One client at a time; Ctrl-C to stop.\n`,
      );
    }
    const end = await exited;
    if (stopping) {
      emit({ event: "exited", expected: true });
      if (!json) err.write("stopped.\n");
      return 0;
    }
    const how = end.signal ? `killed by ${end.signal}` : `exit code ${end.code}`;
    emit({ event: "exited", expected: false, exitCode: end.code, signal: end.signal });
    err.write(`gglib: rpc-server exited unexpectedly (${how}).\n`);
    const tail = lines.slice(-10);
    if (tail.length > 0) err.write("Last lines of its output:\n" + tail.map((l) => "  " + l).join("\n") + "\n");
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    process.off("SIGHUP", stop);
  }
}

/** Fails clearly when the port is taken (rpc-server itself would print one line and exit 0). */
function checkPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) => {
      const why =
        e.code === "EADDRINUSE"
          ? `port ${port} on ${host} is taken (another rpc-server?)`
          : e.code === "EADDRNOTAVAIL"
            ? `${host} is not an address of this machine`
            : `${e.code ?? "error"}: ${e.message}`;
      reject(
        new GglibError("port_in_use", `rpc-server cannot listen on ${host}:${port}: ${why}.`, {
          port,
          hint: "Pick another port with --port, or an address of this machine with --host (ip addr lists them).",
        }),
      );
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}
