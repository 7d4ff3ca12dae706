/**
 * Model names across hosts (pure). A peer's model is addressable as `<peer>/<model>` (that host only) and by its
 * own name when that is unambiguous. The same name on several hosts (or the same model file, by its file name)
 * is one model that several hosts can serve: the name resolves to all of them and placement picks one. A local
 * model's names win; a name two different peer models claim (through an alias) is a clash, reported, and then
 * only the qualified names reach them.
 */
import { findModel } from "../models/sources.js";

export interface NamedModel {
  name: string;
  aliases: readonly string[];
  /** The model file's name, when the host says: the same file on two hosts is the same model. */
  file?: string | undefined;
}

export interface HostModels {
  /** "local", or the peer's name. */
  host: string;
  local: boolean;
  models: readonly NamedModel[];
}

export interface Target {
  host: string;
  local: boolean;
  /** The model's name on that host (what it is asked for there). */
  model: string;
}

export type Resolution =
  | { kind: "found"; targets: Target[] }
  /** Different models answer to this name: the qualified names that reach each. */
  | { kind: "ambiguous"; choices: string[] }
  | { kind: "none" };

export const LOCAL = "local";

export function qualifiedName(host: string, model: string): string {
  return `${host}/${model}`;
}

/** The one name rule on one host's models (src/models/sources.ts findModel). */
function findOn(models: readonly NamedModel[], requested: string): NamedModel | undefined {
  return findModel(models, requested);
}

/** `m` and every peer model that is the same one: the same name, or the same file. */
function sameModel(hosts: readonly HostModels[], m: NamedModel, first: Target): Target[] {
  const out: Target[] = [first];
  for (const h of hosts) {
    if (h.local) continue;
    for (const pm of h.models) {
      if (h.host === first.host && pm.name === first.model) continue;
      if (pm.name === m.name || (m.file !== undefined && pm.file === m.file)) {
        out.push({ host: h.host, local: false, model: pm.name });
        break;
      }
    }
  }
  return out;
}

export function resolveAcross(hosts: readonly HostModels[], requested: string): Resolution {
  const local = hosts.find((h) => h.local);
  if (local) {
    const m = findOn(local.models, requested);
    if (m) return { kind: "found", targets: sameModel(hosts, m, { host: LOCAL, local: true, model: m.name }) };
  }
  const slash = requested.indexOf("/");
  if (slash > 0) {
    const peer = hosts.find((h) => !h.local && h.host === requested.slice(0, slash));
    if (peer) {
      const m = findOn(peer.models, requested.slice(slash + 1));
      if (m) return { kind: "found", targets: [{ host: peer.host, local: false, model: m.name }] };
    }
  }
  // unqualified, on the peers: by name first, then by alias / case-insensitively (one model, or a clash)
  const byName = hosts.filter((h) => !h.local && h.models.some((m) => m.name === requested));
  if (byName.length > 0) {
    const first = byName[0]!;
    const m = first.models.find((x) => x.name === requested)!;
    return { kind: "found", targets: sameModel(hosts, m, { host: first.host, local: false, model: m.name }) };
  }
  const hits: { host: string; m: NamedModel }[] = [];
  for (const h of hosts) {
    if (h.local) continue;
    const m = findOn(h.models, requested);
    if (m) hits.push({ host: h.host, m });
  }
  if (hits.length === 0) return { kind: "none" };
  const names = new Set(hits.map((x) => x.m.name));
  if (names.size > 1) return { kind: "ambiguous", choices: hits.map((x) => qualifiedName(x.host, x.m.name)) };
  const first = hits[0]!;
  return { kind: "found", targets: sameModel(hosts, first.m, { host: first.host, local: false, model: first.m.name }) };
}

/** Names that do not reach every model they name, in words (the start report, /api/status). */
export function nameClashes(hosts: readonly HostModels[]): string[] {
  const out: string[] = [];
  const local = hosts.find((h) => h.local);
  const localNames = new Map<string, string>();
  for (const m of local?.models ?? []) for (const n of [m.name, ...m.aliases]) localNames.set(n, m.name);
  // token → the distinct peer models (by name) that claim it
  const claims = new Map<string, Map<string, string[]>>();
  for (const h of hosts) {
    if (h.local) continue;
    for (const m of h.models) {
      const q = qualifiedName(h.host, m.name);
      const hidden = localNames.get(q);
      if (hidden !== undefined)
        out.push(
          `the local model '${hidden}' is also named '${q}': peer ${h.host}'s model '${m.name}' is reached only unqualified, when unique`,
        );
      for (const n of [m.name, ...m.aliases]) {
        let c = claims.get(n);
        if (!c) claims.set(n, (c = new Map<string, string[]>()));
        let qs = c.get(m.name);
        if (!qs) c.set(m.name, (qs = []));
        qs.push(q);
      }
    }
  }
  for (const [token, byModel] of claims) {
    const localModel = localNames.get(token);
    if (localModel !== undefined) {
      const others = [...byModel.entries()].filter(([name]) => name !== localModel).flatMap(([, qs]) => qs);
      if (others.length > 0)
        out.push(`'${token}' is the local model '${localModel}'; ask for ${others.join(", ")} by the qualified name`);
    } else if (byModel.size > 1) {
      out.push(
        `'${token}' names different models: ${[...byModel.values()].flat().join(", ")}; ask by the qualified name`,
      );
    }
  }
  return out;
}
