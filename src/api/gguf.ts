// gglib-runtime/gguf: the GGUF header and metadata reader (shards summed, projectors recognised).
export * from "../gguf/reader.js";
export * from "../gguf/types.js";
