import { mkdir, readdir, readFile, readlink, realpath, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.js";
import { pidAlive, signalGroup } from "./terminate/signals.js";

/**
 * One JSON pidfile per llama-server we start, so a later gglib can find and end servers whose parent died
 * without cleaning up. Written atomically (tmp + rename).
 */
export interface PidRecord {
  pid: number;
  port: number;
  binaryPath: string;
  model: string;
  modelPath: string;
  startedAt: number;
  /** The gglib process that owns it. */
  ownerPid: number;
}

const safe = (id: string) => id.replace(/[^A-Za-z0-9._-]/g, "_");

export async function writePidfile(dir: string, id: string, rec: PidRecord): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${safe(id)}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(rec) + "\n", { mode: 0o600 });
  await rename(tmp, file);
  return file;
}

export async function removePidfile(dir: string, id: string): Promise<void> {
  await rm(join(dir, `${safe(id)}.json`), { force: true });
}

export async function listPidfiles(dir: string): Promise<{ file: string; record: PidRecord }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: { file: string; record: PidRecord }[] = [];
  for (const n of names) {
    if (!n.endsWith(".json")) continue;
    const file = join(dir, n);
    try {
      const r = JSON.parse(await readFile(file, "utf8")) as Partial<PidRecord>;
      if (typeof r.pid === "number" && typeof r.binaryPath === "string") out.push({ file, record: r as PidRecord });
      else await rm(file, { force: true });
    } catch {
      await rm(file, { force: true }); // unreadable or half-written: useless
    }
  }
  return out;
}

/**
 * Is `pid` verifiably the llama-server we started from `binaryPath`? Linux: /proc/<pid>/exe, else its command
 * line; macOS and others: `ps`. Any doubt → false (never kill a stranger that reused the pid).
 */
export async function isOurLlamaServer(pid: number, binaryPath: string, port?: number): Promise<boolean> {
  if (!pidAlive(pid)) return false;
  const want = await realpath(binaryPath).catch(() => binaryPath);
  if (process.platform === "linux") {
    try {
      const exe = await realpath(await readlink(`/proc/${pid}/exe`));
      if (exe === want) return true;
    } catch {
      /* fall through to the command line */
    }
    try {
      const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
      return cmdlineMatches(argv, [binaryPath, want], port);
    } catch {
      return false;
    }
  }
  try {
    const r = await run("ps", ["-o", "command=", "-p", String(pid)], { timeoutMs: 3000 });
    if (r.code !== 0) return false;
    return cmdlineMatches(r.stdout.trim().split(/\s+/), [binaryPath, want], port);
  } catch {
    return false;
  }
}

/** Pure: the argv runs one of `binaries` (directly or through an interpreter) and, if given, on `port`. */
export function cmdlineMatches(argv: readonly string[], binaries: readonly string[], port?: number): boolean {
  const runsIt = argv.slice(0, 3).some((a) => binaries.includes(a));
  if (!runsIt) return false;
  if (port === undefined) return true;
  const i = argv.indexOf("--port");
  return i >= 0 && argv[i + 1] === String(port);
}

export interface SweepResult {
  killed: PidRecord[];
  removed: number;
  /** Owned by another live gglib process: left alone. */
  skipped: number;
}

/**
 * At start-up: end llama-servers whose gglib owner is gone, and delete stale pidfiles. Servers of another live
 * gglib (a proxy and a `serve` side by side) are left alone.
 */
export async function sweepOrphans(dir: string, opts: { waitMs?: number } = {}): Promise<SweepResult> {
  const res: SweepResult = { killed: [], removed: 0, skipped: 0 };
  for (const { file, record } of await listPidfiles(dir)) {
    if (record.ownerPid !== process.pid && pidAlive(record.ownerPid) && (await ownerIsNode(record.ownerPid))) {
      res.skipped++;
      continue;
    }
    if (record.ownerPid === process.pid) {
      res.skipped++;
      continue;
    }
    if (await isOurLlamaServer(record.pid, record.binaryPath, record.port)) {
      signalGroup(record.pid, "SIGTERM");
      const deadline = Date.now() + (opts.waitMs ?? 2000);
      while (pidAlive(record.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (pidAlive(record.pid)) signalGroup(record.pid, "SIGKILL");
      res.killed.push(record);
    }
    await rm(file, { force: true });
    res.removed++;
  }
  return res;
}

async function ownerIsNode(pid: number): Promise<boolean> {
  if (process.platform !== "linux") return true; // cannot tell cheaply: assume it is a live gglib
  try {
    const exe = await readlink(`/proc/${pid}/exe`);
    return /node|gglib|bun|deno/.test(exe);
  } catch {
    return false;
  }
}
