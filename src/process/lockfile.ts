import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { pidAlive } from "./terminate/signals.js";

/**
 * A lock between gglib processes: a file holding the pid of its holder. It is created whole (written under a
 * temporary name, then hard-linked into place), so a reader never sees it empty. A lock whose holder is gone (a
 * process that died before cleaning up) is taken over; one held by a live process makes `takeLock` wait up to
 * `waitMs`, then throw the caller's error. Used for `gglib pull` (one per model folder) and `gglib llama install`.
 */
export interface LockOptions {
  /** The error when a live process holds the lock (`ours`: this very process, e.g. a second pull in the proxy). */
  held: (holder: { pid: number; ours: boolean }) => Error;
  /** How long to wait for a live holder to let go before throwing `held` (default 0: refuse at once). */
  waitMs?: number;
  /** How often to look again while waiting (default 50 ms). */
  pollMs?: number;
}

/** Lets the lock go (removes the file if it is still ours). Calling it twice is harmless. */
export type ReleaseLock = () => Promise<void>;

export async function takeLock(path: string, opts: LockOptions): Promise<ReleaseLock> {
  await mkdir(dirname(path), { recursive: true });
  const me = String(process.pid);
  const tmp = `${path}.${me}.tmp`;
  const deadline = Date.now() + (opts.waitMs ?? 0);
  await writeFile(tmp, me);
  try {
    for (;;) {
      try {
        await link(tmp, path);
        return () => releaseLock(path, me);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const holder = await readHolder(path);
      if (holder === "gone") continue; // let go just now: try again
      if (holder === undefined || !pidAlive(holder)) {
        await rm(path, { recursive: true, force: true }); // left by a process that died (or not a lock we wrote)
        continue;
      }
      const ours = holder === process.pid;
      if (ours || Date.now() >= deadline) throw opts.held({ pid: holder, ours });
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Runs `fn` holding the lock, and lets it go after (also when `fn` throws). */
export async function withLock<T>(path: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const release = await takeLock(path, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** The pid in the lock file; undefined when there is none or it is not a pid. */
export async function lockHolder(path: string): Promise<number | undefined> {
  const h = await readHolder(path);
  return h === "gone" ? undefined : h;
}

/** "gone": no file; undefined: something that is not a pid (a directory, text); else the pid. */
async function readHolder(path: string): Promise<number | "gone" | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : undefined;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

async function releaseLock(path: string, me: string): Promise<void> {
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text?.trim() === me) await rm(path, { force: true });
}
