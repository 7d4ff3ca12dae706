/**
 * What a model card says about a model's architecture (`models[].arch` of /api/status): its name, its layers and
 * what each kind keeps — sliding-window layers a window-sized KV cache, recurrent layers a fixed state, an encoder
 * nothing — and, for an encoder, what it is for (embeddings or rerank, from its pooling). The same rules as the
 * memory estimate (src/models/estimate/layers.ts, llama.cpp's own). Pure; the card's wording is web/src/context.ts.
 */
import type { ModelMetadata } from "../gguf/reader.js";
import { NO_MEMORY_ARCHS, recurrentLayers, swaLayers, type LayerMetadata } from "./estimate/layers.js";

export interface ArchFacts {
  /** `general.architecture`. */
  name: string;
  /** Transformer blocks (absent when the file does not say). */
  layers?: number;
  /** Sliding-window layers: how many of `layers`, and the window in tokens. */
  swa?: { layers: number; window: number };
  /** Recurrent layers (Mamba, Mamba-2, Gated DeltaNet): how many of `layers`; all of them in a recurrent model. */
  recurrent?: number;
  /** An encoder (no KV cache, no conversation): what its pooling makes it serve. */
  encoder?: "embeddings" | "rerank";
}

/** llama.cpp's LLAMA_POOLING_TYPE_RANK. */
const POOLING_RANK = 4;

export function archFacts(
  meta: LayerMetadata & Pick<ModelMetadata, "architecture"> & Partial<Pick<ModelMetadata, "poolingType">>,
): ArchFacts {
  const f: ArchFacts = { name: meta.architecture };
  if (meta.blockCount !== undefined) f.layers = meta.blockCount;
  const swa = swaLayers(meta);
  if (swa && meta.slidingWindow) f.swa = { layers: swa.filter(Boolean).length, window: meta.slidingWindow };
  const rec = recurrentLayers(meta);
  if (rec) f.recurrent = rec.filter(Boolean).length;
  if (NO_MEMORY_ARCHS.has(meta.architecture)) f.encoder = meta.poolingType === POOLING_RANK ? "rerank" : "embeddings";
  return f;
}
