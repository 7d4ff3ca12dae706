/**
 * Asks an RPC worker (llama.cpp's rpc-server) what it has: HELLO, DEVICE_COUNT, then GET_DEVICE_MEMORY for each
 * device, on one short connection that is closed at once.
 *
 * rpc-server serves one client at a time (accept → serve until that client closes → accept the next), and a
 * llama-server started with `--rpc` keeps its connection for its whole life. A worker in use therefore accepts
 * the TCP connection (the kernel's backlog) and never answers: a probe that connects but hears nothing within
 * `answerTimeoutMs` reports `busy`, not dead. A probe must never stay connected while a llama-server starts on
 * that worker: it would take the worker's only seat.
 *
 * And a busy probe must not simply hang up. Its HELLO waits in the worker's backlog; when the worker takes it
 * later it writes its answer in two sends, and if the probe's socket is gone the first draws a TCP reset and the
 * second kills rpc-server with SIGPIPE (seen with llama.cpp 80fb11a: exit status 141). So a busy probe half-closes
 * (FIN: "no more requests") and stays "parked", reading, until the worker answers and closes; one parked probe per
 * worker at most, and a later probe of that worker reports busy at once without connecting.
 */
import { connect, type Socket } from "node:net";
import type { Endpoint } from "./endpoint.js";
import {
  decodeDeviceCount,
  decodeDeviceMemory,
  decodeHello,
  DEVICE_COUNT_RESPONSE_SIZE,
  DEVICE_MEMORY_RESPONSE_SIZE,
  deviceCountRequest,
  deviceMemoryRequest,
  HELLO_RESPONSE_SIZE,
  helloRequest,
  RPC_PROTO_MAJOR,
  takeResponse,
} from "./protocol.js";

export interface WorkerDevice {
  freeBytes: number;
  totalBytes: number;
}

export type WorkerProbe =
  | {
      state: "ready";
      endpoint: string;
      /** The worker's protocol version, e.g. "6.0.0". */
      version: string;
      devices: WorkerDevice[];
      freeBytes: number;
      totalBytes: number;
    }
  /** Connected, but no answer: it is serving another client (a llama-server), one at a time. */
  | { state: "busy"; endpoint: string; detail: string }
  /** Nothing listens there, or the host cannot be reached. */
  | { state: "unreachable"; endpoint: string; detail: string }
  /** Something answered that is not an rpc-server of a compatible protocol version. */
  | { state: "incompatible"; endpoint: string; detail: string };

export interface ProbeOptions {
  /** Deadline for the TCP connection, ms (default 2 000). */
  connectTimeoutMs?: number;
  /** Deadline for the answers once connected, ms (default 1 500): past it the worker is busy. */
  answerTimeoutMs?: number;
}

/** One expected response and what follows it: the next request, the end, or why the worker is refused. */
/** Probes waiting in a busy worker's backlog (endpoint → socket), see the header. */
const parked = new Map<string, Socket>();
/** A parked probe is dropped after this long (the worker stayed busy all along), ms. */
const PARK_MAX_MS = 30 * 60_000;

type Step = { expect: number; onPayload: (p: Buffer) => Buffer | { done: true } | { refuse: string } };

/** Probes one worker; never throws (every outcome is a WorkerProbe). */
export function probeWorker(endpoint: Endpoint, opts: ProbeOptions = {}): Promise<WorkerProbe> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2_000;
  const answerTimeoutMs = opts.answerTimeoutMs ?? 1_500;
  const ep = endpoint.text;
  if (parked.has(ep))
    return Promise.resolve({
      state: "busy",
      endpoint: ep,
      detail:
        "an earlier probe still waits behind the client it serves: rpc-server serves one client at a time, and another one (a llama-server) is connected",
    });
  return new Promise((resolve) => {
    let settled = false;
    const sock: Socket = connect({ host: endpoint.host, port: endpoint.port });
    let timer: NodeJS.Timeout | undefined;
    const finish = (r: WorkerProbe) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    /** Busy: answer now, but leave the connection half-closed until the worker takes it and closes it. */
    const park = (r: WorkerProbe) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      parked.set(ep, sock);
      const drop = setTimeout(() => sock.destroy(), PARK_MAX_MS);
      drop.unref();
      sock.on("close", () => {
        clearTimeout(drop);
        if (parked.get(ep) === sock) parked.delete(ep);
      });
      sock.resume();
      sock.end();
      sock.unref();
      resolve(r);
    };
    const arm = (ms: number, onTimeout: () => void) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(onTimeout, ms);
    };

    let version = "";
    const devices: WorkerDevice[] = [];
    let count = 0;
    const steps: Step[] = [];
    const memoryStep = (i: number): Step => ({
      expect: DEVICE_MEMORY_RESPONSE_SIZE,
      onPayload: (p) => {
        devices.push(decodeDeviceMemory(p));
        if (i + 1 < count) {
          steps.push(memoryStep(i + 1));
          return deviceMemoryRequest(i + 1);
        }
        return { done: true };
      },
    });
    steps.push({
      expect: HELLO_RESPONSE_SIZE,
      onPayload: (p) => {
        const h = decodeHello(p);
        version = `${h.major}.${h.minor}.${h.patch}`;
        if (h.major !== RPC_PROTO_MAJOR)
          return {
            refuse: `it speaks RPC protocol ${version}; this gglib's probe speaks ${RPC_PROTO_MAJOR}.x (use the same llama.cpp version on every host)`,
          };
        steps.push({
          expect: DEVICE_COUNT_RESPONSE_SIZE,
          onPayload: (q) => {
            count = decodeDeviceCount(q);
            if (count === 0) return { done: true };
            steps.push(memoryStep(0));
            return deviceMemoryRequest(0);
          },
        });
        return deviceCountRequest();
      },
    });

    let pending: Buffer = Buffer.alloc(0);
    let connected = false;
    const ready = () => {
      const freeBytes = devices.reduce((s, d) => s + d.freeBytes, 0);
      const totalBytes = devices.reduce((s, d) => s + d.totalBytes, 0);
      finish({ state: "ready", endpoint: ep, version, devices, freeBytes, totalBytes });
    };

    arm(connectTimeoutMs, () =>
      finish({ state: "unreachable", endpoint: ep, detail: `no connection within ${connectTimeoutMs} ms` }),
    );
    sock.setNoDelay(true);
    sock.on("connect", () => {
      connected = true;
      arm(answerTimeoutMs, () =>
        park({
          state: "busy",
          endpoint: ep,
          detail: `it accepted the connection but did not answer within ${answerTimeoutMs} ms: rpc-server serves one client at a time, and another one (a llama-server) is connected`,
        }),
      );
      sock.write(helloRequest());
    });
    sock.on("data", (chunk: Buffer) => {
      if (settled) return; // a parked probe only drains what the worker finally answers
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const step = steps[0];
        if (!step) return;
        const r = takeResponse(pending, step.expect);
        if (r === undefined) return;
        if ("error" in r) {
          finish({
            state: "incompatible",
            endpoint: ep,
            detail: `not an rpc-server of protocol ${RPC_PROTO_MAJOR}.x (${r.error})`,
          });
          return;
        }
        pending = r.rest;
        steps.shift();
        const next = step.onPayload(r.payload);
        if (Buffer.isBuffer(next)) sock.write(next);
        else if ("refuse" in next) return finish({ state: "incompatible", endpoint: ep, detail: next.refuse });
        else return ready();
      }
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (connected) {
        finish({
          state: "incompatible",
          endpoint: ep,
          detail: `the connection broke during the handshake (${e.code ?? e.message})`,
        });
        return;
      }
      const why =
        e.code === "ECONNREFUSED"
          ? "connection refused: nothing listens on that port"
          : e.code === "ENOTFOUND" || e.code === "EAI_AGAIN"
            ? `the host name does not resolve (${e.code})`
            : `${e.code ?? "error"}: ${e.message}`;
      finish({ state: "unreachable", endpoint: ep, detail: why });
    });
    sock.on("close", () => {
      if (settled) return;
      finish({
        state: "incompatible",
        endpoint: ep,
        detail: `it closed the connection ${version ? "after" : "at"} the handshake: an rpc-server of another llama.cpp version (this probe speaks protocol ${RPC_PROTO_MAJOR}.x), or not an rpc-server`,
      });
    });
  });
}

/** Probes several workers at once, in their order. */
export function probeWorkers(endpoints: readonly Endpoint[], opts: ProbeOptions = {}): Promise<WorkerProbe[]> {
  return Promise.all(endpoints.map((e) => probeWorker(e, opts)));
}
