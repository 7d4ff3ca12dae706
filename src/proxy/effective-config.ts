/**
 * The proxy's effective configuration as the dashboard shows it (GET /api/config): what the flags, the config file
 * and the defaults came to, and each model's launch settings. Read-only, and secrets redacted: API keys are
 * counted, never shown; environment values whose name looks secret and the values of secret-looking flags in
 * extraArgs (`--api-key X`, `--hf-token X`) are replaced by "<redacted>".
 */
import type { ServerConfig } from "../core/config.js";
import type { ProxyModel } from "./catalog.js";
import type { EffectiveModel as ApiEffectiveModel, EffectiveSettings } from "./api-types.js";

export const REDACTED = "<redacted>";
const SECRET_NAME = /key|token|secret|passw|auth|cred/i;

/** The settings in effect: one definition, shared with the dashboard (api-types.ts). */
export type { EffectiveSettings };

/** A model of the effective config, with its launch settings typed. */
export type EffectiveModel = ApiEffectiveModel<ServerConfig>;

/** Secret-looking values removed from a server config (a copy). */
export function redactServer(server: ServerConfig): ServerConfig {
  const out: ServerConfig = { ...server };
  if (server.env) {
    out.env = Object.fromEntries(Object.entries(server.env).map(([k, v]) => [k, SECRET_NAME.test(k) ? REDACTED : v]));
  }
  if (server.extraArgs) {
    const args = [...server.extraArgs];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      const eq = a.indexOf("=");
      if (a.startsWith("-") && eq > 0 && SECRET_NAME.test(a.slice(0, eq))) args[i] = `${a.slice(0, eq)}=${REDACTED}`;
      else if (a.startsWith("-") && SECRET_NAME.test(a) && i + 1 < args.length) args[++i] = REDACTED;
    }
    out.extraArgs = args;
  }
  return out;
}

export function modelEndpoints(server: ServerConfig): string[] {
  const e = ["chat"];
  if (server.embeddings) e.push("embeddings");
  if (server.reranking || server.extraArgs?.some((a) => a === "--reranking" || a === "--rerank")) e.push("rerank");
  return e;
}

export function effectiveModel(m: ProxyModel): EffectiveModel {
  return {
    name: m.name,
    aliases: m.aliases,
    source: m.entry.source,
    path: m.entry.path,
    mmproj: m.entry.mmproj ?? null,
    pinned: m.spec.pinned === true,
    preload: m.preload,
    ttlS: m.spec.ttlMs !== undefined ? m.spec.ttlMs / 1000 : null,
    estimatedBytes: m.estimate.bytes,
    ctx: m.estimate.ctx,
    endpoints: modelEndpoints(m.server),
    server: redactServer(m.server),
  };
}
