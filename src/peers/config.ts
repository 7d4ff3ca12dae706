/**
 * Peers as the proxy uses them: the config file's `peers:` (src/models/settings.ts) checked and resolved once
 * (the API key read from the environment, the filter compiled, the timeouts in ms), with errors that name the
 * peer, the field and what to do.
 */
import { GglibError } from "../core/errors.js";
import { PEER_NAME, PeerConfigSchema, type PeerConfig } from "../models/settings.js";

export type PeerKind = "gglib" | "openai";

export interface PeerSpec {
  name: string;
  /** Origin (scheme://host:port) of the peer. */
  origin: string;
  /** Path prefix in front of every request path ("" or "/something", no trailing slash). */
  basePath: string;
  /** The peer's key: sent as `Authorization: Bearer` to this peer only. */
  apiKey: string | undefined;
  /** Configured kind; "auto" is detected by the client. */
  kind: PeerKind | "auto";
  /** Only these models (the peer's names); undefined = all. */
  models: readonly string[] | undefined;
  filter: RegExp | undefined;
  connectTimeoutMs: number;
  /** 0 = no limit on the time to response headers. */
  headersTimeoutMs: number;
  healthTimeoutMs: number;
  pollIntervalMs: number;
  /** Follow a gglib peer's /api/events (state changes at once) besides polling. */
  events: boolean;
}

const ENV_REF = /^\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}$/;

function invalid(peer: string, field: string, why: string, hint: string): GglibError {
  return new GglibError("invalid_config", `Peer '${peer}': ${field} ${why}`, { hint });
}

/** Resolves every peer of the config (and `--peer`-style options). Throws GglibError("invalid_config"). */
export function resolvePeers(
  peers: Readonly<Record<string, PeerConfig>> | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): PeerSpec[] {
  return Object.entries(peers ?? {}).map(([name, p]) => resolvePeer(name, p, env));
}

export function resolvePeer(
  name: string,
  raw: PeerConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): PeerSpec {
  if (!PEER_NAME.test(name))
    throw invalid(name, "name", "is not valid.", "Use letters, digits, '.', '_' or '-' (no '/'), at most 63.");
  const parsed = PeerConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw invalid(
      name,
      i.path.join(".") || "(entry)",
      `is invalid: ${i.message}.`,
      "See schema/gglib-config.schema.json.",
    );
  }
  const p = parsed.data;
  let url: URL;
  try {
    url = new URL(p.url);
  } catch {
    throw invalid(name, "url", `'${p.url}' is not a URL.`, "Write it like http://10.0.0.2:8080.");
  }
  if (url.username || url.password)
    throw invalid(name, "url", "holds credentials.", "Put the key in apiKey or apiKeyEnv, not in the URL.");
  const basePath = url.pathname.replace(/\/+$/, "");
  if (basePath.endsWith("/v1"))
    throw invalid(
      name,
      "url",
      `ends with /v1 (${p.url}).`,
      "Give the base URL without /v1: requests keep their own path (/v1/chat/completions).",
    );
  return {
    name,
    origin: url.origin,
    basePath,
    apiKey: apiKeyOf(name, p, env),
    kind: p.kind ?? "auto",
    models: p.models,
    filter: filterOf(name, p.filter),
    connectTimeoutMs: Math.round((p.timeouts?.connect ?? 5) * 1000),
    headersTimeoutMs: Math.round((p.timeouts?.headers ?? 0) * 1000),
    healthTimeoutMs: Math.round((p.timeouts?.health ?? 5) * 1000),
    pollIntervalMs: Math.round((p.pollInterval ?? 2) * 1000),
    events: p.events ?? true,
  };
}

function apiKeyOf(name: string, p: PeerConfig, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const fromEnv = (v: string, field: string): string => {
    const value = env[v];
    if (!value)
      throw invalid(
        name,
        field,
        `names the environment variable ${v}, which is not set.`,
        `Export ${v}=<the peer's key> before starting the proxy, or remove the key if the peer has none.`,
      );
    return value;
  };
  if (p.apiKeyEnv) return fromEnv(p.apiKeyEnv, "apiKeyEnv");
  if (p.apiKey === undefined) return undefined;
  const m = ENV_REF.exec(p.apiKey);
  if (m) return fromEnv(m[1]!, "apiKey");
  if (p.apiKey.includes("${"))
    throw invalid(name, "apiKey", "has a '${' that is not '${env.NAME}'.", "Write ${env.NAME} for a variable.");
  return p.apiKey;
}

function filterOf(name: string, filter: string | undefined): RegExp | undefined {
  if (filter === undefined) return undefined;
  try {
    return new RegExp(filter);
  } catch (e) {
    throw invalid(name, "filter", `is not a regular expression: ${(e as Error).message}.`, "Fix the pattern.");
  }
}

/** Whether the peer's model `name` is one this proxy offers (the `models` list and the `filter`). */
export function offered(spec: Pick<PeerSpec, "models" | "filter">, name: string): boolean {
  if (spec.models && !spec.models.includes(name)) return false;
  return !spec.filter || spec.filter.test(name);
}
