import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockHolder, takeLock, withLock, type LockOptions } from "../../../src/process/lockfile.js";

const root = mkdtempSync(join(tmpdir(), "gglib-lock-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `case-${n++}`, "x.lock");

class Busy extends Error {
  constructor(
    readonly pid: number,
    readonly ours: boolean,
  ) {
    super(`held by ${pid}${ours ? " (this process)" : ""}`);
  }
}
const opts = (more: Partial<LockOptions> = {}): LockOptions => ({
  held: ({ pid, ours }) => new Busy(pid, ours),
  ...more,
});

/** A live process that is not this one (a sleeping node), ended by the test. */
function otherProcess(): { pid: number; end: () => Promise<void> } {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    pid: child.pid!,
    end: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A pid with no process behind it: a child that has already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  return child.pid!;
}

describe("lockfile", () => {
  test("taking a free lock writes our pid (creating the folder); release removes it and leaves nothing else", async () => {
    const path = fresh();
    const release = await takeLock(path, opts());
    assert.equal(readFileSync(path, "utf8"), String(process.pid));
    assert.equal(await lockHolder(path), process.pid);
    await release();
    await release(); // twice is harmless
    assert.deepEqual(readdirSync(join(path, "..")), [], "no lock and no temporary file left");
  });

  test("a second take in the same process is refused as ours", async () => {
    const path = fresh();
    const release = await takeLock(path, opts());
    await assert.rejects(takeLock(path, opts({ waitMs: 200 })), (e: unknown) => {
      assert.ok(e instanceof Busy);
      assert.deepEqual([e.pid, e.ours], [process.pid, true]);
      return true;
    });
    assert.equal(readFileSync(path, "utf8"), String(process.pid), "the refused take left the lock alone");
    await release();
  });

  test("a lock left by a dead process is taken over", async () => {
    const path = fresh();
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, String(await deadPid()));
    const release = await takeLock(path, opts());
    assert.equal(await lockHolder(path), process.pid);
    await release();
    assert.equal(existsSync(path), false);
  });

  test("junk in the lock's place (text, or an old-style lock folder) is cleared", async () => {
    const text = fresh();
    mkdirSync(join(text, ".."), { recursive: true });
    writeFileSync(text, "not a pid");
    await (
      await takeLock(text, opts())
    )();
    const folder = fresh();
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "pid"), "1");
    const release = await takeLock(folder, opts());
    assert.equal(await lockHolder(folder), process.pid);
    await release();
  });

  test("a live holder: refused at once by default, with its pid", async (t) => {
    const other = otherProcess();
    t.after(other.end);
    const path = fresh();
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, String(other.pid));
    const t0 = Date.now();
    await assert.rejects(takeLock(path, opts()), (e: unknown) => {
      assert.ok(e instanceof Busy);
      assert.deepEqual([e.pid, e.ours], [other.pid, false]);
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, "no waiting without waitMs");
    assert.equal(readFileSync(path, "utf8"), String(other.pid), "the holder's lock stays");
  });

  test("a live holder with waitMs: waits, and takes the lock once the holder lets go", async (t) => {
    const other = otherProcess();
    t.after(other.end);
    const path = fresh();
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, String(other.pid));
    const taking = takeLock(path, opts({ waitMs: 10_000, pollMs: 10 }));
    let settled = false;
    void taking.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(settled, false, "still waiting while the holder is alive");
    await other.end(); // the holder dies without cleaning up
    const release = await taking;
    assert.equal(await lockHolder(path), process.pid);
    await release();
  });

  test("a live holder with a short waitMs: refused after the wait", async (t) => {
    const other = otherProcess();
    t.after(other.end);
    const path = fresh();
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, String(other.pid));
    const t0 = Date.now();
    await assert.rejects(takeLock(path, opts({ waitMs: 150, pollMs: 10 })), Busy);
    assert.ok(Date.now() - t0 >= 150, "waited first");
  });

  test("withLock releases after the work, also when it throws; a release never removes someone else's lock", async () => {
    const path = fresh();
    assert.equal(await withLock(path, opts(), () => Promise.resolve(42)), 42);
    assert.equal(existsSync(path), false);
    await assert.rejects(
      withLock(path, opts(), () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(existsSync(path), false);

    const release = await takeLock(path, opts());
    writeFileSync(path, "4194000"); // taken over by another process meanwhile
    await release();
    assert.equal(readFileSync(path, "utf8"), "4194000");
  });
});
