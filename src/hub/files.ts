/**
 * From a repo's file listing to what to download: the GGUF models it holds ("variants": one file, or one shard set,
 * per quantization), its multimodal projectors, the variant a tag names, and where the files go. Pure.
 *
 * Local layout, chosen so the models-folder scan (src/models/sources.ts) gives the model the same name as the
 * registry: `<modelsDir>/<user>/<repo>/<name>/` holds one model, its shards and its projector (renamed to start
 * with `mmproj-` when the repo calls it otherwise); a single file
 * without a projector is `<name>.gguf`, so the scan names it by its stem, which is again `<name>`.
 */
import { posix } from "node:path";
import { GglibError } from "../core/errors.js";
import { groupGgufPaths, isMmprojFile } from "../gguf/names.js";
import { quantOf } from "../gguf/names.js";
import { mmprojRank, quantRank, sameQuant } from "./quant.js";

/** One file of the repo, as the hub's tree API lists it. */
export interface RepoFile {
  /** Path in the repo (may have folders). */
  path: string;
  size: number;
  /** SHA-256 of the content (the LFS oid), hex; undefined for files kept in git itself. */
  sha256?: string;
  /** The git blob id (SHA-1 of "blob <size>\0" + content) of files kept in git. */
  gitOid?: string;
}

export interface Variant {
  /** The repo path of the model without `.gguf` and shard suffix (`Q8_0/model-Q8_0`), unique in the repo. */
  id: string;
  /** File stem without the shard suffix (`model-Q8_0`). */
  stem: string;
  quant?: string;
  /** Every file in order (the shards, or the one file). */
  files: RepoFile[];
  totalBytes: number;
}

export interface RepoModels {
  variants: Variant[];
  mmproj: RepoFile[];
  /** Things left out (incomplete shard sets). */
  warnings: string[];
}

/** The GGUF models and projectors among a repo's files. Variants sorted by preference (DEFAULT_QUANT_ORDER), then size. */
export function repoModels(files: readonly RepoFile[]): RepoModels {
  // importance matrices (llama-imatrix output) are data for quantizing, not models
  const g = groupGgufPaths(
    files.filter((f) => !/imatrix/i.test(posix.basename(f.path))),
    (f) => f.path,
  );
  const variants = g.models.map((m) => variant(m.prefix, m.stem, m.files));
  const mmproj = [...g.projectors];
  const warnings = g.incomplete.map((s) => `${s.prefix}: the repo has ${s.present} of its ${s.count} shards; left out`);
  variants.sort((a, b) => quantRank(a.quant) - quantRank(b.quant) || a.totalBytes - b.totalBytes);
  mmproj.sort((a, b) => mmprojRank(a.path) - mmprojRank(b.path) || a.path.localeCompare(b.path));
  return { variants, mmproj, warnings };
}

function variant(id: string, stem: string, files: RepoFile[]): Variant {
  const v: Variant = { id, stem, files, totalBytes: files.reduce((s, f) => s + f.size, 0) };
  const q = quantOf(stem);
  if (q) v.quant = q;
  return v;
}

/** The tags a user can write after the colon: each variant's quantization, or its stem when it has none. */
export function variantTag(v: Variant): string {
  return v.quant ?? v.stem;
}

/**
 * The variant a tag names: a quantization (case-insensitive; `Q4_K_XL` also finds `UD-Q4_K_XL`), else a file path
 * or name in the repo (with or without `.gguf`, any shard of a set), else a stem. Throws hub_not_found listing what
 * there is when nothing matches, and invalid_config when a quantization is ambiguous.
 */
export function findVariant(models: RepoModels, tag: string, repo: string): Variant {
  const t = tag.trim();
  const byQuant = models.variants.filter((v) => v.quant !== undefined && sameQuant(t, v.quant));
  const exact = byQuant.filter((v) => v.quant!.toUpperCase() === t.toUpperCase());
  const q = exact.length > 0 ? exact : byQuant;
  if (q.length === 1) return q[0]!;
  if (q.length > 1) {
    throw new GglibError(
      "invalid_config",
      `${repo} has ${q.length} models quantized ${t}: ${q.map((v) => v.id).join(", ")}.`,
      {
        hint: `Name the file instead: gglib pull ${repo}:${q[0]!.files[0]!.path}`,
      },
    );
  }
  const lower = t.toLowerCase().replace(/\.gguf$/, "");
  for (const v of models.variants) {
    for (const f of v.files) {
      const p = f.path.toLowerCase().replace(/\.gguf$/, "");
      if (p === lower || posix.basename(p) === lower) return v;
    }
    if (v.id.toLowerCase() === lower || v.stem.toLowerCase() === lower) return v;
  }
  if (isMmprojFile(t.endsWith(".gguf") ? t : `${t}.gguf`)) {
    throw new GglibError("invalid_config", `${t} is a multimodal projector, not a model.`, {
      hint: `Pull the model (its projector comes along): gglib pull ${repo}`,
    });
  }
  throw new GglibError("hub_not_found", `${repo} has no GGUF model "${t}".`, { hint: availableHint(models, repo) });
}

/** "Available: Q4_K_M, Q8_0, …" for error messages. */
export function availableHint(models: RepoModels, repo: string): string {
  if (models.variants.length === 0) return `${repo} holds no .gguf model; look for a repo whose name ends in -GGUF.`;
  const tags = [...new Set(models.variants.map(variantTag))];
  return `Available in ${repo}: ${tags.join(", ")}. Example: gglib pull ${repo}:${tags[0]}`;
}

/** The projector for a variant: one in the variant's own folder first, then one at the repo's top, by preference. */
export function mmprojFor(models: RepoModels, v: Variant): RepoFile | undefined {
  const dir = posix.dirname(v.files[0]!.path);
  return models.mmproj.find((m) => posix.dirname(m.path) === dir) ?? models.mmproj.find((m) => !m.path.includes("/"));
}

/** A projector a tag names (a quantization like F16, or a file name/path). */
export function findMmproj(models: RepoModels, tag: string, repo: string): RepoFile {
  const t = tag
    .trim()
    .toLowerCase()
    .replace(/\.gguf$/, "");
  const hit =
    models.mmproj.find((m) => m.path.toLowerCase().replace(/\.gguf$/, "") === t) ??
    models.mmproj.find(
      (m) =>
        posix
          .basename(m.path)
          .toLowerCase()
          .replace(/\.gguf$/, "") === t,
    ) ??
    models.mmproj.find((m) => quantOf(m.path)?.toLowerCase() === t);
  if (hit) return hit;
  throw new GglibError("hub_not_found", `${repo} has no projector "${tag}".`, {
    hint:
      models.mmproj.length > 0
        ? `Projectors in ${repo}: ${models.mmproj.map((m) => m.path).join(", ")}.`
        : `${repo} has no mmproj file; pull without --mmproj.`,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Names and places

const NAME_OK = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

/**
 * The local model name of a variant: its stem, with any character a model name (or a folder) cannot hold turned
 * into `-`. Folder-safe by construction: no `/` or `:`.
 */
export function localName(stem: string): string {
  let n = stem
    .replace(/[^A-Za-z0-9._@+-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 128);
  n = n.replace(/[-.]+$/, "");
  return n === "" ? "model" : n;
}

/** Throws unless `name` can be a pulled model's name (and so its folder). */
export function assertPullName(name: string): void {
  if (!NAME_OK.test(name) || name === "." || name === "..") {
    throw new GglibError("invalid_config", `"${name}" cannot name a pulled model.`, {
      hint: "Use 1-128 letters, digits and . _ @ + - (no / or :, since it is also the model's folder name).",
    });
  }
}

/** The alias a pulled model also answers to: `<user>/<repo>:<quant>` (the `gglib pull` reference itself). */
export function refAlias(repo: string, v: Variant): string {
  return `${repo}:${variantTag(v)}`;
}

export interface PlannedFile {
  file: RepoFile;
  /** Path relative to the models folder. */
  local: string;
  role: "model" | "mmproj";
}

/** Where each file goes, relative to the models folder (see the header comment). */
export function planFiles(repo: string, name: string, v: Variant, mmproj: RepoFile | undefined): PlannedFile[] {
  const dir = posix.join(...repo.split("/"), name);
  const out: PlannedFile[] = [];
  if (v.files.length === 1) {
    out.push({ file: v.files[0]!, local: posix.join(dir, `${name}.gguf`), role: "model" });
  } else {
    for (const f of v.files) out.push({ file: f, local: posix.join(dir, posix.basename(f.path)), role: "model" });
  }
  if (mmproj) {
    const base = posix.basename(mmproj.path);
    out.push({ file: mmproj, local: posix.join(dir, /^mmproj/i.test(base) ? base : `mmproj-${base}`), role: "mmproj" });
  }
  return out;
}
