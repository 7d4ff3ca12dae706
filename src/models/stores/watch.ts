/**
 * A cheap watch on the stores: one recursive fs.watch per store folder (inotify on Linux, FSEvents on macOS; no
 * polling), events inside `blobs/` and partial downloads ignored (a pull writes its blob first and its manifest or
 * snapshot link last), and one call of `onChange` per quiet period (debounced), naming the stores that changed.
 * The set of folders follows each reload (`update`). A folder that cannot be watched (inotify limits, gone) is
 * logged once and not tried again, so a failing watch never turns into a reload loop; the store is still read at
 * every reload.
 */
import { watch, type FSWatcher } from "node:fs";
import type { StoreName } from "./types.js";

export interface StoreWatcher {
  /** Watches exactly these folders from now on. */
  update(dirs: readonly { store: StoreName; dir: string }[]): void;
  close(): void;
}

/** Whether a changed path (relative to the watched folder) can change the list of models. Pure. */
export function isRelevantChange(relPath: string | null): boolean {
  if (relPath === null) return true;
  const parts = relPath.split(/[\\/]/);
  if (parts.includes("blobs") || parts.includes(".locks")) return false;
  const name = parts[parts.length - 1] ?? "";
  return !/(\.incomplete|\.lock|-partial(-\d+)?|\.tmp|\.part|\.download)$/i.test(name);
}

export function watchStores(
  onChange: (stores: StoreName[]) => void,
  o: { debounceMs?: number; log?: (line: string) => void } = {},
): StoreWatcher {
  const debounceMs = o.debounceMs ?? 1000;
  const watchers = new Map<string, FSWatcher>();
  const failed = new Set<string>();
  let pending = new Set<StoreName>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = (store: StoreName) => {
    if (closed) return;
    pending.add(store);
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      const stores = [...pending];
      pending = new Set();
      onChange(stores);
    }, debounceMs);
    timer.unref?.();
  };
  return {
    update(dirs) {
      if (closed) return;
      const want = new Map(dirs.map((d) => [d.dir, d.store]));
      for (const [dir, w] of watchers)
        if (!want.has(dir)) {
          w.close();
          watchers.delete(dir);
        }
      for (const [dir, store] of want) {
        if (watchers.has(dir) || failed.has(dir)) continue;
        try {
          const w = watch(dir, { recursive: true, persistent: false }, (_event, file) => {
            if (isRelevantChange(file === null ? null : String(file))) fire(store);
          });
          w.on("error", (e: Error) => {
            // inotify limits, or the folder went away: not watched again (re-adding could fail in a loop); the store
            // is still read at every reload
            w.close();
            watchers.delete(dir);
            if (!failed.has(dir))
              o.log?.(`stopped watching ${store} folder ${dir} (${e.message}); it is read at each reload`);
            failed.add(dir);
          });
          watchers.set(dir, w);
        } catch (e) {
          if (!failed.has(dir))
            o.log?.(`cannot watch ${store} folder ${dir} (${(e as Error).message}); it is read at each reload`);
          failed.add(dir);
        }
      }
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
