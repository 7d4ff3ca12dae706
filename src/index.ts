// gglib-runtime: the library. Each line exports one module's public API; append, keep it sorted by area.

// core: domain types, ports, errors, events, paths
export * from "./core/config.js";
export * from "./core/errors.js";
export * from "./core/events.js";
export * from "./core/handle.js";
export * from "./core/paths.js";
export type * from "./core/ports.js";

// llama.cpp: binary, capabilities, arguments, source build
export { buildServerArgs, childEnv, modelNameOf, type ArgCapabilities } from "./llama/args.js";
export { resolveLlamaServer, type ResolvedBinary, type BinarySource } from "./llama/binary.js";
export { probeCapabilities, parseHelpFlags, parseVersion, type LlamaCapabilities } from "./llama/capabilities.js";
export {
  buildFromSource,
  cmakeFlagsFor,
  parseCmakeProgress,
  type Backend,
  type SourceBuildOptions,
  type SourceBuildResult,
} from "./llama/install/source-build.js";

// process supervision
export { parseChildLine, EXIT_COMMAND, type ChildMessage, type ReadyInfo } from "./process/child-protocol.js";
export { LogBuffer } from "./process/log-buffer.js";
export { sweepOrphans, listPidfiles, type PidRecord, type SweepResult } from "./process/pidfile.js";
export { findFreePort, isPortFree } from "./process/ports.js";
export { gracefulStop, type StopOutcome, type StopPlan } from "./process/terminate/graceful-stop.js";

// the runner facade
export { LlamaServerRunner, type RunnerOptions, type ServerInfo } from "./runner/llama-server-runner.js";

// models: registry (SQLite), model sources merged with clash detection
export {
  Registry,
  parseSettingAssignment,
  validateModelName,
  type RegisteredModel,
  type AddModelInput,
  type UpdateModelInput,
  type RegistryOptions,
  type MetadataReader,
  type ModelStatus,
} from "./models/registry.js";
export {
  loadModelSources,
  mergeModelEntries,
  findModel,
  scanModelsDir,
  resolveModelPath,
  SOURCE_PRECEDENCE,
  type ModelEntry,
  type ModelSettings,
  type ModelSource,
  type ModelSources,
  type Clash,
  type ClashParty,
  type ConfigModel,
  type ModelsConfig,
  type LoadModelSourcesOptions,
} from "./models/sources.js";

// Hugging Face: `gglib pull` (resumable, verified downloads into the models folder)
export {
  pullModel,
  type PullOptions,
  type PullProgress,
  type PullPhase,
  type PullResult,
  type PulledFile,
} from "./hub/pull.js";
export { parsePullRef, type PullRef } from "./hub/ref.js";

// llama.cpp install: prebuilt download or source build, status, update, uninstall, backend detection
export {
  installLlama,
  llamaStatus,
  updateLlama,
  uninstallLlama,
  type InstallOptions,
  type InstallResult,
  type InstallReporter,
  type LlamaStatus,
  type UpdateOptions,
  type UninstallResult,
} from "./llama/install/install.js";
export {
  detectBackend,
  checkDependencies,
  formatDependencies,
  systemProbe,
  type BackendChoice,
  type BackendDetection,
  type Dependency,
  type Probe,
} from "./llama/install/detect.js";
export { chooseAsset, fetchRelease, releasesUrl, type Release, type ReleaseAsset } from "./llama/install/prebuilt.js";
export { readInstallRecord, type InstallRecord } from "./llama/install/record.js";

// machine probes: CPU, RAM, GPUs (nvidia-smi, rocm-smi, Apple Silicon, Vulkan), cached briefly
export {
  DefaultSystemProbe,
  defaultSystemProbe,
  pickAccelerator,
  type SystemProbeDeps,
  type SystemProbeOptions,
} from "./system/probe.js";
export type {
  SystemProbe,
  SystemInfo,
  MemorySnapshot,
  CpuInfo,
  RamInfo,
  GpuDevice,
  GpuVendor,
  GpuSource,
  ToolStatus,
  Accelerator,
  SimdFlag,
  ProbeOptions,
  CommandResult,
  RunCommand,
  ReadTextFile,
} from "./system/types.js";
export {
  parseNvidiaSmiQuery,
  parseNvidiaSmiCudaVersion,
  parseNvccVersion,
  parseRocmSmi,
  parseVulkaninfoSummary,
  parseSysctl,
  parseVmStat,
  parseProcCpuinfo,
  parseProcMeminfo,
  appleGpuShareBytes,
} from "./system/parsers.js";

// GGUF metadata reader (header only; shards summed; mmproj recognised)
export {
  readModelMetadata,
  readGgufHeader,
  parseGgufHeader,
  describeHeader,
  shardPaths,
  parseShardName,
  isMmprojPath,
  findMmproj,
  GgufFormatError,
  FILE_TYPE_NAMES,
  POOLING_TYPES,
  type ModelMetadata as GgufModelMetadata,
  type GgufHeader,
  type GgufTensorInfo,
  type GgufReadValue,
} from "./gguf/reader.js";

// models: capabilities, memory estimator and fit advice, launch defaults
export {
  detectCapabilities,
  detectReasoning,
  detectTools,
  detectEmbedding,
  ENCODER_ARCHITECTURES,
  type ModelCapabilities,
  type Capability,
  type CapabilityName,
} from "./models/capabilities.js";
export {
  estimateMemory,
  adviseFit,
  budgetFromSnapshot,
  parseLlamaMemoryLog,
  computeBufferBytes,
  KV_CACHE_BYTES,
  LLAMA_DEFAULTS,
  type EstimateMemoryInput,
  type MemoryEstimate,
  type FitAdvice,
  type FitBudget,
  type FitInput,
  type MeasuredBuffers,
  type EstimatorModel,
} from "./models/estimator.js";
export {
  launchDefaults,
  type LaunchDefaults,
  type LaunchChoice,
  type LaunchDefaultsInput,
  type ChoiceSource,
} from "./models/launch-defaults.js";

// terminal chat: stream parsing (reasoning_content and inline <think>), rendering, conversation, the session
export {
  ChatStreamParser,
  parseErrorBody,
  type ChatStreamEvent,
  type ChatStreamParserOptions,
  type StreamTimings,
  type StreamUsage,
} from "./chat/stream.js";
export {
  ThinkSplitter,
  THINK_TAGS,
  promptOpensThinking,
  type SplitPiece,
  type TagPair,
} from "./chat/think-splitter.js";
export { ChatClient, ChatHttpError, type ChatRequestOptions, type ServerModel } from "./chat/client.js";
export {
  ChatRenderer,
  formatStats,
  type RendererOptions,
  type ThinkMode,
  type TurnResult,
  type TurnStats,
} from "./chat/render.js";
export { Conversation, saveConversation, type RequestMessage } from "./chat/conversation.js";
export { runChat, DEFAULT_CHAT_URL, type ChatSessionOptions } from "./chat/session.js";

// the OpenAI-compatible proxy: one endpoint for every model (scheduler, controller, HTTP server, config)
export {
  startProxy,
  diffCatalogs,
  type ProxyOptions,
  type RunningProxy,
  type ReloadReport,
  type StartReport,
} from "./proxy/index.js";
export {
  Scheduler,
  type ModelSpec,
  type SchedulerAction,
  type SchedulerEvent,
  type SchedulerOptions,
  type StopReason,
  type ModelStatus as ProxyModelStatus,
} from "./proxy/scheduler.js";
export {
  ModelController,
  type ControllerOptions,
  type Lease,
  type ProxyEvent,
  type ModelStatusReport,
} from "./proxy/controller.js";
export { ProxyServer, type ProxyServerOptions } from "./proxy/server.js";
export {
  configJsonSchema,
  parseConfig as parseProxyConfig,
  loadConfigFile as loadProxyConfigFile,
  ProxyConfigSchema,
  type ProxyConfigFile,
  type ModelConfig as ProxyModelConfig,
} from "./proxy/config.js";
