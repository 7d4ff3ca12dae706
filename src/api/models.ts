// gglib-runtime/models: the registry, model sources, capabilities, the memory estimator, launch defaults.
export * from "../models/registry.js";
export * from "../models/sources.js";
export * from "../models/capabilities.js";
export * from "../models/estimator.js";
export * from "../models/launch-defaults.js";
