/**
 * Names for the models of one repository-shaped folder (an HF repo snapshot, an LM Studio publisher/repo folder):
 * `org/repo:<quant>` (the quantization label of the file name, src/gguf/names.ts quantOf), or `org/repo:<file stem>`
 * when a file carries no label or two files carry the same one. A repo holding one model also answers to
 * `org/repo`. Projectors are never models: a model gets the projector of its own folder, else the repo's only
 * one. Pure: the files are given as paths relative to the repo.
 */
import { posix } from "node:path";
import { groupGgufPaths, quantOf } from "../../gguf/names.js";

export interface RepoModel {
  name: string;
  aliases: string[];
  /** Relative paths (posix separators), the first shard first. */
  shards: string[];
  mmproj?: string;
}

export function nameRepoModels(
  repo: string,
  relFiles: readonly string[],
): { models: RepoModel[]; incomplete: string[] } {
  const byDir = new Map<string, string[]>();
  for (const f of relFiles) {
    const d = posix.dirname(f);
    byDir.set(d, [...(byDir.get(d) ?? []), f]);
  }
  const found: { stem: string; quant: string | undefined; shards: string[]; mmproj?: string }[] = [];
  const allProjectors: string[] = [];
  const incomplete: string[] = [];
  for (const [, files] of [...byDir.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const g = groupGgufPaths([...files].sort(), (f) => f);
    allProjectors.push(...g.projectors);
    for (const s of g.incomplete) incomplete.push(`${s.prefix}: only ${s.present} of ${s.count} shards present`);
    for (const m of g.models) {
      const first = m.files[0]!;
      const q = quantOf(first);
      found.push({
        stem: m.stem,
        quant: q,
        shards: m.files,
        ...(g.projectors[0] ? { mmproj: g.projectors[0] } : {}),
      });
    }
  }
  const repoProjector = allProjectors.length === 1 ? allProjectors[0] : undefined;
  const quantCount = new Map<string, number>();
  for (const f of found) if (f.quant) quantCount.set(f.quant, (quantCount.get(f.quant) ?? 0) + 1);
  const models = found.map((f): RepoModel => {
    const tag = f.quant && quantCount.get(f.quant) === 1 ? f.quant : f.stem;
    const mmproj = f.mmproj ?? repoProjector;
    return {
      name: `${repo}:${tag}`,
      aliases: found.length === 1 ? [repo] : [],
      shards: f.shards,
      ...(mmproj ? { mmproj } : {}),
    };
  });
  return { models, incomplete };
}
