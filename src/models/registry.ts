/**
 * The model registry: models the user added with `gglib models add/scan`, with names, aliases, per-model launch
 * settings and cached GGUF metadata, in an embedded SQLite database (better-sqlite3, WAL) at paths.registryDb().
 *
 * - Names and aliases share one namespace: a name or alias is unique across all registered models.
 * - Metadata is read from the GGUF header when a model is added and re-read when any of its files changes
 *   (size or mtime differ from the stored fingerprint): `refreshStale()` / `refresh()`.
 * - The schema is versioned (src/models/migrations/); opening a database migrates it.
 */
import Database from "better-sqlite3";
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { GglibError } from "../core/errors.js";
import { readModelMetadata } from "../gguf/reader.js";
import { detectCapabilities } from "./capabilities.js";
import { paths } from "../core/paths.js";
import { migrate, MIGRATIONS, SchemaTooNewError, schemaVersion, type Migration } from "./migrations/index.js";
import { cleanSettings, type ModelSettings } from "./settings.js";
import { resolveModelPath } from "./sources.js";
import { PresetStore } from "./preset-store.js";
import type { Preset } from "./presets.js";

/** JSON-safe metadata as stored (whatever the GGUF reader returns, bigints turned into numbers/strings). */
export type ModelMetadata = Record<string, unknown>;

/** Reads a model's metadata from its first file. */
export type MetadataReader = (path: string) => Promise<ModelMetadata>;

export interface RegisteredModel {
  id: number;
  name: string;
  aliases: string[];
  /** Absolute path of the model file (first shard). */
  path: string;
  /** Every file in order; `[path]` for a single file. */
  shards: string[];
  mmproj?: string;
  settings: ModelSettings;
  /** Cached GGUF metadata; undefined when it could not be read (see metadataError). */
  metadata?: ModelMetadata;
  metadataError?: string;
  /** Total size of all shards when metadata was last read. */
  sizeBytes?: number;
  /** ISO timestamps. */
  addedAt: string;
  updatedAt: string;
}

/** A registered model plus the state of its files right now. */
export interface ModelStatus {
  model: RegisteredModel;
  /** Some file is gone. */
  missing: boolean;
  /** Files changed since metadata was read. */
  stale: boolean;
}

export interface AddModelInput {
  /** A .gguf file (any shard of a split model) or a folder holding one model (+ mmproj). */
  path: string;
  /** Default: the file stem, or the folder's name. */
  name?: string;
  aliases?: readonly string[];
  mmproj?: string;
  settings?: ModelSettings;
}

export interface UpdateModelInput {
  name?: string;
  /** Replaces the alias list. */
  aliases?: readonly string[];
  /** null removes it. */
  mmproj?: string | null;
  /** Merged into the settings; a key set to undefined is removed. */
  settings?: { [K in keyof ModelSettings]?: ModelSettings[K] | undefined };
}

export interface RegistryOptions {
  /** Default: paths.registryDb(). ":memory:" works for tests. */
  dbPath?: string;
  readMetadata?: MetadataReader;
  /** For tests of the migration machinery. */
  migrations?: readonly Migration[];
}

interface Row {
  id: number;
  name: string;
  path: string;
  shards: string;
  mmproj: string | null;
  settings: string;
  metadata: string | null;
  metadata_error: string | null;
  fingerprint: string | null;
  size_bytes: number | null;
  added_at: string;
  updated_at: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;

/** Throws invalid_config unless `name` is a usable model name or alias. */
export function validateModelName(name: string, what = "name"): void {
  if (!NAME_RE.test(name)) {
    throw new GglibError("invalid_config", `Invalid model ${what} "${name}".`, {
      hint: "Use 1-128 characters: letters, digits and . _ : / @ + -, starting with a letter or digit.",
    });
  }
}

export class Registry {
  readonly dbPath: string;
  private readonly db: Database.Database;
  private readonly readMetadata: MetadataReader;

  private constructor(db: Database.Database, dbPath: string, reader: MetadataReader) {
    this.db = db;
    this.dbPath = dbPath;
    this.readMetadata = reader;
  }

  /** Opens (creating and migrating as needed) the registry database. */
  static open(opts: RegistryOptions = {}): Registry {
    const dbPath = opts.dbPath ?? paths.registryDb();
    if (dbPath !== ":memory:") mkdirSync(dirname(dbPath), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(dbPath);
    } catch (e) {
      throw new GglibError("invalid_config", `Cannot open the model registry at ${dbPath}: ${(e as Error).message}`, {
        hint: "Check the permissions of the data dir (GGLIB_DATA_DIR).",
      });
    }
    try {
      db.pragma("busy_timeout = 5000");
      if (dbPath !== ":memory:") db.pragma("journal_mode = WAL");
      db.pragma("foreign_keys = ON");
      migrate(db, opts.migrations ?? MIGRATIONS);
    } catch (e) {
      db.close();
      if (e instanceof SchemaTooNewError) {
        throw new GglibError(
          "invalid_config",
          `The model registry at ${dbPath} was written by a newer gglib (${e.message}).`,
          {
            hint: "Upgrade gglib, or point GGLIB_DATA_DIR at another folder.",
          },
        );
      }
      throw new GglibError("invalid_config", `Cannot open the model registry at ${dbPath}: ${(e as Error).message}`, {
        hint: "If the file is damaged, move it away; `gglib models scan` can re-register models.",
      });
    }
    return new Registry(db, dbPath, opts.readMetadata ?? defaultMetadataReader);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  schemaVersion(): number {
    return schemaVersion(this.db);
  }

  /**
   * Changes when another connection (e.g. `gglib models add` in another process) commits to the database
   * (SQLite's `PRAGMA data_version`). A long-running reader such as the proxy polls it to reload cheaply.
   */
  dataVersion(): number {
    return this.db.pragma("data_version", { simple: true }) as number;
  }

  private presetStore: PresetStore | undefined;

  /** The presets created over the API (src/models/preset-store.ts). */
  get presets(): PresetStore {
    return (this.presetStore ??= new PresetStore(this.db));
  }

  /** The stored presets (problems: a stored preset that no longer parses). */
  listPresets(problems?: string[]): Preset[] {
    return this.presets.list(problems);
  }

  /** All models, by name. */
  list(): RegisteredModel[] {
    const rows = this.db.prepare("SELECT * FROM models ORDER BY name").all() as Row[];
    const aliases = this.aliasMap();
    return rows.map((r) => toModel(r, aliases.get(r.id) ?? []));
  }

  /** By name, else by alias. */
  get(nameOrAlias: string): RegisteredModel | undefined {
    let row = this.db.prepare("SELECT * FROM models WHERE name = ?").get(nameOrAlias) as Row | undefined;
    if (!row) {
      row = this.db
        .prepare("SELECT m.* FROM models m JOIN aliases a ON a.model_id = m.id WHERE a.alias = ?")
        .get(nameOrAlias) as Row | undefined;
    }
    if (!row) return undefined;
    return toModel(row, this.aliasesOf(row.id));
  }

  /** Like get(), but throws model_not_found with the known names as a hint. */
  require(nameOrAlias: string): RegisteredModel {
    const m = this.get(nameOrAlias);
    if (m) return m;
    const names = this.list().map((x) => x.name);
    throw new GglibError("model_not_found", `No registered model is called "${nameOrAlias}".`, {
      hint:
        names.length > 0
          ? `Registered: ${names.join(", ")}. See \`gglib models list\`.`
          : "Add one with `gglib models add <file.gguf>`.",
    });
  }

  findByPath(path: string): RegisteredModel | undefined {
    const row = this.db.prepare("SELECT * FROM models WHERE path = ?").get(resolve(path)) as Row | undefined;
    return row ? toModel(row, this.aliasesOf(row.id)) : undefined;
  }

  /** Registers a model and reads its metadata. Throws invalid_config for a taken name/alias, model_not_found for a missing file. */
  async add(input: AddModelInput): Promise<RegisteredModel> {
    const abs = resolve(input.path);
    const found = resolveModelPath(abs);
    if (!found.ok) {
      throw new GglibError("model_not_found", `Cannot add ${input.path}: ${found.reason}.`, {
        modelPath: abs,
        hint: "Pass a .gguf file, or a folder that holds one model (its shards and/or an mmproj file).",
      });
    }
    const files = found.files;
    const name = input.name ?? files.name;
    validateModelName(name);
    const aliases = uniq((input.aliases ?? []).filter((a) => a !== name));
    for (const a of aliases) validateModelName(a, "alias");
    const mmproj = input.mmproj ? resolve(input.mmproj) : files.mmproj;
    if (mmproj) assertFile(mmproj, "mmproj");
    await assertGguf(files.path);
    // check names before the (possibly slow) metadata read, and again inside the transaction
    this.assertFree([name, ...aliases]);
    const meta = await this.readMeta(files.path, files.shards);
    if (meta.metadata?.isMmproj === true || meta.metadata?.type === "mmproj") {
      throw new GglibError("invalid_config", `${files.path} is a multimodal projector, not a model.`, {
        modelPath: files.path,
        hint: "Add the model file and pass this one with --mmproj (or add the folder holding both).",
      });
    }
    const now = new Date().toISOString();
    const insert = this.db.transaction(() => {
      this.assertFree([name, ...aliases]);
      const r = this.db
        .prepare(
          `INSERT INTO models (name, path, shards, mmproj, settings, metadata, metadata_error, fingerprint, size_bytes, added_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          name,
          files.path,
          JSON.stringify(files.shards),
          mmproj ?? null,
          JSON.stringify(cleanSettings(input.settings ?? {})),
          meta.metadata ? JSON.stringify(meta.metadata) : null,
          meta.error ?? null,
          meta.fingerprint,
          meta.sizeBytes,
          now,
          now,
        );
      const id = Number(r.lastInsertRowid);
      const ins = this.db.prepare("INSERT INTO aliases (alias, model_id) VALUES (?, ?)");
      for (const a of aliases) ins.run(a, id);
      return id;
    });
    insert.immediate();
    return this.require(name);
  }

  /** Removes a model (by name or alias); returns what was removed. */
  remove(nameOrAlias: string): RegisteredModel {
    const m = this.require(nameOrAlias);
    this.db.prepare("DELETE FROM models WHERE id = ?").run(m.id);
    return m;
  }

  /** Renames, replaces aliases, sets/unsets mmproj and settings. */
  update(nameOrAlias: string, patch: UpdateModelInput): RegisteredModel {
    const tx = this.db.transaction(() => {
      const m = this.require(nameOrAlias);
      const name = patch.name ?? m.name;
      if (patch.name !== undefined) validateModelName(patch.name);
      const aliases =
        patch.aliases !== undefined
          ? uniq(patch.aliases.filter((a) => a !== name))
          : m.aliases.filter((a) => a !== name);
      for (const a of aliases) validateModelName(a, "alias");
      this.assertFree([name, ...aliases], m.id);
      let mmproj = m.mmproj;
      if (patch.mmproj === null) mmproj = undefined;
      else if (patch.mmproj !== undefined) {
        mmproj = resolve(patch.mmproj);
        assertFile(mmproj, "mmproj");
      }
      const settings: Record<string, unknown> = { ...m.settings };
      for (const [k, v] of Object.entries(patch.settings ?? {})) {
        if (v === undefined) delete settings[k];
        else settings[k] = v;
      }
      this.db
        .prepare("UPDATE models SET name = ?, mmproj = ?, settings = ?, updated_at = ? WHERE id = ?")
        .run(name, mmproj ?? null, JSON.stringify(cleanSettings(settings)), new Date().toISOString(), m.id);
      this.db.prepare("DELETE FROM aliases WHERE model_id = ?").run(m.id);
      const ins = this.db.prepare("INSERT INTO aliases (alias, model_id) VALUES (?, ?)");
      for (const a of aliases) ins.run(a, m.id);
      return name;
    });
    return this.require(tx.immediate());
  }

  /** Files state of one model: missing / stale (changed since its metadata was read). */
  status(model: RegisteredModel): ModelStatus {
    const fp = fingerprint(model.shards);
    const row = this.db.prepare("SELECT fingerprint, metadata FROM models WHERE id = ?").get(model.id) as
      { fingerprint: string | null; metadata: string | null } | undefined;
    // a failed read is retried (the reader may have been fixed), as is metadata from an older reader format
    return {
      model,
      missing: fp === undefined,
      stale: fp !== undefined && (fp.fingerprint !== row?.fingerprint || row?.metadata === null),
    };
  }

  /** Re-reads the metadata of one model if its files changed (or always with force). */
  async refresh(
    nameOrAlias: string,
    opts: { force?: boolean } = {},
  ): Promise<{ model: RegisteredModel; refreshed: boolean }> {
    const m = this.require(nameOrAlias);
    const st = this.status(m);
    if (st.missing || (!st.stale && !opts.force)) return { model: m, refreshed: false };
    const meta = await this.readMeta(m.path, m.shards);
    this.db
      .prepare(
        "UPDATE models SET metadata = ?, metadata_error = ?, fingerprint = ?, size_bytes = ?, updated_at = ? WHERE id = ?",
      )
      .run(
        meta.metadata ? JSON.stringify(meta.metadata) : null,
        meta.error ?? null,
        meta.fingerprint,
        meta.sizeBytes,
        new Date().toISOString(),
        m.id,
      );
    return { model: this.require(m.name), refreshed: true };
  }

  /** Refreshes every model whose files changed; returns the names refreshed. */
  async refreshStale(): Promise<string[]> {
    const done: string[] = [];
    for (const m of this.list()) {
      const r = await this.refresh(m.name);
      if (r.refreshed) done.push(m.name);
    }
    return done;
  }

  private async readMeta(
    path: string,
    shards: readonly string[],
  ): Promise<{ metadata?: ModelMetadata; error?: string; fingerprint: string | null; sizeBytes: number | null }> {
    const fp = fingerprint(shards);
    try {
      const metadata = jsonSafe(await this.readMetadata(path)) as ModelMetadata;
      return { metadata, fingerprint: fp?.fingerprint ?? null, sizeBytes: fp?.sizeBytes ?? null };
    } catch (e) {
      return { error: (e as Error).message, fingerprint: fp?.fingerprint ?? null, sizeBytes: fp?.sizeBytes ?? null };
    }
  }

  /** Throws invalid_config if any of the names is a name or alias of another model. */
  private assertFree(names: readonly string[], exceptId?: number): void {
    const byName = this.db.prepare("SELECT id, name FROM models WHERE name = ?");
    const byAlias = this.db.prepare(
      "SELECT m.id, m.name FROM aliases a JOIN models m ON m.id = a.model_id WHERE a.alias = ?",
    );
    for (const n of names) {
      const hit = (byName.get(n) ?? byAlias.get(n)) as { id: number; name: string } | undefined;
      if (hit && hit.id !== exceptId) {
        const how = hit.name === n ? "the name of a registered model" : `an alias of "${hit.name}"`;
        throw new GglibError("invalid_config", `"${n}" is already ${how}.`, {
          hint: "Pick another name with --name/--alias, or change the other model with `gglib models set`.",
        });
      }
    }
  }

  private aliasesOf(id: number): string[] {
    return (
      this.db.prepare("SELECT alias FROM aliases WHERE model_id = ? ORDER BY rowid").all(id) as { alias: string }[]
    ).map((r) => r.alias);
  }

  private aliasMap(): Map<number, string[]> {
    const map = new Map<number, string[]>();
    for (const r of this.db.prepare("SELECT alias, model_id FROM aliases ORDER BY rowid").all() as {
      alias: string;
      model_id: number;
    }[]) {
      const list = map.get(r.model_id) ?? [];
      list.push(r.alias);
      map.set(r.model_id, list);
    }
    return map;
  }
}

function toModel(r: Row, aliases: string[]): RegisteredModel {
  const m: RegisteredModel = {
    id: r.id,
    name: r.name,
    aliases,
    path: r.path,
    shards: JSON.parse(r.shards) as string[],
    settings: cleanSettings(JSON.parse(r.settings) as Record<string, unknown>),
    addedAt: r.added_at,
    updatedAt: r.updated_at,
  };
  if (m.shards.length === 0) m.shards = [r.path];
  if (r.mmproj) m.mmproj = r.mmproj;
  if (r.metadata) m.metadata = JSON.parse(r.metadata) as ModelMetadata;
  if (r.metadata_error) m.metadataError = r.metadata_error;
  if (r.size_bytes !== null) m.sizeBytes = r.size_bytes;
  return m;
}

/** Bump when the stored metadata's shape changes: every model's metadata is then re-read once. */
const METADATA_FORMAT = 2;

/** `size:mtimeMs` of every file (and the metadata format); undefined if a file is missing. */
function fingerprint(files: readonly string[]): { fingerprint: string; sizeBytes: number } | undefined {
  const parts: string[] = [];
  let total = 0;
  for (const f of files) {
    try {
      const st = statSync(f);
      parts.push(`${st.size}:${Math.floor(st.mtimeMs)}`);
      total += st.size;
    } catch {
      return undefined;
    }
  }
  return { fingerprint: `m${METADATA_FORMAT}|${parts.join(",")}`, sizeBytes: total };
}

function uniq(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

function assertFile(p: string, what: string): void {
  try {
    if (statSync(p).isFile()) return;
  } catch {
    /* fallthrough */
  }
  throw new GglibError("model_not_found", `The ${what} file ${p} does not exist.`, {
    modelPath: p,
    hint: "Check the path.",
  });
}

/** Reads the first 4 bytes: a GGUF file starts with "GGUF". */
async function assertGguf(p: string): Promise<void> {
  const { open } = await import("node:fs/promises");
  const fh = await open(p, "r");
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    if (bytesRead === 4 && buf.toString("latin1") === "GGUF") return;
  } finally {
    await fh.close();
  }
  throw new GglibError("invalid_config", `${p} is not a GGUF file (it does not start with "GGUF").`, {
    modelPath: p,
    hint: "llama.cpp runs .gguf models; convert other formats with llama.cpp's convert_hf_to_gguf.py.",
  });
}

/** Makes reader output storable: bigint → number (or string beyond 2^53), long arrays → their length. */
export function jsonSafe(v: unknown, depth = 0): unknown {
  if (typeof v === "bigint")
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v === null || typeof v !== "object") return typeof v === "function" || typeof v === "symbol" ? undefined : v;
  if (depth > 8) return undefined;
  if (Array.isArray(v)) {
    if (v.length > 256) return { arrayLength: v.length };
    return v.map((x) => jsonSafe(x, depth + 1));
  }
  if (ArrayBuffer.isView(v)) return { arrayLength: (v as unknown as { length?: number }).length ?? v.byteLength };
  if (v instanceof Map) return jsonSafe(Object.fromEntries(v), depth);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const s = jsonSafe(x, depth + 1);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata

/** The GGUF header reader of src/gguf/ (metadata of the first shard, sizes and tensors of all). */
export const defaultMetadataReader: MetadataReader = async (path) => {
  const meta = await readModelMetadata(path);
  // what the model can do (reasoning, tools, embedding…), with the evidence, for `models list/show` and the proxy
  return { ...meta, capabilities: detectCapabilities(meta) };
};
