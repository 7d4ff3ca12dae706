import type Database from "better-sqlite3";

/**
 * The registry's schema, as an ordered list of migrations. Never edit a released migration: append a new one.
 * `migrate()` applies the missing ones in order, each in its own IMMEDIATE transaction (so two processes opening
 * the same database at once do not both apply it), and records each in `schema_version`.
 */
export interface Migration {
  version: number;
  description: string;
  up: (db: Database.Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "models and aliases",
    up: (db) => {
      db.exec(`
        CREATE TABLE models (
          id            INTEGER PRIMARY KEY AUTOINCREMENT,
          name          TEXT NOT NULL UNIQUE,
          path          TEXT NOT NULL,
          shards        TEXT NOT NULL DEFAULT '[]',   -- JSON array of absolute paths, first = path
          mmproj        TEXT,
          settings      TEXT NOT NULL DEFAULT '{}',   -- JSON ModelSettings
          metadata      TEXT,                         -- JSON, from the GGUF header
          metadata_error TEXT,
          fingerprint   TEXT,                         -- size:mtimeMs of every shard when metadata was read
          size_bytes    INTEGER,
          added_at      TEXT NOT NULL,
          updated_at    TEXT NOT NULL
        );
        CREATE INDEX models_path ON models(path);
        CREATE TABLE aliases (
          alias    TEXT PRIMARY KEY,
          model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE
        );
        CREATE INDEX aliases_model ON aliases(model_id);
      `);
    },
  },
  {
    version: 2,
    description: "presets (a name over a model plus request changes, src/models/presets.ts)",
    up: (db) => {
      db.exec(`
        CREATE TABLE presets (
          name        TEXT PRIMARY KEY COLLATE NOCASE,
          definition  TEXT NOT NULL,                  -- JSON PresetDef
          created_at  TEXT NOT NULL,
          updated_at  TEXT NOT NULL
        );
      `);
    },
  },
];

export class SchemaTooNewError extends Error {
  constructor(
    readonly found: number,
    readonly supported: number,
  ) {
    super(`schema version ${found} is newer than this gglib supports (${supported})`);
  }
}

/** The highest applied version (0 for a new database). */
export function schemaVersion(db: Database.Database): number {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
  );
  const row = db.prepare("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null };
  return row.v ?? 0;
}

/** Applies the pending migrations; returns the versions applied. Throws SchemaTooNewError for a newer database. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  const latest = ordered.at(-1)?.version ?? 0;
  const current = schemaVersion(db);
  if (current > latest) throw new SchemaTooNewError(current, latest);
  const applied: number[] = [];
  for (const m of ordered) {
    if (m.version <= current) continue;
    const apply = db.transaction(() => {
      // re-check inside the write lock: another process may have applied it meanwhile
      if (schemaVersion(db) >= m.version) return false;
      m.up(db);
      db.prepare("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)").run(
        m.version,
        m.description,
        new Date().toISOString(),
      );
      return true;
    });
    if (apply.immediate()) applied.push(m.version);
  }
  return applied;
}
