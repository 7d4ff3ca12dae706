/**
 * Test hosts on this one machine: each host is its own network namespace (`ip netns`), joined by veth pairs to a
 * bridge in the test's namespace, so that several `gglib proxy` processes, llama-servers and rpc-servers talk
 * over a real network with their own addresses. The test made them and the test removes them (`close()`, and a
 * last sweep at process exit); traffic goes only to those addresses.
 *
 * Without root or iproute2, hosts fall back to loopback addresses (127.0.0.2, 127.0.0.3, …) and `reason` says why:
 * a test then reports it (`t.diagnostic(net.reason)`). GGLIB_TEST_NO_NETNS=1 asks for loopback mode.
 *
 *   const net = await createTestNet(["front", "a", "b"]);
 *   const child = net.hosts[1]!.spawn(process.execPath, ["bin/gglib.js", "proxy", "--host", net.hosts[1]!.ip]);
 *   …
 *   await net.close();
 */
import { spawn, execFile, execFileSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pidAlive } from "../../src/process/terminate/signals.js";

const run = promisify(execFile);

export interface TestHost {
  /** The name the test gave it. */
  name: string;
  /** Its address: reachable from the test process and from the other hosts. */
  ip: string;
  /** Its network namespace; undefined in loopback mode. */
  ns?: string;
  /** Starts a command on this host (inside its namespace). */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** The argv that runs `cmd args` on this host, for spawners of their own. */
  argv(cmd: string, args: string[]): [string, string[]];
}

export interface TestNet {
  mode: "netns" | "loopback";
  /** Why the hosts are on loopback (only in loopback mode). */
  reason?: string;
  hosts: TestHost[];
  /** Kills what still runs on the hosts and removes the namespaces and the bridge. Safe to call twice. */
  close(): Promise<void>;
}

/** Where subnets are claimed: one folder per 10.231.<k>.0/24 in use, holding its owner's pid. */
const CLAIMS = join(tmpdir(), "gglib-netns");
const PREFIX = "ggn";

function loopbackNet(names: string[], reason: string): TestNet {
  const hosts = names.map((name, i): TestHost => {
    const argv = (cmd: string, args: string[]): [string, string[]] => [cmd, args];
    return { name, ip: `127.0.0.${i + 2}`, spawn: (cmd, args, opts = {}) => spawn(cmd, args, opts), argv };
  });
  return { mode: "loopback", reason, hosts, close: async () => {} };
}

/** Why namespaces cannot be made here, or undefined when they can. */
async function unavailable(): Promise<string | undefined> {
  if (process.env.GGLIB_TEST_NO_NETNS) return "GGLIB_TEST_NO_NETNS is set; hosts are on loopback addresses";
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "network namespaces need root; hosts are on loopback addresses";
  try {
    await run("ip", ["-V"]);
  } catch {
    return "iproute2 (`ip`) is not installed; hosts are on loopback addresses (apt-get install iproute2)";
  }
  return undefined;
}

/** Claims a free 10.231.<k>.0/24 for this process (a folder per subnet; a dead owner's claim is taken over). */
function claimSubnet(): number {
  mkdirSync(CLAIMS, { recursive: true });
  for (let k = 1; k < 255; k++) {
    const dir = join(CLAIMS, String(k));
    try {
      mkdirSync(dir);
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(dir, "pid"), "utf8"));
      } catch {
        continue; // being claimed right now
      }
      if (owner && pidAlive(owner)) continue;
      sweepOwner(owner);
      rmSync(dir, { recursive: true, force: true });
      try {
        mkdirSync(dir);
      } catch {
        continue;
      }
    }
    writeFileSync(join(dir, "pid"), String(process.pid));
    return k;
  }
  throw new Error("no free test subnet in 10.231.0.0/16 (too many test networks at once?)");
}

function tryRun(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
  } catch {
    // already gone
  }
}

function namespacesOf(owner: number): string[] {
  try {
    return readdirSync("/run/netns").filter((n) => n.startsWith(`${PREFIX}${owner}-`));
  } catch {
    return [];
  }
}

/** Removes what a process left: its namespaces (and their processes) and its bridge. Synchronous: runs at exit. */
function sweepOwner(owner: number): void {
  for (const ns of namespacesOf(owner)) {
    let pids: number[] = [];
    try {
      pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split(/\s+/).filter(Boolean).map(Number);
    } catch {
      // none
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    tryRun("ip", ["netns", "del", ns]);
  }
  let links = "";
  try {
    links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
  } catch {
    return;
  }
  const mine = `${PREFIX}b${owner.toString(36)}-`;
  for (const m of links.matchAll(/^\d+:\s+([^:@\s]+)/gm))
    if (m[1]!.startsWith(mine)) tryRun("ip", ["link", "del", m[1]!]);
}

async function sh(args: string[]): Promise<void> {
  try {
    await run("ip", args);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(" ")} failed: ${(err.stderr ?? err.message).trim()}`);
  }
}

let exitHookInstalled = false;

/**
 * Hosts named `names`, each in a network namespace of its own on one bridge (10.231.<k>.0/24: the bridge is .1,
 * host i is .(i+2)); or, where namespaces cannot be made, loopback addresses, with `reason` saying why.
 */
export async function createTestNet(names: string[]): Promise<TestNet> {
  const why = await unavailable();
  if (why) return loopbackNet(names, why);
  const k = claimSubnet();
  const id = `${process.pid.toString(36)}${k.toString(36)}`;
  const bridge = `${PREFIX}b${process.pid.toString(36)}-${k.toString(36)}`; // at most 15 characters
  const namespaces: string[] = [];
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const ns of namespaces) {
      const pids = await run("ip", ["netns", "pids", ns]).then(
        (r) => r.stdout.split(/\s+/).filter(Boolean).map(Number),
        () => [] as number[],
      );
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await run("ip", ["netns", "del", ns]).catch(() => undefined);
    }
    await run("ip", ["link", "del", bridge]).catch(() => undefined);
    rmSync(join(CLAIMS, String(k)), { recursive: true, force: true });
  };
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => sweepOwner(process.pid));
  }
  try {
    await sh(["link", "add", bridge, "type", "bridge"]);
    await sh(["link", "set", bridge, "up"]);
    await sh(["addr", "add", `10.231.${k}.1/24`, "dev", bridge]);
    const hosts: TestHost[] = [];
    for (const [i, name] of names.entries()) {
      const ns = `${PREFIX}${process.pid}-${k}-${i}`;
      const veth = `${PREFIX}v${id}-${i}`;
      const ip = `10.231.${k}.${i + 2}`;
      await sh(["netns", "add", ns]);
      namespaces.push(ns);
      await sh(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      await sh(["link", "set", veth, "master", bridge, "up"]);
      await sh(["-n", ns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
      await sh(["-n", ns, "link", "set", "eth0", "up"]);
      // a host's own processes (a proxy and its llama-servers) talk over its loopback
      await sh(["-n", ns, "link", "set", "lo", "up"]);
      const argv = (cmd: string, args: string[]): [string, string[]] => ["ip", ["netns", "exec", ns, cmd, ...args]];
      hosts.push({ name, ip, ns, argv, spawn: (cmd, args, opts = {}) => spawn(...argv(cmd, args), opts) });
    }
    return { mode: "netns", hosts, close };
  } catch (e) {
    await close();
    throw e;
  }
}
