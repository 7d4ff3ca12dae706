// gglib-runtime/system: the machine probe (CPU, RAM, GPUs), its tool readers and their parsers.
export * from "../system/probe.js";
export type * from "../system/types.js";
export * from "../system/parsers.js";
export * from "../system/gpu-tools.js";
export * from "../system/exec.js";
