/**
 * What the context cache's slot file check costs (issue 26): the SHA-256 that binds a slot file to what it was saved
 * under, computed once at save time (`SlotStore.seal`: hash + rename) and once before each restore
 * (`SlotStore.check`: lstat, open without following links or blocking on a FIFO, streamed hash), on files of
 * realistic slot sizes. The page cache is warm (the file was just written, as at a save): the restore-time check of
 * a cold file is bound by the disk like llama-server's own read of it. Baseline: reading the same file without
 * hashing. Run alone: `npx tsx bench/slot-check.ts [MiB,MiB…]` (default 64,512,2048: a 512 MiB slot is 4,096
 * tokens of an 8B model with 8 KV heads × 128 × 32 layers in f16).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { randomFillSync } from "node:crypto";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { SlotStore } from "../src/proxy/context/store.js";

const MiB = 1024 * 1024;
const sizes = (process.argv[2] ?? "64,512,2048").split(",").map(Number);
const root = mkdtempSync(join(tmpdir(), "gglib-slot-check-"));
const store = new SlotStore(root);
const dir = store.modelDir("m", "/m.gguf");
store.ensureDir(dir);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`load average ${loadavg()[0]!.toFixed(1)}; median of 5 checks after one seal`);
try {
  for (const mib of sizes) {
    const tmp = store.tempName(0);
    const fd = openSync(join(dir, tmp), "w");
    const buf = Buffer.alloc(16 * MiB);
    for (let i = 0; i < mib / 16; i++) writeSync(fd, randomFillSync(buf));
    closeSync(fd);
    let t0 = performance.now();
    const sealed = await store.seal(dir, tmp, 0, "identity-key");
    const sealMs = performance.now() - t0;
    const entry = { file: "slot-0.bin", tokens: 1, bytes: sealed.bytes, savedAt: 0, lastUsedAt: 0 };
    const checks: number[] = [];
    const reads: number[] = [];
    for (let i = 0; i < 5; i++) {
      t0 = performance.now();
      const problem = await store.check(dir, "identity-key", 0, { ...entry, sha256: sealed.sha256 });
      checks.push(performance.now() - t0);
      if (problem) throw new Error(problem);
      t0 = performance.now();
      if (mib <= 1024) readFileSync(join(dir, "slot-0.bin"));
      reads.push(performance.now() - t0);
    }
    const c = median(checks);
    const read = mib <= 1024 ? `${median(reads).toFixed(0)} ms` : "not measured (over 1 GiB)";
    console.log(
      `${mib} MiB: seal ${sealMs.toFixed(0)} ms; check ${c.toFixed(0)} ms (${(mib / (c / 1000)).toFixed(0)} MiB/s; ` +
        `runs ${checks.map((x) => x.toFixed(0)).join("/")}); plain read ${read}`,
    );
    rmSync(join(dir, "slot-0.bin"));
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
