// gglib-runtime/hub: Hugging Face: `gglib pull` (ref parsing, file choice, resumable verified downloads).
export * from "../hub/pull.js";
export * from "../hub/ref.js";
