/**
 * Proxies of other checkouts for bench/burst.ts and bench/hot-path-vs.ts: `gglib proxy` started from a checkout's
 * bin/gglib.js as its own process (pid for RSS and fds, crash events counted), and the baseline checkout, the commit
 * before issue 26's fixes, made as a temporary git worktree and built there.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, log, startGglibProxy } from "./lib.js";

export interface Proxy {
  pid: number;
  url: string;
  /** Crash events (a declared hang included) printed on --json so far. */
  crashes(): number;
  stop(): Promise<void>;
}

/** `node <root>/bin/gglib.js proxy <args> --port 0 --json`, once it printed its ready line; crash events counted. */
export async function startProxy(root: string, args: string[], env: NodeJS.ProcessEnv): Promise<Proxy> {
  let crashes = 0;
  const p = await startGglibProxy(args, env, 60_000, undefined, {
    root,
    onLine: (l) => {
      if (l.includes('"event":"crash"')) crashes++;
    },
  });
  return { pid: p.pid, url: p.url, crashes: () => crashes, stop: () => p.stop() };
}

export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** The commit before issue 26's fixes (connection cap, hang rule, Origin/Host guard, nesting limit). */
const BASELINE_REV = process.env.GGLIB_BENCH_BASELINE_REV ?? "9d47877";

/** What the baseline is called in the rows. */
export function baseLabel(): string {
  if (process.env.GGLIB_BENCH_BASELINE_DIR) return "the baseline checkout";
  return BASELINE_REV === "9d47877" ? "9d47877, before issue 26" : BASELINE_REV;
}

/**
 * A built checkout of BASELINE_REV: GGLIB_BENCH_BASELINE_DIR when set, else a detached git worktree made in the
 * temp folder (node_modules linked to this checkout's, `npm run build` there), removed again by `done()`.
 */
export function baselineCheckout(): { dir?: string; note: string; done(): void } {
  const given = process.env.GGLIB_BENCH_BASELINE_DIR;
  if (given) return { dir: given, note: given, done: () => undefined };
  const git = (args: string[], cwd = ROOT) =>
    spawnSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  if (git(["cat-file", "-e", `${BASELINE_REV}^{commit}`]).status !== 0)
    return { note: `commit ${BASELINE_REV} is not in this repository`, done: () => undefined };
  const dir = join(tmpdir(), `gglib-bench-base-${BASELINE_REV}-${process.pid}`);
  const done = (): void => {
    git(["worktree", "remove", "--force", dir]);
    rmSync(dir, { recursive: true, force: true });
  };
  const add = git(["worktree", "add", "--detach", dir, BASELINE_REV]);
  if (add.status !== 0) return { note: `git worktree add failed: ${add.stderr.slice(0, 200)}`, done };
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  log(`[burst] building ${BASELINE_REV} in ${dir} (the hot path's baseline)…`);
  const b = spawnSync("npm", ["run", "build", "--silent"], { cwd: dir, stdio: "ignore", timeout: 300_000 });
  return { dir, note: `git worktree of ${BASELINE_REV}${b.status === 0 ? "" : " (its build failed)"}`, done };
}
