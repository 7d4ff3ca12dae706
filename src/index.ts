// gglib-runtime: what most programs need. The rest is one subpath per area, `gglib-runtime/<area>`, each a file
// src/api/<area>.ts (core, system, process, llama, gguf, models, runner, hub, chat, proxy); a new area is a new file there.

// errors
export { GglibError, isGglibError, errorMessage, type ErrorKind, type GglibErrorDetails } from "./core/errors.js";

// one llama-server: its config, handle, events, and the runner that supervises it
export type { ServerConfig, ReasoningFormat, KvCacheType, FlashAttention } from "./core/config.js";
export type { ServerHandle, ServerState, HealthStatus, ServerHealth, LoadProgress } from "./core/handle.js";
export type { ServerEvent, ServerEventListener } from "./core/events.js";
export type { ProcessRunner, StartOptions, StopOptions } from "./core/ports.js";
export { LlamaServerRunner, type RunnerOptions } from "./runner/llama-server-runner.js";

// the OpenAI-compatible proxy: one endpoint for every model
export { startProxy, type ProxyOptions, type RunningProxy } from "./proxy/index.js";

// the model registry
export {
  Registry,
  type RegisteredModel,
  type AddModelInput,
  type UpdateModelInput,
  type RegistryOptions,
  type ModelSettings,
} from "./models/registry.js";

// GGUF metadata, and the memory a model needs
export { readModelMetadata, GgufFormatError, type ModelMetadata as GgufModelMetadata } from "./gguf/reader.js";
export {
  estimateMemory,
  adviseFit,
  type EstimateMemoryInput,
  type MemoryEstimate,
  type FitAdvice,
  type FitBudget,
  type FitInput,
} from "./models/estimator.js";

// the terminal chat, and the client it talks through
export { runChat, DEFAULT_CHAT_URL, type ChatSessionOptions } from "./chat/session.js";
export { ChatClient, ChatHttpError, type ChatRequestOptions } from "./chat/client.js";
