/**
 * The presets created over the API (Ollama's `/api/create`), kept in the registry's database (table `presets`,
 * migration 2). The config file's presets are not here: they live in the file.
 */
import type Database from "better-sqlite3";
import { PresetDefSchema, type Preset, type PresetDef } from "./presets.js";

interface Row {
  name: string;
  definition: string;
}

export class PresetStore {
  constructor(private readonly db: Database.Database) {}

  /** Every stored preset, by name. A row that no longer parses is skipped (and named in `problems`). */
  list(problems?: string[]): Preset[] {
    const rows = this.db.prepare("SELECT name, definition FROM presets ORDER BY name").all() as Row[];
    const out: Preset[] = [];
    for (const r of rows) {
      const p = parseRow(r);
      if (typeof p === "string") problems?.push(p);
      else out.push(p);
    }
    return out;
  }

  /** By name (case-insensitive). */
  get(name: string): Preset | undefined {
    const r = this.db.prepare("SELECT name, definition FROM presets WHERE name = ?").get(name) as Row | undefined;
    const p = r ? parseRow(r) : undefined;
    return typeof p === "string" ? undefined : p;
  }

  /** Creates or replaces a preset. */
  save(name: string, def: PresetDef): Preset {
    const now = new Date().toISOString();
    const text = JSON.stringify(PresetDefSchema.parse(def));
    this.db
      .prepare(
        `INSERT INTO presets (name, definition, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET name = excluded.name, definition = excluded.definition, updated_at = excluded.updated_at`,
      )
      .run(name, text, now, now);
    return { ...def, name, source: "registry" };
  }

  /** Removes a preset; false when there was none. */
  remove(name: string): boolean {
    return this.db.prepare("DELETE FROM presets WHERE name = ?").run(name).changes > 0;
  }
}

function parseRow(r: Row): Preset | string {
  try {
    const def = PresetDefSchema.parse(JSON.parse(r.definition));
    return { ...def, name: r.name, source: "registry" };
  } catch (e) {
    return `preset ${r.name} in the registry is unreadable (${(e as Error).message.split("\n")[0]}); delete it and create it again`;
  }
}
