/**
 * The disk budget of saved KV caches: pure rules. Files are removed least recently used first (saved or restored)
 * until the total fits; the default budget is a share of the free disk.
 */
import { GiB } from "../../core/units.js";

export interface StoredFile {
  /** Unique: model folder + slot. */
  key: string;
  bytes: number;
  /** Last save or restore, epoch ms. */
  lastUsedAt: number;
}

/** Pure: the keys to remove so the rest fits in `budgetBytes`, oldest first. */
export function planEviction(files: readonly StoredFile[], budgetBytes: number): string[] {
  let total = files.reduce((a, f) => a + f.bytes, 0);
  if (total <= budgetBytes) return [];
  const byAge = [...files].sort((a, b) => a.lastUsedAt - b.lastUsedAt || a.key.localeCompare(b.key));
  const out: string[] = [];
  for (const f of byAge) {
    if (total <= budgetBytes) break;
    out.push(f.key);
    total -= f.bytes;
  }
  return out;
}

/** Pure: the default budget from the free space of the cache's disk: a quarter of it, at most 32 GiB. */
export function defaultBudgetBytes(freeBytes: number): number {
  if (!Number.isFinite(freeBytes) || freeBytes <= 0) return 0;
  return Math.floor(Math.min(freeBytes / 4, 32 * GiB));
}

/** Pure: whether a save of about `bytes` leaves the disk at least `reserveBytes` free. */
export function fitsOnDisk(freeBytes: number, bytes: number, reserveBytes = GiB): boolean {
  return freeBytes - bytes >= reserveBytes;
}
