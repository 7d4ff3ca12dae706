/**
 * Saved KV caches on disk: one folder per model under the cache dir, which is also the model's llama-server
 * `--slot-save-path`. llama-server writes a slot to a temporary name; the store hashes it, renames it into place
 * (`slot-<id>.bin`) and then rewrites the folder's manifest (`state.json`, temp file + rename), so a crash at any
 * point leaves either the old state or the new one, never a torn file under a name that will be restored. A file
 * the manifest does not list is garbage and is removed by sweep().
 *
 * Nothing read from disk is trusted: a manifest entry is kept only when it is one the store could have written
 * (integrity.ts: the slot's own file name, a size, a hash), a file is removed only under a name the store writes and
 * inside the folder, and a slot file is inspected without following a link or opening a FIFO.
 */
import { randomBytes, createHash, type Hash } from "node:crypto";
import {
  constants,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { ContextIdentity } from "./identity.js";
import type { StoredFile } from "./budget.js";
import {
  checkEntry,
  isSlotFileName,
  pathInside,
  slotDigest,
  slotFileName,
  slotFileProblem,
  type FileFacts,
  type SlotRecord,
} from "./integrity.js";

export type SavedSlot = SlotRecord;

export interface Manifest {
  version: 1;
  model: string;
  modelPath: string;
  key: string;
  identity: ContextIdentity;
  /** By slot id. */
  slots: Record<string, SavedSlot>;
}

/** A manifest as read, and the entries dropped from it because they are not ones the store writes. */
export interface ReadManifest {
  manifest: Manifest | undefined;
  rejected: string[];
}

const MANIFEST = "state.json";
/** A temp file younger than this may be a save in progress. */
const TEMP_GRACE_MS = 10 * 60_000;
/** Read size while hashing a slot file. */
const CHUNK = 4 * 1024 * 1024;
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

function recent(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < TEMP_GRACE_MS;
  } catch {
    return false;
  }
}

/** A folder that is not a symbolic link. */
function realDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
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

  /** Creates the folder; refuses one that is a symbolic link or not a folder (its files would be ours to delete). */
  ensureDir(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const st = lstatSync(dir);
    if (!st.isDirectory())
      throw new Error(`${dir} is not a folder (a symbolic link or a file); remove it so the proxy can create it`);
  }

  read(dir: string): Manifest | undefined {
    return this.readChecked(dir).manifest;
  }

  /** The manifest with only the entries the store could have written; the others are named in `rejected`. */
  readChecked(dir: string): ReadManifest {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8"));
    } catch {
      return { manifest: undefined, rejected: [] };
    }
    const m = raw as Partial<Manifest> | null;
    if (
      !m ||
      typeof m !== "object" ||
      m.version !== 1 ||
      typeof m.key !== "string" ||
      typeof m.model !== "string" ||
      typeof m.modelPath !== "string" ||
      typeof m.identity !== "object" ||
      m.identity === null ||
      typeof m.slots !== "object" ||
      m.slots === null ||
      Array.isArray(m.slots)
    )
      return { manifest: undefined, rejected: [] };
    const slots: Record<string, SavedSlot> = {};
    const rejected: string[] = [];
    for (const [id, v] of Object.entries(m.slots as Record<string, unknown>)) {
      const c = checkEntry(id, v);
      if (c.ok) slots[id] = c.slot;
      else rejected.push(c.reason);
    }
    return { manifest: { ...(m as Manifest), slots }, rejected };
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
    return slotFileName(id);
  }

  /**
   * Moves a finished temp file into place after hashing it (slotDigest: bound to `key` and `id`); returns its size
   * and hash. Throws when the temp file is not a regular file, is not `expectBytes` long (when llama-server said),
   * or cannot be read before `deadline` (performance.now() ms).
   */
  async seal(
    dir: string,
    tmp: string,
    id: number,
    key: string,
    expectBytes?: number,
    deadline = Infinity,
  ): Promise<{ bytes: number; sha256: string }> {
    const facts = await this.inspect(dir, tmp, slotDigest(key, id), deadline);
    if (facts.kind !== "file" || facts.sha256 === undefined)
      throw new Error(`the saved file is not a regular file (${facts.kind})`);
    if (expectBytes !== undefined && expectBytes > 0 && facts.size !== expectBytes)
      throw new Error(`the saved file has ${facts.size} bytes, llama-server wrote ${expectBytes}`);
    const from = pathInside(dir, tmp);
    const to = pathInside(dir, this.finalName(id));
    if (!from || !to || !isSlotFileName(tmp)) throw new Error(`not a slot file name: ${tmp}`);
    renameSync(from, to);
    return { bytes: facts.size, sha256: facts.sha256 };
  }

  /**
   * Why slot `id`'s saved file must not be restored (missing, not a regular file, another size, another hash), or
   * undefined when it is the file that was saved under `key`. Never follows a link or opens a FIFO.
   */
  async check(dir: string, key: string, id: number, s: SavedSlot, deadline = Infinity): Promise<string | undefined> {
    if (s.file !== this.finalName(id)) return `the manifest names ${JSON.stringify(s.file)}`;
    // the kind and the size first: a FIFO, a link or a truncated file is refused without being opened
    const shallow = await this.inspect(dir, s.file);
    if (shallow.kind !== "file" || shallow.size !== s.bytes) return slotFileProblem(s, shallow);
    return slotFileProblem(s, await this.inspect(dir, s.file, slotDigest(key, id), deadline));
  }

  /**
   * What the file `name` in `dir` is, from lstat (a link is reported, not followed); with `digest`, a regular file is
   * read through once (opened with O_NOFOLLOW | O_NONBLOCK, checked again on the open descriptor) and its hash
   * given. Throws when the read passes `deadline` (performance.now() ms).
   */
  async inspect(dir: string, name: string, digest?: Hash, deadline = Infinity): Promise<FileFacts> {
    const path = pathInside(dir, name);
    if (!path) return { kind: "other" };
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return { kind: "missing" };
    }
    if (st.isSymbolicLink()) return { kind: "symlink" };
    if (st.isFIFO()) return { kind: "fifo" };
    if (st.isDirectory()) return { kind: "directory" };
    if (!st.isFile()) return { kind: "other" };
    if (!digest) return { kind: "file", size: st.size };
    let fh;
    try {
      fh = await open(path, OPEN_FLAGS);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code === "ENOENT" ? { kind: "missing" } : code === "ELOOP" ? { kind: "symlink" } : { kind: "other" };
    }
    try {
      const fst = await fh.stat();
      if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) return { kind: "other" };
      const buf = Buffer.allocUnsafe(CHUNK);
      let size = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, size);
        if (bytesRead === 0) break;
        digest.update(bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead));
        size += bytesRead;
        if (performance.now() > deadline) throw new Error("reading the slot file took too long");
      }
      return { kind: "file", size, sha256: digest.digest("hex") };
    } finally {
      await fh.close();
    }
  }

  /** Removes a file the store wrote (a slot or a temp file) from `dir`; any other name is left alone. */
  removeFile(dir: string, name: string): void {
    const path = pathInside(dir, name);
    if (!path || !isSlotFileName(name)) return;
    rmSync(path, { force: true });
  }

  /** Removes a model's saved state entirely (its folder stays, empty, for the next saves). */
  discard(dir: string): void {
    let names: string[] = [];
    try {
      if (!realDir(dir)) return;
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
      const m = realDir(dir) ? this.read(dir) : undefined;
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
      // a link or a file among the model folders: removed itself, never what it points to
      const m = realDir(dir) ? this.read(dir) : undefined;
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
