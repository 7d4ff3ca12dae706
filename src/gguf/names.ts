/**
 * What a .gguf file's name says, in one place: shards of a split model and multimodal projectors. The GGUF reader,
 * the models-folder scan, `gglib models add` and every command that takes a model path use these rules.
 *
 * - Shards: `<stem>-00002-of-00003.gguf` (llama.cpp's `gguf-split` naming): five digits each, 1 ≤ index ≤ count.
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
