/**
 * RPC worker addresses as llama.cpp reads them: `host:port`, split at the first colon (so no IPv6 literals), the
 * host a name or an IPv4 address, the port 1–65535. Pure: parsing, the words of a bad address, and whether a bind
 * address stays on this machine.
 */
import { GglibError } from "../core/errors.js";

/** rpc-server's default port. */
export const DEFAULT_RPC_PORT = 50052;
/** rpc-server's default bind address. */
export const DEFAULT_RPC_HOST = "127.0.0.1";

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** `host:port`, as passed to `--rpc`. */
  readonly text: string;
}

const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** What is wrong with an address, or undefined when it is a valid `host:port`. */
export function endpointProblem(text: string): string | undefined {
  const t = text.trim();
  const colon = t.indexOf(":");
  if (colon < 0) return `"${text}" has no port: write host:port, e.g. 192.168.1.20:${DEFAULT_RPC_PORT}`;
  const host = t.slice(0, colon);
  const port = t.slice(colon + 1);
  if (host.startsWith("[") || port.includes(":"))
    return `"${text}": llama.cpp's RPC client takes a host name or an IPv4 address, not IPv6`;
  if (!HOST.test(host)) return `"${text}": "${host}" is not a host name or an IPv4 address`;
  const ip = IPV4.exec(host);
  if (ip && ip.slice(1).some((o) => Number(o) > 255)) return `"${text}": "${host}" is not an IPv4 address`;
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
    return `"${text}": the port must be a number from 1 to 65535`;
  return undefined;
}

/** Parses `host:port`; a bad address throws GglibError("invalid_config") saying what is wrong. */
export function parseEndpoint(text: string): Endpoint {
  const problem = endpointProblem(text);
  if (problem) {
    throw new GglibError("invalid_config", `Invalid RPC worker address ${problem}.`, {
      hint: "An RPC worker is host:port, the address `gglib rpc-server` listens on there.",
    });
  }
  const t = text.trim();
  const colon = t.indexOf(":");
  const host = t.slice(0, colon);
  const port = Number(t.slice(colon + 1));
  return { host, port, text: `${host}:${port}` };
}

/** The same workers once each, in order (llama.cpp would register a repeated address only once too). */
export function uniqueEndpoints(list: readonly string[]): Endpoint[] {
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const t of list) {
    const e = parseEndpoint(t);
    if (seen.has(e.text)) continue;
    seen.add(e.text);
    out.push(e);
  }
  return out;
}

/** A bind address that only this machine can reach (127.0.0.0/8, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The warning `gglib rpc-server` prints before it binds anything but loopback. */
export function openNetworkWarning(host: string, port: number): string {
  return (
    `WARNING: rpc-server will listen on ${host}:${port}, reachable from other machines. The RPC protocol has no ` +
    "authentication and no encryption: anyone who can reach this port can allocate memory and run computations on " +
    "this machine, and llama.cpp does not harden rpc-server against hostile clients. Use it only on a trusted " +
    "network (a LAN you control, a VPN), never on an open or shared one; a firewall rule that lets in only the " +
    "main host is a good idea."
  );
}
