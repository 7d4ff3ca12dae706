// gglib-runtime/llama: llama-server arguments, binary resolution, capabilities; installing llama.cpp.
export * from "../llama/args.js";
export * from "../llama/binary.js";
export * from "../llama/capabilities.js";
export * from "../llama/install/install.js";
export * from "../llama/install/status.js";
export * from "../llama/install/update.js";
export * from "../llama/install/uninstall.js";
export * from "../llama/install/detect.js";
export * from "../llama/install/prebuilt.js";
export * from "../llama/install/record.js";
export * from "../llama/install/source-build.js";
export * from "../llama/install/npm-bundle.js";
