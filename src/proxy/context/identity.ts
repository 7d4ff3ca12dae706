/**
 * Identity of a saved KV cache: a slot file is restored only into the same model file, the same llama-server build
 * and the same settings that shape the cache. Anything else is discarded, never loaded (llama-server would load a
 * state of the same shape from another model or build without complaint and answer from garbage).
 */
import { createHash } from "node:crypto";
import type { ServerConfig } from "../../core/config.js";

/** One model file (every shard of a split model): a changed size or mtime means another file. */
export interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

/** The llama-server build, from its capability probe (`--version`) and the binary's size. */
export interface BuildStamp {
  version?: string;
  commit?: string;
  backend: string;
  binarySize?: number;
}

/** The launch settings that change what the KV cache holds or how it is laid out. */
export interface CacheSettings {
  ctx?: number;
  parallel?: number;
  cacheTypeK?: string;
  cacheTypeV?: string;
  flashAttention?: string;
  /** Extra llama-server args, in order, without the ones that only change logging. */
  extraArgs: string[];
}

export interface ContextIdentity {
  files: FileStamp[];
  build: BuildStamp;
  settings: CacheSettings;
}

/** Args that never change the cache: logging. Each entry: the flag and whether it takes a value. */
const NEUTRAL_ARGS = new Map<string, boolean>([
  ["-lv", true],
  ["--verbosity", true],
  ["--log-verbosity", true],
  ["--log-file", true],
  ["--log-colors", true],
  ["--log-prefix", false],
  ["--log-timestamps", false],
  ["--log-disable", false],
  ["--metrics", false],
]);

/** Pure: the cache-shaping part of a launch config. */
export function cacheSettingsOf(server: ServerConfig): CacheSettings {
  const extra: string[] = [];
  const args = server.extraArgs ?? [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const takesValue = NEUTRAL_ARGS.get(a);
    if (takesValue !== undefined) {
      if (takesValue) i++;
      continue;
    }
    extra.push(a);
  }
  const s: CacheSettings = { extraArgs: extra };
  if (server.contextSize !== undefined) s.ctx = server.contextSize;
  if (server.parallel !== undefined) s.parallel = server.parallel;
  if (server.cacheTypeK !== undefined) s.cacheTypeK = server.cacheTypeK;
  if (server.cacheTypeV !== undefined) s.cacheTypeV = server.cacheTypeV;
  if (server.flashAttention !== undefined) s.flashAttention = server.flashAttention;
  return s;
}

/** Pure: a stable hash of an identity (keys in a fixed order). */
export function identityKey(id: ContextIdentity): string {
  const canonical = JSON.stringify([
    id.files.map((f) => [f.path, f.size, Math.round(f.mtimeMs)]),
    [id.build.version ?? null, id.build.commit ?? null, id.build.backend, id.build.binarySize ?? null],
    [
      id.settings.ctx ?? null,
      id.settings.parallel ?? null,
      id.settings.cacheTypeK ?? null,
      id.settings.cacheTypeV ?? null,
      id.settings.flashAttention ?? null,
      id.settings.extraArgs,
    ],
  ]);
  return createHash("sha256").update(canonical).digest("hex").slice(0, 32);
}

const show = (v: string | number | readonly string[] | undefined): string =>
  v === undefined ? "default" : typeof v === "object" ? v.join(" ") || "none" : String(v);

/** Pure: what differs between a saved identity and the current one, in words ("ctx 2048 → 4096"); [] = the same. */
export function identityDifferences(saved: ContextIdentity, current: ContextIdentity): string[] {
  const out: string[] = [];
  const a = saved.files;
  const b = current.files;
  if (a.length !== b.length || a.some((f, i) => f.path !== b[i]?.path)) out.push("the model file path changed");
  else if (a.some((f, i) => f.size !== b[i]?.size || Math.round(f.mtimeMs) !== Math.round(b[i]?.mtimeMs ?? 0)))
    out.push("the model file changed (size or modification time)");
  const ba = saved.build;
  const bb = current.build;
  if (ba.version !== bb.version || ba.commit !== bb.commit || ba.backend !== bb.backend)
    out.push(`the llama-server build changed (${show(ba.version)} → ${show(bb.version)})`);
  else if (ba.binarySize !== bb.binarySize) out.push("the llama-server binary changed");
  const names: [keyof Omit<CacheSettings, "extraArgs">, string][] = [
    ["ctx", "ctx"],
    ["parallel", "parallel"],
    ["cacheTypeK", "cacheTypeK"],
    ["cacheTypeV", "cacheTypeV"],
    ["flashAttention", "flashAttention"],
  ];
  for (const [k, label] of names)
    if (saved.settings[k] !== current.settings[k])
      out.push(`${label} ${show(saved.settings[k])} → ${show(current.settings[k])}`);
  if (JSON.stringify(saved.settings.extraArgs) !== JSON.stringify(current.settings.extraArgs))
    out.push(`extraArgs ${show(saved.settings.extraArgs)} → ${show(current.settings.extraArgs)}`);
  return out;
}
