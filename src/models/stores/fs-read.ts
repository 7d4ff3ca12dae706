/** The few read-only filesystem questions the store scans ask, each answering "no" instead of throwing. */
import { lstatSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A symlink whose target is gone. */
export function isDangling(p: string): boolean {
  try {
    if (!lstatSync(p).isSymbolicLink()) return false;
  } catch {
    return false;
  }
  try {
    statSync(p);
    return false;
  } catch {
    return true;
  }
}

export interface Listing {
  dirs: string[];
  files: string[];
  /** Symlinks whose target is gone. */
  dangling: string[];
}

/** A folder's entries (hidden ones left out), symlinks followed, sorted; an unreadable folder lists nothing. */
export function list(p: string): Listing {
  const out: Listing = { dirs: [], files: [], dangling: [] };
  let entries;
  try {
    entries = readdirSync(p, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const d of entries) {
    if (d.name.startsWith(".")) continue;
    if (d.isDirectory()) out.dirs.push(d.name);
    else if (d.isFile()) out.files.push(d.name);
    else if (d.isSymbolicLink()) {
      let st;
      try {
        st = statSync(join(p, d.name)); // one stat per link (snapshot folders are all links)
      } catch {
        out.dangling.push(d.name);
        continue;
      }
      if (st.isDirectory()) out.dirs.push(d.name);
      else if (st.isFile()) out.files.push(d.name);
    }
  }
  out.dirs.sort();
  out.files.sort();
  out.dangling.sort();
  return out;
}
