/**
 * Reloading the catalog: the config file as last read (`ConfigFile`), one reload at a time (`catalogReloader`),
 * each outcome kept for the dashboard (`recordedReloads`), the config file's watch (`watchConfig`) and what a
 * reload changed (`diffCatalogs`, pure).
 */
import { statSync } from "node:fs";
import { GglibError } from "../../core/errors.js";
import { loadConfigFile, type LoadedConfig } from "../../models/config-file.js";
import type { ReloadRecord } from "../api-types.js";
import { buildCatalog, type Catalog, type CatalogInput, type ProxyModel } from "../catalog.js";
import type { ModelController } from "../controller.js";
import type { ProxyOptions } from "./options.js";

export interface ReloadReport {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  warnings: string[];
}

/** The config file as last read, with the stamp of that read (a change made later counts as a change). */
export class ConfigFile {
  loaded: LoadedConfig;
  stamp: string;

  constructor(readonly path: string) {
    this.stamp = fileStamp(path);
    this.loaded = loadConfigFile(path);
  }

  /** Reads the file again (throws on a bad file, keeping the previous one). */
  reread(): void {
    this.stamp = fileStamp(this.path);
    this.loaded = loadConfigFile(this.path);
  }
}

function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.mtimeMs}:${st.size}`;
  } catch {
    return "missing";
  }
}

/** Reloads the catalog (config file + models folder), one reload at a time; new preload models are loaded. */
export function catalogReloader(
  controller: ModelController,
  initial: Catalog,
  config: ConfigFile | undefined,
  catalogInput: () => CatalogInput,
  reloaded: () => void,
  /** Warnings about what a reload does not apply (the peers). */
  notes: () => string[] = () => [],
): () => Promise<ReloadReport> {
  let current = initial;
  let reloading: Promise<ReloadReport> | undefined;
  const once = async (): Promise<ReloadReport> => {
    config?.reread();
    const next = await buildCatalog(catalogInput());
    const diff = diffCatalogs(current.models, next.models);
    controller.updateCatalog(next.models);
    current = next;
    reloaded();
    for (const m of next.models) {
      if (m.preload && diff.added.includes(m.name)) controller.load(m.name).catch(() => {});
    }
    return { ...diff, warnings: [...next.warnings, ...next.clashes.map((c) => c.message), ...notes()] };
  };
  return async () => {
    if (reloading) return reloading;
    reloading = once();
    try {
      return await reloading;
    } finally {
      reloading = undefined;
    }
  };
}

/** A reload's warning when the config file's peers changed: they are read at start only. */
export function peersChanged(o: ProxyOptions, config: ConfigFile | undefined): () => string[] {
  if (o.peers || !config) return () => [];
  const atStart = JSON.stringify(config.loaded.config.peers ?? {});
  return () =>
    JSON.stringify(config.loaded.config.peers ?? {}) === atStart
      ? []
      : ["the peers changed in the config file: restart the proxy to apply them (peers are read at start)"];
}

/** Reloads with the last one's outcome kept (the dashboard shows it, errors included), and who asked for it. */
export function recordedReloads(reload: () => Promise<ReloadReport>): {
  reload: (trigger?: string) => Promise<ReloadReport>;
  last: () => ReloadRecord | undefined;
} {
  let last: ReloadRecord | undefined;
  return {
    last: () => last,
    async reload(trigger = "reload()") {
      const at = new Date().toISOString();
      try {
        const r = await reload();
        last = { at, ok: true, trigger, ...r, errors: [] };
        return r;
      } catch (e) {
        const why = e instanceof GglibError ? e.describe() : String(e);
        last = { at, ok: false, trigger, added: [], removed: [], changed: [], warnings: [], errors: [why] };
        throw e;
      }
    },
  };
}

export type RecordedReloads = ReturnType<typeof recordedReloads>;

/**
 * Reloads when the config file changes, polled against the stamp of the last read (fs.watch misses editors'
 * rename-over writes; watchFile compares with its own first stat, so a write between our read and that stat
 * would be lost). Returns the function that stops watching.
 */
export function watchConfig(config: ConfigFile, reload: () => Promise<ReloadReport>, log: (line: string) => void) {
  let timer: NodeJS.Timeout | undefined;
  const watcher = setInterval(() => {
    const now = fileStamp(config.path);
    if (now === config.stamp) return;
    config.stamp = now;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      reload().then(
        (r) => log(`config reloaded: +[${r.added.join(", ")}] -[${r.removed.join(", ")}] ~[${r.changed.join(", ")}]`),
        (e: unknown) =>
          log(
            `config reload failed, keeping the previous models: ${e instanceof GglibError ? e.describe() : String(e)}`,
          ),
      );
    }, 200);
  }, 500);
  watcher.unref();
  return () => {
    clearInterval(watcher);
    if (timer) clearTimeout(timer);
  };
}

/** What a reload changes: models added, removed, changed (their launch fingerprint) and unchanged. */
export function diffCatalogs(
  before: readonly ProxyModel[],
  after: readonly ProxyModel[],
): Omit<ReloadReport, "warnings"> {
  const b = new Map(before.map((m) => [m.name, m]));
  const a = new Map(after.map((m) => [m.name, m]));
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  const unchanged: string[] = [];
  for (const [n, m] of a) {
    const old = b.get(n);
    if (!old) added.push(n);
    else if (old.spec.fingerprint !== m.spec.fingerprint) changed.push(n);
    else unchanged.push(n);
  }
  for (const n of b.keys()) if (!a.has(n)) removed.push(n);
  return { added, removed, changed, unchanged };
}
