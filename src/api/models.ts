// gglib-runtime/models: the settings (schema, config file, launch mapping), the registry, model sources and the
// model resolver, capabilities, the memory estimator, launch defaults.
export * from "../models/settings.js";
export * from "../models/config-file.js";
export * from "../models/registry.js";
export * from "../models/settings-assign.js";
export * from "../models/sources.js";
export * from "../models/resolve.js";
export * from "../models/capabilities.js";
export * from "../models/estimator.js";
export * from "../models/launch-defaults.js";
