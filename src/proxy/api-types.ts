/**
 * JSON shapes of the management API that the dashboard (web/) reads too: plain interfaces with no imports, so the
 * browser code type-checks against the same definitions the server writes. Not all of them live here yet: a
 * model's `/api/status` entry (`ModelStatusReport`) and the `/api/events` events (`ProxyEvent`) are declared in
 * controller.ts and copied in web/src/types.ts, and `ContextStatus` below copies context/context-cache.ts's;
 * test/unit/web/status-shape.test.ts fails the typecheck when a copy reads a field the server does not write.
 */

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
  lastRestore?: { at: string; slots: number; tokens: number; ms: number; reusedTokens?: number; verified?: boolean };
  /** The last saved state thrown away because its identity changed, and why. */
  lastDiscard?: { at: string; reason: string };
}
