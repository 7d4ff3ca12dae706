/**
 * Saved KV caches on disk: one folder per model under the cache dir, which is also the model's llama-server
 * `--slot-save-path`. llama-server writes a slot to a temporary name; the store renames it into place
 * (`slot-<id>.bin`) and then rewrites the folder's manifest (`state.json`, temp file + rename), so a crash at any
 * point leaves either the old state or the new one, never a torn file under a name that will be restored. A file
 * the manifest does not list is garbage and is removed by sweep().
 */
import { randomBytes, createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ContextIdentity } from "./identity.js";
import type { StoredFile } from "./budget.js";

export interface SavedSlot {
  /** File name inside the model's folder. */
  file: string;
  tokens: number;
  bytes: number;
  savedAt: number;
  /** Last save or restore (the LRU order of the disk budget). */
  lastUsedAt: number;
}

export interface Manifest {
  version: 1;
  model: string;
  modelPath: string;
  key: string;
  identity: ContextIdentity;
  /** By slot id. */
  slots: Record<string, SavedSlot>;
}

const MANIFEST = "state.json";
/** A temp file younger than this may be a save in progress. */
const TEMP_GRACE_MS = 10 * 60_000;

function recent(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < TEMP_GRACE_MS;
  } catch {
    return false;
  }
}

export class SlotStore {
  constructor(readonly root: string) {}

  /** The folder of a model: its name (made file-safe) and a hash of its path, so two files never share one. */
  modelDir(model: string, modelPath: string): string {
    const safe = model.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80);
    const h = createHash("sha256").update(modelPath).digest("hex").slice(0, 8);
    return join(this.root, `${safe}-${h}`);
  }

  ensureDir(dir: string): void {
    mkdirSync(dir, { recursive: true });
  }

  read(dir: string): Manifest | undefined {
    try {
      const m = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as Manifest;
      return m && m.version === 1 && typeof m.key === "string" && m.slots ? m : undefined;
    } catch {
      return undefined;
    }
  }

  write(dir: string, m: Manifest): void {
    this.ensureDir(dir);
    const tmp = join(dir, `${MANIFEST}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
    writeFileSync(tmp, JSON.stringify(m, null, 1));
    renameSync(tmp, join(dir, MANIFEST));
  }

  /** A temporary file name for llama-server to save slot `id` into (relative to the folder). */
  tempName(id: number): string {
    return `slot-${id}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  }

  finalName(id: number): string {
    return `slot-${id}.bin`;
  }

  /** Moves a finished temp file into place; returns its size. */
  commit(dir: string, tmp: string, id: number): number {
    const final = join(dir, this.finalName(id));
    renameSync(join(dir, tmp), final);
    return statSync(final).size;
  }

  removeFile(dir: string, name: string): void {
    rmSync(join(dir, name), { force: true });
  }

  /** Removes a model's saved state entirely (its folder stays, empty, for the next saves). */
  discard(dir: string): void {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) rmSync(join(dir, n), { force: true, recursive: true });
  }

  /** Every model folder with a manifest. */
  all(): { dir: string; manifest: Manifest }[] {
    let names: string[] = [];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    const out: { dir: string; manifest: Manifest }[] = [];
    for (const n of names) {
      const dir = join(this.root, n);
      const m = this.read(dir);
      if (m) out.push({ dir, manifest: m });
    }
    return out;
  }

  /** Every saved slot file, for the disk budget. Key: `<dir>\n<slot id>`. */
  files(): StoredFile[] {
    const out: StoredFile[] = [];
    for (const { dir, manifest } of this.all())
      for (const [id, s] of Object.entries(manifest.slots))
        out.push({ key: `${dir}\n${id}`, bytes: s.bytes, lastUsedAt: s.lastUsedAt });
    return out;
  }

  /** Removes the slot files named by keys from files(), and their manifest entries. */
  removeKeys(keys: readonly string[]): number {
    const byDir = new Map<string, string[]>();
    for (const k of keys) {
      const [dir, id] = k.split("\n") as [string, string];
      byDir.set(dir, [...(byDir.get(dir) ?? []), id]);
    }
    let freed = 0;
    for (const [dir, ids] of byDir) {
      const m = this.read(dir);
      if (!m) continue;
      for (const id of ids) {
        const s = m.slots[id];
        if (!s) continue;
        this.removeFile(dir, s.file);
        freed += s.bytes;
        delete m.slots[id];
      }
      this.write(dir, m);
    }
    return freed;
  }

  /**
   * Cleanup: temp files and files no manifest lists, and whole folders whose model file is gone (or that have no
   * manifest). `busy` folders (a model running now) keep their temp files.
   */
  sweep(modelExists: (path: string) => boolean, busy: ReadonlySet<string> = new Set()): { removed: string[] } {
    const removed: string[] = [];
    let names: string[] = [];
    try {
      names = readdirSync(this.root);
    } catch {
      return { removed };
    }
    for (const n of names) {
      const dir = join(this.root, n);
      const m = this.read(dir);
      if (!m || !modelExists(m.modelPath)) {
        if (busy.has(dir)) continue;
        rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
        continue;
      }
      const keep = new Set([MANIFEST, ...Object.values(m.slots).map((s) => s.file)]);
      let files: string[] = [];
      try {
        files = readdirSync(dir);
      } catch {
        continue;
      }
      for (const f of files) {
        if (keep.has(f)) continue;
        // a temp file may be a save in progress (this process or another proxy on the same folder)
        if (f.endsWith(".tmp") && (busy.has(dir) || recent(join(dir, f)))) continue;
        rmSync(join(dir, f), { recursive: true, force: true });
        removed.push(join(dir, f));
      }
    }
    return { removed };
  }
}
