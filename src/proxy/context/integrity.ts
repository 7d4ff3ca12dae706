/**
 * What a slot file must be before llama-server is asked to restore it, and what a manifest entry must look like
 * before the store touches the file it names. Pure: names, paths and facts in, a reason out.
 *
 * llama-server trusts a slot file completely: a truncated one aborts the process (`GGML_ASSERT(nread <=
 * state_size)`), flipped bytes or another model's file of the same shape are loaded and answered from, and a FIFO
 * blocks its main loop forever. So each file is bound at save time to its content and to the identity it was saved
 * under (size and a SHA-256 over the identity key, the slot id and the bytes) and checked before every restore; a
 * file that is not a regular file, not named as we name it, or that does not match is dropped, never restored.
 */
import { createHash, type Hash } from "node:crypto";
import { isAbsolute, relative, resolve } from "node:path";

/** Slot ids the store accepts (llama-server's `--parallel` is far below this). */
export const MAX_SLOT_ID = 4095;

const ID = "(0|[1-9][0-9]{0,3})";
const FINAL = new RegExp(`^slot-${ID}\\.bin$`);
const TEMP = new RegExp(`^slot-${ID}\\.[0-9]+\\.[0-9a-f]+\\.tmp$`);
const DIGEST = /^[0-9a-f]{64}$/;

const validId = (id: number) => Number.isInteger(id) && id >= 0 && id <= MAX_SLOT_ID;

/** The name a saved slot has in its model's folder. */
export function slotFileName(id: number): string {
  if (!validId(id)) throw new RangeError(`slot id ${id} is outside 0..${MAX_SLOT_ID}`);
  return `slot-${id}.bin`;
}

/** A name the store writes: a saved slot (`slot-<id>.bin`) or a save in progress (`slot-<id>.<pid>.<hex>.tmp`). */
export function isSlotFileName(name: string): boolean {
  return slotIdOfName(name) !== undefined;
}

/** A save in progress (`slot-<id>.<pid>.<hex>.tmp`). */
export function isTempSlotName(name: string): boolean {
  return TEMP.test(name) && validId(Number(TEMP.exec(name)![1]));
}

function slotIdOfName(name: string): number | undefined {
  const m = FINAL.exec(name) ?? TEMP.exec(name);
  const id = m ? Number(m[1]) : NaN;
  return validId(id) ? id : undefined;
}

/** A manifest key as a slot id: canonical decimal ("0", "12"; never "01", "1e3", "-1"), else undefined. */
export function slotIdOfKey(key: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,3})$/.test(key)) return undefined;
  const id = Number(key);
  return validId(id) ? id : undefined;
}

/**
 * The absolute path of `name` inside `dir`, or undefined when `name` is not a plain file name that stays inside it
 * (a separator, `..`, an absolute path, an empty name, a NUL).
 */
export function pathInside(dir: string, name: string): string | undefined {
  if (name === "" || name === "." || name === ".." || /[/\\\0]/.test(name)) return undefined;
  const base = resolve(dir);
  const full = resolve(base, name);
  const rel = relative(base, full);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel) || rel.includes("/") || rel.includes("\\"))
    return undefined;
  return full;
}

/** A saved slot as the manifest records it (the shape store.ts writes). */
export interface SlotRecord {
  file: string;
  tokens: number;
  bytes: number;
  /** SHA-256 (hex) of the identity key, the slot id and the file's bytes: see slotDigest(). */
  sha256: string;
  savedAt: number;
  lastUsedAt: number;
}

const count = (v: unknown, min: number) =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min ? v : undefined;

/**
 * A manifest entry as read from disk (anything): the record when it is one the store could have written for slot
 * `key`, else the reason it is not (so it is dropped and the file it names is never opened or removed by name).
 */
export function checkEntry(key: string, v: unknown): { ok: true; slot: SlotRecord } | { ok: false; reason: string } {
  const id = slotIdOfKey(key);
  if (id === undefined) return { ok: false, reason: `slot id ${JSON.stringify(key.slice(0, 40))} is not a slot id` };
  if (typeof v !== "object" || v === null) return { ok: false, reason: `slot ${id}: not an entry` };
  const e = v as Record<string, unknown>;
  if (e.file !== slotFileName(id))
    return {
      ok: false,
      reason: `slot ${id}: file ${JSON.stringify(String(e.file).slice(0, 80))} is not ${slotFileName(id)}`,
    };
  const tokens = count(e.tokens, 0);
  const bytes = count(e.bytes, 1);
  if (tokens === undefined || bytes === undefined) return { ok: false, reason: `slot ${id}: no valid size` };
  if (typeof e.sha256 !== "string" || !DIGEST.test(e.sha256))
    return { ok: false, reason: `slot ${id}: no content hash (saved by an older version)` };
  const savedAt = count(e.savedAt, 0) ?? 0;
  const lastUsedAt = count(e.lastUsedAt, 0) ?? savedAt;
  return { ok: true, slot: { file: e.file, tokens, bytes, sha256: e.sha256, savedAt, lastUsedAt } };
}

/** What the file system says about a slot file (store.ts inspects it without following links or opening FIFOs). */
export type FileFacts =
  | { kind: "missing" }
  | { kind: "symlink" | "fifo" | "directory" | "other" }
  | { kind: "file"; size: number; sha256?: string };

/** Why a slot file must not be restored, or undefined when it is the file that was saved. */
export function slotFileProblem(expected: Pick<SlotRecord, "bytes" | "sha256">, found: FileFacts): string | undefined {
  switch (found.kind) {
    case "missing":
      return "the file is missing";
    case "symlink":
      return "the file is a symbolic link";
    case "fifo":
      return "the file is a FIFO";
    case "directory":
      return "the file is a folder";
    case "other":
      return "the file is not a regular file";
    case "file":
      if (found.size !== expected.bytes)
        return `the file has ${found.size} bytes, ${expected.bytes} were saved (truncated or replaced)`;
      if (found.sha256 === undefined) return "the file's content could not be checked";
      if (found.sha256 !== expected.sha256)
        return "the file's content does not match what was saved (changed, or another model's)";
      return undefined;
  }
}

/**
 * The hash that binds a slot file to what it was saved under: SHA-256 over a domain tag, the identity key and the
 * slot id, then the file's bytes. A file copied from another model's folder, or from another slot, fails it even
 * when its bytes are intact. Feed the bytes with `update`.
 */
export function slotDigest(identityKey: string, id: number): Hash {
  return createHash("sha256").update(`gglib-slot-v1\0${identityKey}\0${id}\0`);
}
