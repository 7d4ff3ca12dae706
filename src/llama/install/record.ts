/**
 * The install record: `<dataDir>/llama/install.json`, written by `gglib llama install`/`update`, read by
 * `status`/`update`. Written atomically (tmp + rename).
 */
import { readFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Backend } from "./source-build.js";

export type InstallType = "source" | "prebuilt";
export type InstallSourceKind = "dir" | "bundle" | "url" | "release";

export interface InstallRecord {
  /** Record format. */
  schema: 1;
  installType: InstallType;
  /** llama.cpp's version text (`0.4.0-dev (build 1, commit 80fb11a)`) or, failing that, the release tag. */
  version: string;
  /** Release tag (prebuilt) or the git ref asked for (source). */
  tag?: string;
  /** Full commit sha when known (source builds), else the short one from `--version`, else "unknown". */
  commit: string;
  backend: Backend;
  /** cmake -D flags used (empty for prebuilt). */
  cmakeFlags: string[];
  /** Our source patches applied (patches.ts ids, `name@hash`); absent or empty: none. */
  patches?: string[];
  /** Our patches tried that did not apply to this tree (ids): `gglib llama update` does not try them again. */
  patchesSkipped?: string[];
  /** What was installed from: a folder, a bundle, a git URL, or the release asset URL. */
  source: string;
  sourceKind: InstallSourceKind;
  /** Release asset name (prebuilt). */
  asset?: string;
  binaryPath: string;
  /** ISO 8601 UTC. */
  installedAt: string;
  durationMs?: number;
  /** The build log kept with the install. */
  logFile?: string;
}

export function readInstallRecord(file: string): InstallRecord | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    const r = JSON.parse(text) as Partial<InstallRecord>;
    if (typeof r !== "object" || r === null || typeof r.backend !== "string" || typeof r.binaryPath !== "string")
      return undefined;
    return {
      schema: 1,
      installType: r.installType === "prebuilt" ? "prebuilt" : "source",
      version: String(r.version ?? "unknown"),
      ...(r.tag ? { tag: String(r.tag) } : {}),
      commit: String(r.commit ?? "unknown"),
      backend: r.backend,
      cmakeFlags: Array.isArray(r.cmakeFlags) ? r.cmakeFlags.map(String) : [],
      ...(Array.isArray(r.patches) && r.patches.length > 0 ? { patches: r.patches.map(String) } : {}),
      ...(Array.isArray(r.patchesSkipped) && r.patchesSkipped.length > 0
        ? { patchesSkipped: r.patchesSkipped.map(String) }
        : {}),
      source: String(r.source ?? ""),
      sourceKind: r.sourceKind ?? "dir",
      ...(r.asset ? { asset: String(r.asset) } : {}),
      binaryPath: r.binaryPath,
      installedAt: String(r.installedAt ?? ""),
      ...(typeof r.durationMs === "number" ? { durationMs: r.durationMs } : {}),
      ...(r.logFile ? { logFile: String(r.logFile) } : {}),
    };
  } catch {
    return undefined;
  }
}

export async function writeInstallRecord(file: string, record: InstallRecord): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(record, null, 2) + "\n");
  await rename(tmp, file);
}

/** `version: 0.4.0-dev (build 1, commit 80fb11a)` → `80fb11a`. */
export function commitFromVersion(text: string | undefined): string | undefined {
  return text ? /commit\s+([0-9a-f]{7,40})/i.exec(text)?.[1] : undefined;
}

/** What makes two llama.cpp builds the same binary: the commit, the backend, the cmake flags and our patches. */
export interface BuildIdentity {
  commit: string;
  backend: Backend;
  cmakeFlags: readonly string[];
  /** patches.ts ids applied, in order (empty: none). */
  patches: readonly string[];
}

/**
 * Pure: is the install `record` a source build of `want`? Commits match when one is a prefix of the other (a
 * record may carry only the short sha from `--version`); flags and patches must be the same, in the same order.
 */
export function isSameBuild(record: InstallRecord, want: BuildIdentity): boolean {
  const a = record.commit.toLowerCase();
  const b = want.commit.toLowerCase();
  const commitMatches =
    /^[0-9a-f]{7,40}$/.test(a) && /^[0-9a-f]{7,40}$/.test(b) && (a.startsWith(b) || b.startsWith(a));
  return (
    record.installType === "source" &&
    commitMatches &&
    record.backend === want.backend &&
    sameList(record.cmakeFlags, want.cmakeFlags) &&
    sameList(record.patches ?? [], want.patches)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
