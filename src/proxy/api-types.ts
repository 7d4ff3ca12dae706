/**
 * JSON shapes of the management API that the dashboard (web/) reads too: plain types with no imports, so the browser
 * code imports these very definitions (web/tsconfig.json type-checks web/ against them) and a field renamed here
 * breaks the web typecheck rather than the page. The server's writers use them too: scheduler.ts (`ModelStatus`),
 * controller.ts (`ModelStatusReport`, `ProxyEvent`), context/ (`ContextStatus`, `ContextEvent`), routes/ (the
 * `/api/status`, `/api/events` and `/v1/models` bodies), effective-config.ts (`EffectiveSettings`).
 */

/** A model's state in the scheduler (scheduler.ts), in `/api/status`, `/v1/models` and the events. */
export type ModelStatus =
  | "unloaded"
  /** Chosen to load; waiting for the models it evicts to drain and stop. Holds its room. */
  | "pending"
  | "loading"
  | "ready"
  /** Ready but being evicted/unloaded: no new requests; stops when its requests in flight are done. */
  | "draining"
  | "stopping"
  /** The last load failed; until `cooldownUntil` requests are refused with the reason. */
  | "failed"
  /** Its stop failed: the process may still hold its memory. Refuses requests; the process's exit frees it. */
  | "stuck";

/** One model as `/api/status` (`models[]`) and the event stream's `hello` report it. */
export interface ModelStatusReport {
  name: string;
  aliases: string[];
  path: string;
  state: ModelStatus;
  pid?: number;
  port?: number;
  uptimeS?: number;
  inFlight: number;
  queued: number;
  estimatedBytes: number;
  /**
   * The part of the estimate that is weights copied into the CPU's extra buffers (AMX, CPU_REPACK), per buffer as
   * llama-server names it; absent when this CPU repacks none of its weights.
   */
  repack?: { bytes: number; buffers: Record<string, number> };
  /**
   * The architecture and what its layers keep (src/models/arch-facts.ts): sliding-window layers and their window,
   * recurrent layers (a hybrid or recurrent model), an encoder's use; absent when its GGUF header was not read.
   */
  arch?: {
    name: string;
    layers?: number;
    swa?: { layers: number; window: number };
    recurrent?: number;
    encoder?: "embeddings" | "rerank";
  };
  /** A sliding-window model: whether it runs with `--swa-full`, its extra KV bytes and why (src/models/swa-full.ts). */
  swaFull?: { on: boolean; extraBytes: number; by: string; reason: string };
  /** The presets that run on it (src/models/presets.ts), by name; absent when none. */
  presets?: string[];
  measuredBytes?: number;
  lastUsed?: string;
  ttlLeftS?: number;
  pinned: boolean;
  failures: number;
  lastError?: string;
  loads: number;
  crashes: number;
  progress?: number;
  /**
   * "download": its files are being fetched (a config `hf:` model's first use; `state` reads "loading" meanwhile,
   * and "failed" with `lastError` after a failed fetch until the next try).
   */
  stage?: "download";
  /** The context cache's state for this model (src/proxy/context/; absent when the cache is off). */
  context?: ContextStatus;
  /** How it is split between this host and its RPC workers (models with a `rpc` setting). */
  rpc?: RpcSplitStatus;
}

/** The proxy-wide part of `/api/status` (ProxyServerOptions.info). */
export interface ProxyInfo {
  uptimeS?: number;
  budget?: { bytes: number | null; source: string; usedBytes: number };
  maxModels?: number | null;
}

/** `GET /api/status`. */
export interface StatusReport extends ProxyInfo {
  models: ModelStatusReport[];
  /** Other hosts this proxy routes to (only when peers are configured). */
  peers?: PeerStatus[];
  /** Names that do not reach every model they name (only when peers are configured). */
  nameClashes?: string[];
}

/** What the context cache did (saved, restored, discarded…), as an event. */
export type ContextAction =
  "saved" | "save_failed" | "restored" | "restore_failed" | "reused" | "discarded" | "skipped" | "disabled" | "evicted";

export interface ContextEvent {
  type: "context";
  model: string;
  action: ContextAction;
  detail: string;
  tokens?: number;
  bytes?: number;
  ms?: number;
  at: number;
}

/** The controller's events (`ModelController.on`); `/api/events` sends all but `log` (those go to log followers). */
export type ProxyEvent =
  | { type: "state"; model: string; from: ModelStatus; to: ModelStatus; reason?: string; at: number }
  | { type: "progress"; model: string; value: number; stage: string; at: number }
  | { type: "health"; model: string; status: string; at: number }
  | { type: "crash"; model: string; reason: string; at: number }
  | { type: "log"; model: string; line: string }
  /** A peer (src/peers/) went up or down, or its models or their states changed. */
  | { type: "peer"; peer: string; up: boolean; models: number; at: number }
  | ContextEvent;

/** What `GET /api/events` sends: a `hello` with every model's status first, then the controller's events. */
export type EventStreamMessage = { type: "hello"; models: ModelStatusReport[] } | Exclude<ProxyEvent, { type: "log" }>;

/** A model's state as `/v1/models` says it to clients of llama-server's router mode (`status.value`). */
export type ListedState = "loaded" | "loading" | "failed" | "unloading" | "unloaded";

/** One model of `GET /v1/models`: this host's (`location: "local"`, with `meta`) or a peer's. */
export interface ModelListEntry {
  id: string;
  object: "model";
  /** Epoch seconds: when its process started (now when it is not running; a peer's: when it was last seen). */
  created: number;
  owned_by: string;
  aliases: string[];
  status: {
    value: ListedState;
    /** The scheduler's state (a `ModelStatus`); a peer's model: what the peer said (`PeerModelStatus.state`). */
    state: string;
    failed?: boolean;
    error?: string;
    progress?: number;
  };
  /** This host's models only. */
  meta?: {
    path: string;
    source: string;
    estimated_bytes: number;
    ctx: number;
    /** Set: one KV cache per slot of ctx / parallel tokens. */
    parallel: number | null;
    pinned: boolean;
    /** A preset (src/models/presets.ts): the model it runs on, where it is defined, and what it changes. */
    preset?: { model: string; source: string; [change: string]: unknown };
    /**
     * A config `hf:` model not in the Hugging Face cache yet: fetched on the first request or load;
     * `estimated_bytes` means nothing until then.
     */
    download?: { ref: string; downloaded: false; estimate: "unknown until downloaded" };
  };
  /** "local", or the peer's name. */
  location: string;
}

/** `GET /v1/models`. */
export interface ModelList {
  object: "list";
  data: ModelListEntry[];
}

/** The settings in effect, as `/api/config` shows them (effective-config.ts; secrets counted, never shown). */
export interface EffectiveSettings {
  configPath: string | null;
  modelsDir: string | null;
  host: string;
  port: number;
  apiKeys: number;
  insecure: boolean;
  corsOrigins: string[];
  defaultModel: string | null;
  maxModels: number | null;
  memoryBudget: { setting: string; bytes: number | null; source: string };
  ttlS: number;
  drainTimeoutS: number | null;
  queueTimeoutS: number | null;
  loadTimeoutS: number | null;
  maxQueue: number | null;
  bodyLimitBytes: number | null;
  llamaServer: string | null;
  /** The peers, one line each: name → URL (kind, whether a key is set; the key itself never). */
  peers: string[];
}

/** `GET /api/config`. */
export interface ConfigReport<Server = Record<string, unknown>> {
  settings: EffectiveSettings;
  models: EffectiveModel<Server>[];
  lastReload: ReloadRecord | null;
}

/** One finished request, as `/api/activity` lists it. */
export interface ActivityRecord {
  /** 1, 2, 3… in the order requests ended. */
  seq: number;
  /** Epoch ms when the request arrived. */
  at: number;
  model: string;
  method: string;
  path: string;
  status: number;
  /** Whole request through the proxy (includes any wait for a load), ms. */
  durationMs: number;
  /** Request to llama-server's response headers (includes any wait for a load), ms. */
  ttfbMs: number | null;
  promptTokens: number | null;
  completionTokens: number | null;
  /** Prompt tokens reused from llama-server's cache (timings.cache_n / prompt_tokens_details.cached_tokens). */
  cachedTokens: number | null;
  /** Generation speed llama-server reported, tokens/s. */
  tokensPerSecond: number | null;
  promptPerSecond: number | null;
}

/** The outcome of a config reload, as `/api/config` and `POST /api/config/reload` return it. */
export interface ReloadRecord {
  at: string;
  ok: boolean;
  /** What triggered it: the dashboard/API, SIGHUP or a change of the config file. */
  trigger: string;
  added: string[];
  removed: string[];
  changed: string[];
  warnings: string[];
  errors: string[];
}

/** A model of the effective config, as `/api/config` lists it (secrets redacted). */
export interface EffectiveModel<Server = Record<string, unknown>> {
  name: string;
  aliases: string[];
  source: string;
  path: string;
  mmproj: string | null;
  pinned: boolean;
  preload: boolean;
  ttlS: number | null;
  estimatedBytes: number;
  ctx: number;
  /** What it supports, from its launch settings: chat always; embeddings (--embeddings); rerank (--reranking). */
  endpoints: string[];
  /** The launch settings (the dashboard reads them as plain JSON). */
  server: Server;
}

/** One RPC worker of a model, as `/api/status` shows it (`models[].rpc.workers`). */
export interface RpcWorkerStatus {
  /** `host:port`. */
  endpoint: string;
  /**
   * What the last check before a start found: ready, busy (serving another client), unreachable, incompatible;
   * unknown before the first start. It is not probed while the model runs (that would take its only seat).
   */
  state: string;
  /** When it was last checked (ISO time). */
  checkedAt?: string;
  /** What went wrong, in words. */
  detail?: string;
  freeBytes?: number;
  totalBytes?: number;
  /** The share of the model planned for it (in proportion to the workers' free memory, llama.cpp's default). */
  plannedBytes?: number;
  /** What llama-server reports it put there (its RPC buffers). */
  measuredBytes?: number;
}

/** How an RPC model is split between this host and its workers (`models[].rpc` of `/api/status`). */
export interface RpcSplitStatus {
  workers: RpcWorkerStatus[];
  /** The plan from the estimate: this host's share (counted against the memory budget) and the workers'. */
  planned: { localBytes: number; remoteBytes: number };
  /** From llama-server's buffer lines once it has loaded. */
  measured?: { localBytes?: number; remoteBytes: number };
  /** Why the workers could not be read from the settings. */
  error?: string;
}

/** A peer (another host this proxy routes to), as `/api/status` lists it under `peers`. */
export interface PeerStatus {
  name: string;
  url: string;
  /** gglib (another gglib proxy) or openai (any OpenAI-compatible server); null until detected. */
  kind: "gglib" | "openai" | null;
  up: boolean;
  lastError: string | null;
  /** ISO time of the last discovery that worked. */
  lastSeenAt: string | null;
  /** The peer's free memory budget, bytes (gglib peers), as it last said. */
  freeBytes: number | null;
  budgetBytes: number | null;
  models: PeerModelStatus[];
  /** Requests forwarded to it, by HTTP status ("unreachable": sent to another host). */
  requests: Record<string, number>;
}

export interface PeerModelStatus {
  /** `<peer>/<model>`: always reaches this host's model. */
  id: string;
  /** The peer's own name for it (also reaches it here when unique). */
  name: string;
  aliases: string[];
  /** ready, loading, idle, failed or unknown (an OpenAI-compatible peer that does not say). */
  state: string;
  file: string | null;
}

/**
 * The context cache's state for one model (`models[].context` of `/api/status`; see src/proxy/context/, which
 * uses this definition).
 */
export interface ContextStatus {
  enabled: boolean;
  /** Why it is off for this model, when it is. */
  reason?: string;
  /** What limits reuse while it is on (a hybrid/recurrent model: only follow-ups that extend the saved tokens). */
  caveat?: string;
  savedSlots: number;
  savedTokens: number;
  bytesOnDisk: number;
  lastSave?: {
    at: string;
    slots: number;
    tokens: number;
    bytes: number;
    ms: number;
    failures: number;
    /** Slots not saved because prefilling them again is faster than a save and a restore. */
    skipped?: number;
    /** Nothing was worth saving: every request the process served was cheaper to prefill again (slots not read). */
    cheap?: boolean;
  };
  lastRestore?: {
    at: string;
    slots: number;
    tokens: number;
    ms: number;
    reusedTokens?: number;
    verified?: boolean;
    /** Context checkpoints restored with the slots (a llama-server with gglib's slot-checkpoints patch). */
    checkpoints?: number;
  };
  /** The last saved state thrown away because its identity changed, and why. */
  lastDiscard?: { at: string; reason: string };
}
