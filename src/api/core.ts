// gglib-runtime/core: domain types (ServerConfig, handles, events, the ProcessRunner port), errors, paths.
export * from "../core/config.js";
export * from "../core/errors.js";
export type * from "../core/events.js";
export type * from "../core/handle.js";
export * from "../core/paths.js";
export type * from "../core/ports.js";
