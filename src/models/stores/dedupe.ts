/**
 * The same file reached twice (a symlink, a hardlink, one Ollama blob behind two tags, an HF cache that is also
 * LLAMA_CACHE) is one model. Files are compared by identity (device + inode of the file a path leads to), so a
 * link and its target, or two hard links, match whatever their names. Only store entries are folded: the first
 * entry with that file (config, registry, models folder, then the stores in order) keeps it, and the store
 * entry's names become its aliases. Entries with settings of their own (config, registry) are never folded into
 * each other: two config entries may run one file with different settings.
 */
import { statSync } from "node:fs";

interface Entry {
  name: string;
  aliases: string[];
  path: string;
  source: string;
}

export interface Folded {
  name: string;
  /** The entry it was folded into. */
  into: { name: string; source: string; path: string };
  source: string;
  path: string;
}

/** `dev:ino` of the file a path leads to, or undefined when it cannot be read. */
export function fileIdentity(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Folds the store entries (`isStore`) whose file an earlier entry already has. Entries are in precedence order;
 * the result keeps that order. `identity` is injectable for tests of the rule alone.
 */
export function foldSameFiles<E extends Entry>(
  entries: readonly E[],
  isStore: (e: E) => boolean,
  identity: (path: string) => string | undefined = fileIdentity,
): { entries: E[]; folded: Folded[] } {
  const byFile = new Map<string, E>();
  const kept: E[] = [];
  const folded: Folded[] = [];
  for (const e of entries) {
    const id = identity(e.path);
    const first = id !== undefined ? byFile.get(id) : undefined;
    if (first && isStore(e)) {
      for (const n of [e.name, ...e.aliases]) if (n !== first.name && !first.aliases.includes(n)) first.aliases.push(n);
      folded.push({
        name: e.name,
        source: e.source,
        path: e.path,
        into: { name: first.name, source: first.source, path: first.path },
      });
      continue;
    }
    const copy = { ...e, aliases: [...e.aliases] };
    if (id !== undefined && !byFile.has(id)) byFile.set(id, copy);
    kept.push(copy);
  }
  return { entries: kept, folded };
}
