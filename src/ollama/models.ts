/**
 * What the Ollama API needs to know about the proxy's models, read from their files and cached until a file
 * changes: GGUF header (for model_info), metadata (details, capabilities), sizes and modification times.
 */
import { stat } from "node:fs/promises";
import { readGgufHeader, readModelMetadata, type GgufReadValue, type ModelMetadata } from "../gguf/reader.js";
import { capabilities, details, fileDigest, hasFim, type OllamaCapability, type OllamaDetails } from "./model-info.js";

export interface ModelFacts {
  metadata?: ModelMetadata;
  kv?: ReadonlyMap<string, GgufReadValue>;
  /** Sum of the model's files (shards + mmproj). */
  size: number;
  modifiedMs: number;
  digest: string;
  details: OllamaDetails;
  capabilities: OllamaCapability[];
  error?: string;
}

/** The files of a model (the proxy's ProxyModel fits). */
export interface ModelFiles {
  name: string;
  entry: { path: string; shards: readonly string[]; mmproj?: string };
}

export class ModelFactsCache {
  private readonly cache = new Map<string, { stamp: string; facts: ModelFacts }>();

  async get(m: ModelFiles): Promise<ModelFacts> {
    const files = [...m.entry.shards, ...(m.entry.mmproj ? [m.entry.mmproj] : [])];
    const stats = await Promise.all(
      files.map(async (p) => {
        try {
          const s = await stat(p);
          return { path: p, size: s.size, mtimeMs: s.mtimeMs };
        } catch {
          return { path: p, size: 0, mtimeMs: 0 };
        }
      }),
    );
    const stamp = stats.map((s) => `${s.path}:${s.size}:${s.mtimeMs}`).join("|");
    const hit = this.cache.get(m.name);
    if (hit && hit.stamp === stamp) return hit.facts;
    const facts: ModelFacts = {
      size: stats.reduce((a, s) => a + s.size, 0),
      modifiedMs: Math.max(0, ...stats.map((s) => s.mtimeMs)),
      digest: fileDigest(stats),
      details: {
        parent_model: "",
        format: "gguf",
        family: "",
        families: null,
        parameter_size: "",
        quantization_level: "",
      },
      capabilities: ["completion"],
    };
    try {
      const [metadata, header] = await Promise.all([
        readModelMetadata(m.entry.path),
        readGgufHeader(m.entry.path, { maxArrayItems: 64, tensors: false }),
      ]);
      facts.metadata = metadata;
      facts.kv = header.kv;
      facts.details = details(metadata);
      facts.capabilities = capabilities(metadata, { mmproj: m.entry.mmproj !== undefined, fim: hasFim(header.kv) });
    } catch (e) {
      facts.error = (e as Error).message;
    }
    this.cache.set(m.name, { stamp, facts });
    return facts;
  }
}
