/**
 * Pure parts of `gglib rpc-server`: its options → rpc-server's argv (checked against what that binary's --help
 * lists), and the device lines rpc-server prints at start.
 */
import { GglibError } from "../core/errors.js";
import { DEFAULT_RPC_HOST, DEFAULT_RPC_PORT } from "./endpoint.js";

export interface RpcServerOptions {
  /** Address to bind; default 127.0.0.1 (rpc-server takes an IPv4 address; `localhost` is 127.0.0.1). */
  host?: string;
  port?: number;
  /** CPU threads (-t). */
  threads?: number;
  /** Devices to offer (-d), e.g. ["CUDA0"]. */
  devices?: readonly string[];
  /** Keep large tensors in a local file cache (-c). */
  cache?: boolean;
  /** Memory to offer, bytes: only for an rpc-server whose --help lists --mem. */
  memBytes?: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The bind address rpc-server will get (`localhost` → 127.0.0.1); a host name or IPv6 is refused with why. */
export function bindHost(host: string | undefined): string {
  const h = (host ?? DEFAULT_RPC_HOST).trim();
  if (h === "localhost") return "127.0.0.1";
  const m = IPV4.exec(h);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) {
    throw new GglibError("invalid_config", `--host must be an IPv4 address of this machine (got "${h}").`, {
      hint: "rpc-server binds an IPv4 address: 127.0.0.1 (this machine only), the address of the network the main host is on (e.g. 192.168.1.20), or 0.0.0.0 (every interface).",
    });
  }
  return h;
}

/** The flags an rpc-server's --help lists (`-H, --host HOST` → "-H", "--host"). */
export function helpFlags(help: string): Set<string> {
  const out = new Set<string>();
  for (const m of help.matchAll(/(?:^|[\s,])(--?[A-Za-z][\w-]*)/gm)) out.add(m[1]!);
  return out;
}

/** rpc-server's argv for the options; `help` is that binary's --help text (to refuse what it cannot do). */
export function rpcServerArgs(o: RpcServerOptions, help: string): string[] {
  const flags = helpFlags(help);
  const args = ["--host", bindHost(o.host), "--port", String(o.port ?? DEFAULT_RPC_PORT)];
  if (o.threads !== undefined) args.push("--threads", String(o.threads));
  if (o.devices && o.devices.length > 0) args.push("--device", o.devices.join(","));
  if (o.cache) args.push("--cache");
  if (o.memBytes !== undefined) {
    if (!flags.has("--mem")) {
      throw new GglibError("unsupported_flag", "This rpc-server has no --mem option (its --help does not list it).", {
        hint:
          "A worker offers what its devices report free, and the main host's check before each start uses those numbers " +
          "(see `gglib rpc-server` output and /api/status). To offer less, pick the devices with --device, or keep more " +
          "layers on the main host with the model's gpuLayers setting.",
      });
    }
    args.push("--mem", String(Math.floor(o.memBytes / (1024 * 1024))));
  }
  return args;
}

export interface BannerDevice {
  name: string;
  description: string;
  totalMiB: number;
  freeMiB: number;
}

/** The `Devices:` lines rpc-server prints at start: `  CPU: AMD EPYC (24105 MiB, 24105 MiB free)`. */
export function parseDeviceBanner(lines: readonly string[]): BannerDevice[] {
  const out: BannerDevice[] = [];
  for (const l of lines) {
    const m = /^\s+([^\s:]+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$/.exec(l);
    if (m) out.push({ name: m[1]!, description: m[2]!, totalMiB: Number(m[3]), freeMiB: Number(m[4]) });
  }
  return out;
}
