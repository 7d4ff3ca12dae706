// the management API's JSON shapes shared with the server (no imports there: safe for the browser build)
import type {
  ActivityRecord,
  ContextStatus,
  EffectiveModel,
  PeerModelStatus,
  PeerStatus,
  ReloadRecord,
  RpcSplitStatus,
} from "../../src/proxy/api-types.js";

export type {
  ActivityRecord,
  ContextStatus,
  EffectiveModel,
  PeerModelStatus,
  PeerStatus,
  ReloadRecord,
  RpcSplitStatus,
};
/**
 * Shapes of the management API the page reads (see src/proxy/README.md). Each field must be one the server writes:
 * test/unit/web/status-shape.test.ts checks these against the server's types.
 */

/** The scheduler's states (src/proxy/scheduler.ts `ModelStatus`; test/unit/web/status-shape.test.ts keeps them equal). */
export type ModelState =
  | "unloaded"
  | "pending"
  | "loading"
  | "ready"
  | "draining"
  | "stopping"
  | "failed"
  /** Its stop failed: the process may still hold its memory; requests are refused until it exits. */
  | "stuck";

export interface ModelStatus {
  name: string;
  aliases: string[];
  /** Presets that run on this model (its process), by name. */
  presets?: string[];
  path: string;
  state: ModelState;
  inFlight: number;
  queued: number;
  estimatedBytes: number;
  /** Weights copied into the CPU's extra buffers (AMX, CPU_REPACK), part of the estimate. */
  repack?: { bytes: number; buffers: Record<string, number> };
  measuredBytes?: number;
  pinned: boolean;
  failures: number;
  loads: number;
  crashes: number;
  pid?: number;
  port?: number;
  uptimeS?: number;
  lastUsed?: string;
  ttlLeftS?: number;
  lastError?: string;
  progress?: number;
  /** The context cache's state: KV context saved across swaps (absent when the cache is off). */
  context?: ContextStatus;
  /** How a model with RPC workers is split between this host and them. */
  rpc?: RpcSplitStatus;
}

export interface StatusResponse {
  uptimeS?: number;
  budget?: { bytes: number | null; source: string; usedBytes: number };
  maxModels?: number | null;
  models: ModelStatus[];
  /** Other hosts this proxy routes to (only when peers are configured). */
  peers?: PeerStatus[];
  nameClashes?: string[];
}

export interface ModelListEntry {
  id: string;
  aliases: string[];
  meta: { path: string; source: string; estimated_bytes: number; ctx: number; pinned: boolean };
}

export type ProxyEvent =
  | { type: "hello"; models: ModelStatus[] }
  | { type: "state"; model: string; from: string; to: string; reason?: string; at: number }
  | { type: "progress"; model: string; value: number; stage: string; at: number }
  | { type: "health"; model: string; status: string; at: number }
  | { type: "crash"; model: string; reason: string; at: number }
  | { type: "peer"; peer: string; up: boolean; models: number; at: number };

export interface ConfigResponse {
  settings: Record<string, unknown>;
  models: EffectiveModel[];
  lastReload: ReloadRecord | null;
}
