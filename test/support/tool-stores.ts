/**
 * The other tools' model stores, written the way each tool writes them, for the store tests and the discovery
 * bench (src/models/stores):
 *   - Ollama: `blobs/sha256-<hex>` named by the SHA-256 of their bytes, and `manifests/<registry>/<ns>/<model>/<tag>`
 *     JSON (schemaVersion 2, the docker manifest media type, a config blob, layers with Ollama's media types);
 *   - the Hugging Face hub cache: `models--org--repo/{blobs/<hash>, refs/main, snapshots/<commit>/<file>}` with the
 *     snapshot files relative symlinks into blobs/ (`../../blobs/<hash>`), as huggingface_hub makes them;
 *   - LM Studio: `<models>/<publisher>/<repo>/<file>.gguf`.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

export const OLLAMA_MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json";

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes a blob into an Ollama store; returns its digest (`sha256:<hex>`). */
export function ollamaBlob(root: string, data: Buffer | string): string {
  const hex = sha256(data);
  mkdirSync(join(root, "blobs"), { recursive: true });
  writeFileSync(join(root, "blobs", `sha256-${hex}`), data);
  return `sha256:${hex}`;
}

export interface OllamaModelSpec {
  /** `qwen3`, or `user/model`, or `hf.co/org/repo` (registry/namespace/model). */
  model: string;
  tag: string;
  /** The GGUF's bytes (or its path, read). */
  gguf: Buffer | string;
  projector?: Buffer | string;
  params?: Record<string, unknown>;
  template?: string;
  system?: string;
}

const read = (x: Buffer | string): Buffer => (Buffer.isBuffer(x) ? x : readFileSync(x));

/** Writes one tag of a model (its blobs and manifest) into an Ollama store; returns the manifest's path. */
export function writeOllamaModel(root: string, spec: OllamaModelSpec): string {
  const parts = spec.model.split("/");
  const [registry, namespace, model] =
    parts.length === 3
      ? parts
      : parts.length === 2
        ? ["registry.ollama.ai", ...parts]
        : ["registry.ollama.ai", "library", parts[0]];
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  const layer = (mediaType: string, data: Buffer | string) => {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    layers.push({ mediaType, digest: ollamaBlob(root, bytes), size: bytes.length });
  };
  layer("application/vnd.ollama.image.model", read(spec.gguf));
  if (spec.projector) layer("application/vnd.ollama.image.projector", read(spec.projector));
  if (spec.template !== undefined) layer("application/vnd.ollama.image.template", spec.template);
  if (spec.system !== undefined) layer("application/vnd.ollama.image.system", spec.system);
  if (spec.params) layer("application/vnd.ollama.image.params", JSON.stringify(spec.params));
  const config = Buffer.from(JSON.stringify({ model_format: "gguf", model_family: "llama", file_type: "F16" }));
  const manifest = {
    schemaVersion: 2,
    mediaType: OLLAMA_MANIFEST_MEDIA,
    config: {
      mediaType: "application/vnd.docker.container.image.v1+json",
      digest: ollamaBlob(root, config),
      size: config.length,
    },
    layers,
  };
  const file = join(root, "manifests", registry, namespace, model!, spec.tag);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(manifest));
  return file;
}

/** Writes files of one repo revision into a hub cache; returns the snapshot folder. */
export function writeHfCacheRepo(
  root: string,
  repo: string,
  files: Record<string, Buffer | string>,
  commit = sha256(repo).slice(0, 40),
): string {
  const dir = join(root, `models--${repo.split("/").join("--")}`);
  mkdirSync(join(dir, "blobs"), { recursive: true });
  mkdirSync(join(dir, "refs"), { recursive: true });
  writeFileSync(join(dir, "refs", "main"), commit);
  const snap = join(dir, "snapshots", commit);
  for (const [rel, data] of Object.entries(files)) {
    const bytes = read(data);
    const blob = join(dir, "blobs", sha256(bytes));
    writeFileSync(blob, bytes);
    const link = join(snap, ...rel.split("/"));
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), blob), link);
  }
  return snap;
}

/** Writes a model's files into an LM Studio models folder (`<publisher>/<repo>/<file>`); returns the folder. */
export function writeLmStudioModel(root: string, repo: string, files: Record<string, Buffer | string>): string {
  const dir = join(root, ...repo.split("/"));
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), read(data));
  return dir;
}
