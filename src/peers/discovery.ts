/**
 * What a peer says about itself, parsed (pure): a gglib proxy's `GET /api/status` (models with their states and
 * files, the memory budget and what is used of it) or an OpenAI-compatible server's `GET /v1/models` (names; a
 * state when it is llama-server's router mode or another gglib proxy).
 */
import type { PeerKind } from "./config.js";

/** A model's state on its host, as placement reads it. */
export type HostModelState = "ready" | "loading" | "idle" | "failed" | "unknown";

export interface PeerModel {
  /** The peer's name for it. */
  name: string;
  aliases: string[];
  state: HostModelState;
  /** The model file's name (a gglib peer's path, its last segment): the same file on two hosts is one model. */
  file?: string;
  estimatedBytes?: number;
}

export interface PeerSnapshot {
  kind: PeerKind;
  models: PeerModel[];
  /** The peer's free memory budget (budget − used), bytes; undefined when it has no limit or does not say. */
  freeBytes: number | undefined;
  budgetBytes: number | undefined;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

/** A scheduler state (gglib's ModelStatusReport.state, or /v1/models' status.value) as a placement state. */
export function hostState(s: unknown): HostModelState {
  switch (s) {
    case "ready":
    case "draining":
    case "loaded":
      return "ready";
    case "loading":
    case "pending":
      return "loading";
    case "unloaded":
    case "stopping":
    case "unloading":
      return "idle";
    case "failed":
    case "stuck":
      return "failed";
    default:
      return "unknown";
  }
}

export function fileName(path: string): string | undefined {
  const f = path.split(/[\\/]/).pop();
  return f ? f : undefined;
}

/** A gglib proxy's /api/status, or undefined when the body is not one. */
export function parseGglibStatus(body: unknown): PeerSnapshot | undefined {
  if (!isObj(body) || !Array.isArray(body.models) || !isObj(body.budget)) return undefined;
  const models: PeerModel[] = [];
  for (const m of body.models) {
    if (!isObj(m) || typeof m.name !== "string" || m.name === "") continue;
    const pm: PeerModel = { name: m.name, aliases: strs(m.aliases), state: hostState(m.state) };
    const file = typeof m.path === "string" ? fileName(m.path) : undefined;
    if (file) pm.file = file;
    const est = num(m.measuredBytes) ?? num(m.estimatedBytes);
    if (est !== undefined) pm.estimatedBytes = est;
    models.push(pm);
  }
  const budgetBytes = num(body.budget.bytes);
  const used = num(body.budget.usedBytes) ?? 0;
  return {
    kind: "gglib",
    models,
    budgetBytes,
    freeBytes: budgetBytes !== undefined ? Math.max(0, budgetBytes - used) : undefined,
  };
}

/** An OpenAI-compatible `/v1/models` list, or undefined when the body is not one. */
export function parseOpenAiModels(body: unknown): PeerSnapshot | undefined {
  if (!isObj(body) || !Array.isArray(body.data)) return undefined;
  const models: PeerModel[] = [];
  const seen = new Set<string>();
  for (const m of body.data) {
    if (!isObj(m) || typeof m.id !== "string" || m.id === "" || seen.has(m.id)) continue;
    seen.add(m.id);
    const status = isObj(m.status) ? m.status : undefined;
    models.push({ name: m.id, aliases: strs(m.aliases), state: status ? hostState(status.value) : "unknown" });
  }
  return { kind: "openai", models, freeBytes: undefined, budgetBytes: undefined };
}
