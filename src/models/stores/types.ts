/**
 * What every store module returns: the models it found (names in the store's own style), the folders worth
 * watching for changes, and what it skipped and why. See README.md in this folder.
 */

/** The other tools' model stores gglib reads (never writes). */
export type StoreName = "ollama" | "lmstudio" | "hf-cache" | "llama-cache";

export const STORE_NAMES: readonly StoreName[] = ["ollama", "lmstudio", "hf-cache", "llama-cache"];

/** The tool each store belongs to, for messages ("belongs to Ollama"). */
export const STORE_TOOLS: Readonly<Record<StoreName, string>> = {
  ollama: "Ollama",
  lmstudio: "LM Studio",
  "hf-cache": "the Hugging Face cache",
  "llama-cache": "llama.cpp's cache",
};

/** Where a store model lives, and what its store says about it (shown, never forced on the launch). */
export interface StoreInfo {
  /** The store's root folder (Ollama's models dir, LM Studio's models dir, the hub cache, llama.cpp's cache). */
  root: string;
  /** The store's own reference: an Ollama manifest, an HF repo and revision, an LM Studio publisher/repo. */
  ref: string;
  /** Ollama: the `params` layer (JSON: stop, temperature, …). */
  params?: Record<string, unknown>;
  /** Ollama: the `template` layer (a Go template; llama-server uses the GGUF's own chat template). */
  template?: string;
  /** Ollama: the `system` layer. */
  system?: string;
}

/** One model found in a store. */
export interface StoreModel {
  name: string;
  aliases: string[];
  /** The file llama-server loads (the first shard); a store's symlink is kept as found (it is what the user sees). */
  path: string;
  shards: string[];
  mmproj?: string;
  store: StoreName;
  info: StoreInfo;
}

export interface StoreScan {
  models: StoreModel[];
  /** Folders whose changes mean new or removed models (Ollama's manifests, the hub's repos…). */
  watch: string[];
  warnings: string[];
}
