/**
 * What a .gguf file's name says, in one place: shards of a split model and multimodal projectors. The GGUF reader,
 * the models-folder scan, `gglib models add` and every command that takes a model path use these rules.
 *
 * - Shards: `<stem>-00002-of-00003.gguf` (llama.cpp's `gguf-split` naming): five digits each, 1 ≤ index ≤ count.
 * - Quantization labels: the last label-like word part of the stem (`Qwen3-4B-Q4_K_M.gguf` → Q4_K_M,
 *   `gemma-3-4b-it-UD-Q4_K_XL.gguf` → UD-Q4_K_XL, `x.f16.gguf` → F16); the hub's quant choice and Ollama's
 *   `name:tag` both read it from here.
 * - Projectors: `mmproj` as a word part of the file's stem, the way llama.cpp's converters and Hugging Face repos
 *   name them: `mmproj-model-f16.gguf`, `qwen-mmproj-f16.gguf`, `gemma.mmproj.gguf`, `Model_mmproj.gguf`. A word
 *   part is delimited by the start or end of the stem, `-`, `_` or `.`; `mmprojector-notes.gguf` is not one.
 */
import { basename } from "node:path";

const SHARD_RE = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;
const MMPROJ_RE = /(^|[-_.])mmproj([-_.]|$)/i;

export interface ShardName {
  /** The path up to `-00001-of-00003.gguf`. */
  prefix: string;
  /** The file name up to `-00001-of-00003.gguf`: the model's default name. */
  stem: string;
  /** 1-based. */
  index: number;
  count: number;
}

export function isGgufFile(file: string): boolean {
  return /\.gguf$/i.test(file);
}

/** `/m/model-00002-of-00003.gguf` → { prefix: "/m/model", stem: "model", index: 2, count: 3 }. */
export function parseShardName(path: string): ShardName | undefined {
  const m = SHARD_RE.exec(path);
  if (!m) return undefined;
  const index = Number(m[2]);
  const count = Number(m[3]);
  if (index < 1 || count < 1 || index > count) return undefined;
  return { prefix: m[1]!, stem: basename(m[1]!), index, count };
}

/** All shard paths of a split model, in order (the path alone for a single file). */
export function shardPaths(path: string): string[] {
  const s = parseShardName(path);
  if (!s) return [path];
  const pad = (n: number) => String(n).padStart(5, "0");
  return Array.from({ length: s.count }, (_, i) => `${s.prefix}-${pad(i + 1)}-of-${pad(s.count)}.gguf`);
}

/** A multimodal projector by its name (see the header comment). */
export function isMmprojFile(path: string): boolean {
  const name = basename(path);
  return isGgufFile(name) && MMPROJ_RE.test(name.replace(/\.gguf$/i, ""));
}

/** The default model name of a file: `Qwen3-4B-Q4_K_M.gguf` → `Qwen3-4B-Q4_K_M`; shards lose `-0000N-of-0000M`. */
export function modelStem(path: string): string {
  return parseShardName(path)?.stem ?? basename(path).replace(/\.gguf$/i, "");
}

/** The .gguf files of a folder or a repo listing, sorted out by name. */
export interface GgufGroups<T> {
  /** Single files in the order met, then complete shard sets in the order their first file was met. */
  models: { prefix: string; stem: string; files: T[] }[];
  projectors: T[];
  /** Shard sets with files missing. */
  incomplete: { prefix: string; stem: string; present: number; count: number }[];
}

/**
 * Sorts files (anything with a path) into projectors, single-file models and shard sets, by the rules above.
 * Files that are not .gguf are left out. `prefix` is the path without `.gguf` (a shard set's: without the shard
 * suffix), `stem` its last part: the model's default name.
 */
export function groupGgufPaths<T>(items: readonly T[], pathOf: (item: T) => string): GgufGroups<T> {
  const out: GgufGroups<T> = { models: [], projectors: [], incomplete: [] };
  const sets = new Map<string, { prefix: string; stem: string; count: number; files: Map<number, T> }>();
  for (const item of items) {
    const path = pathOf(item);
    if (!isGgufFile(path)) continue;
    const shard = parseShardName(path);
    if (isMmprojFile(path)) out.projectors.push(item);
    else if (!shard) out.models.push({ prefix: path.replace(/\.gguf$/i, ""), stem: modelStem(path), files: [item] });
    else {
      const key = `${shard.prefix}\u0000${shard.count}`;
      let set = sets.get(key);
      if (!set) sets.set(key, (set = { prefix: shard.prefix, stem: shard.stem, count: shard.count, files: new Map() }));
      set.files.set(shard.index, item);
    }
  }
  for (const set of sets.values()) {
    const files: T[] = [];
    for (let i = 1; i <= set.count; i++) {
      const f = set.files.get(i);
      if (f !== undefined) files.push(f);
    }
    if (files.length === set.count) out.models.push({ prefix: set.prefix, stem: set.stem, files });
    else out.incomplete.push({ prefix: set.prefix, stem: set.stem, present: files.length, count: set.count });
  }
  return out;
}

const QUANT_RE =
  /(?:^|[-_.])((?:UD-)?(?:I?Q\d(?:_[0-9A-Z]{1,4}){0,3}|TQ\d_\d|MXFP4(?:_MOE)?|BF16|FP16|FP32|F16|F32))(?=$|[-_.])/gi;

/**
 * The quantization label a file name carries (the last one when several look like labels), upper-cased: Q4_K_M,
 * IQ3_XXS, UD-Q4_K_XL, Q4_0_4_4, BF16, F16 (also for FP16), F32, MXFP4, TQ1_0. Undefined when it carries none.
 */
export function quantOf(fileName: string): string | undefined {
  const stem = basename(fileName)
    .replace(/\.gguf$/i, "")
    .replace(/-\d{5}-of-\d{5}$/i, "");
  let last: string | undefined;
  for (const m of stem.matchAll(QUANT_RE)) last = m[1];
  if (last === undefined) return undefined;
  const q = last.toUpperCase();
  return q === "FP16" ? "F16" : q === "FP32" ? "F32" : q;
}
