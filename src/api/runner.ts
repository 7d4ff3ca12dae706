// gglib-runtime/runner: LlamaServerRunner, the ProcessRunner that supervises llama-server processes.
export * from "../runner/llama-server-runner.js";
