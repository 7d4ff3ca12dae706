/**
 * Requests across hosts: this proxy's models and its peers' (src/peers/). A requested name resolves to the hosts
 * that can serve it (src/peers/names.ts); placement orders them (src/peers/placement.ts: loaded there → most free
 * memory budget; down peers skipped); the request goes to the first, and to the next when a peer cannot be reached
 * before any answer. Local requests go through the relay as before. Built only when peers are configured: without
 * peers the routes never reach this module.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Gauge, Counter } from "prom-client";
import { HttpError } from "../core/errors.js";
import type { PeerClient } from "../peers/client.js";
import { nameClashes, qualifiedName, resolveAcross, type HostModels, type Target } from "../peers/names.js";
import { placeOrder, type HostCandidate } from "../peers/placement.js";
import { fileName, hostState } from "../peers/discovery.js";
import type { ModelController } from "./controller.js";
import type { ProxyMetrics } from "./metrics.js";
import type { Relay, RelayRequest } from "./relay.js";
import type { ListedState, ModelListEntry, PeerStatus } from "./api-types.js";

/** A model request as the routes parsed it, before its name is resolved. */
export interface RoutedRequest extends Omit<RelayRequest, "name"> {
  requested: string;
  /** The parsed JSON body (to rename `model` for a host that calls it otherwise); undefined for GET / multipart. */
  json: Record<string, unknown> | undefined;
}

export class PeerRouter {
  private readonly byName: Map<string, PeerClient>;

  constructor(
    readonly peers: readonly PeerClient[],
    private readonly controller: ModelController,
    /** This host's free memory budget, bytes (undefined: no limit). */
    private readonly freeBytes: () => number | undefined,
  ) {
    this.byName = new Map(peers.map((p) => [p.name, p]));
  }

  /** Every host's models (this one first; down peers offer none). */
  hosts(): HostModels[] {
    const local: HostModels = {
      host: "local",
      local: true,
      models: this.controller
        .catalog()
        .map((m) => ({ name: m.name, aliases: m.aliases, file: fileName(m.entry.path) })),
    };
    return [local, ...this.peers.map((p) => ({ host: p.name, local: false, models: p.models() }))];
  }

  /** The hosts that can serve `requested`, best first; 404 (or 409 for a clash) in OpenAI's shape otherwise. */
  candidates(requested: string): HostCandidate[] {
    const hosts = this.hosts();
    const r = resolveAcross(hosts, requested);
    if (r.kind === "ambiguous")
      throw new HttpError(
        400,
        "model_ambiguous",
        `The model '${requested}' names different models on different hosts: ${r.choices.join(", ")}. Ask for one of these names.`,
      );
    if (r.kind === "none") {
      const slash = requested.indexOf("/");
      const named = slash > 0 ? this.byName.get(requested.slice(0, slash)) : undefined;
      if (named && !named.state.up)
        throw new HttpError(
          503,
          "peer_down",
          `The peer '${named.name}' is down (${named.state.lastError ?? "not reachable"}); its models cannot be served now. Retry later, or ask for a model on another host.`,
          5,
        );
      const down = this.peers.filter((p) => !p.state.up).map((p) => `${p.name} (${p.state.lastError ?? "down"})`);
      throw new HttpError(
        404,
        "model_not_found",
        `The model '${requested}' does not exist. Available models: ${this.names(hosts)}.` +
          (down.length > 0 ? ` Peers down (their models are not listed): ${down.join(", ")}.` : ""),
      );
    }
    return placeOrder(r.targets.map((t) => this.candidate(t)));
  }

  /** Routes one request: placement, then the first host that can be reached. */
  async route(relay: Relay, req: IncomingMessage, res: ServerResponse, r: RoutedRequest): Promise<void> {
    const order = this.candidates(r.requested);
    const failures: string[] = [];
    for (const c of order) {
      if (c.local) {
        const body = this.bodyFor(r, c.model);
        await relay.relay(req, res, { ...r, name: c.model, body, path: this.pathFor(r, c.model) });
        return;
      }
      const peer = this.byName.get(c.host)!;
      const out = await relay.sendToPeer(req, res, {
        ...r,
        name: qualifiedName(peer.name, c.model),
        model: c.model,
        peer,
        body: this.bodyFor(r, c.model),
        path: this.pathFor(r, c.model),
      });
      if (!out.notStarted) return;
      failures.push(`${peer.name}: ${out.notStarted.message}`);
      if (res.destroyed) return;
    }
    throw new HttpError(
      503,
      "no_host_available",
      `No host could take the request for '${r.requested}'` +
        (failures.length > 0 ? `: ${failures.join("; ")}` : ": every peer that has it is down") +
        ". Retry later, or check the peers in /api/status.",
      5,
    );
  }

  /** /api/status's `peers`. */
  status(): PeerStatus[] {
    return this.peers.map((p) => {
      const s = p.state;
      return {
        name: p.name,
        url: p.spec.origin + p.spec.basePath,
        kind: s.kind ?? (p.spec.kind === "auto" ? null : p.spec.kind),
        up: s.up,
        lastError: s.lastError ?? null,
        lastSeenAt: s.lastSeenAt ? new Date(s.lastSeenAt).toISOString() : null,
        freeBytes: s.snapshot?.freeBytes ?? null,
        budgetBytes: s.snapshot?.budgetBytes ?? null,
        models: (s.snapshot?.models ?? []).map((m) => ({
          id: qualifiedName(p.name, m.name),
          name: m.name,
          aliases: m.aliases,
          state: m.state,
          file: m.file ?? null,
        })),
        requests: Object.fromEntries(p.counts),
      };
    });
  }

  /** Names that do not reach every model they name (start report, /api/status). */
  clashes(): string[] {
    return nameClashes(this.hosts());
  }

  /** /v1/models entries of the peers' models: qualified ids, where they live, the unqualified name when it reaches them. */
  modelEntries(): ModelListEntry[] {
    const hosts = this.hosts();
    const out: ModelListEntry[] = [];
    for (const p of this.peers) {
      for (const m of p.models()) {
        const r = resolveAcross(hosts, m.name);
        const reaches = r.kind === "found" && r.targets.some((t) => t.host === p.name && t.model === m.name);
        out.push({
          id: qualifiedName(p.name, m.name),
          object: "model",
          created: Math.floor((p.state.lastSeenAt ?? Date.now()) / 1000),
          owned_by: `peer:${p.name}`,
          location: p.name,
          aliases: reaches ? [m.name] : [],
          status: { value: listed(m.state), state: m.state },
        });
      }
    }
    return out;
  }

  /** Peer gauges and counters on the proxy's registry, read when /metrics is scraped. */
  registerMetrics(metrics: ProxyMetrics): void {
    const peers = this.peers;
    new Gauge({
      name: "gglib_proxy_peer_up",
      help: "1 when the peer answered its last discovery (and no request found it unreachable since).",
      labelNames: ["peer"],
      registers: [metrics.registry],
      collect() {
        this.reset();
        for (const p of peers) this.set({ peer: p.name }, p.state.up ? 1 : 0);
      },
    });
    new Gauge({
      name: "gglib_proxy_peer_models",
      help: "Models the peer offers here, by state.",
      labelNames: ["peer", "state"],
      registers: [metrics.registry],
      collect() {
        this.reset();
        for (const p of peers) {
          const n = new Map<string, number>();
          for (const m of p.models()) n.set(m.state, (n.get(m.state) ?? 0) + 1);
          for (const [state, v] of n) this.set({ peer: p.name, state }, v);
        }
      },
    });
    new Gauge({
      name: "gglib_proxy_peer_free_bytes",
      help: "The peer's free memory budget as it last said (gglib peers).",
      labelNames: ["peer"],
      registers: [metrics.registry],
      collect() {
        this.reset();
        for (const p of peers) {
          const f = p.state.snapshot?.freeBytes;
          if (f !== undefined && p.state.up) this.set({ peer: p.name }, f);
        }
      },
    });
    new Counter({
      name: "gglib_proxy_peer_requests_total",
      help: "Requests forwarded to each peer, by HTTP status ('unreachable': sent to another host).",
      labelNames: ["peer", "status"],
      registers: [metrics.registry],
      collect() {
        this.reset();
        for (const p of peers) for (const [status, v] of p.counts) this.inc({ peer: p.name, status }, v);
      },
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
  }

  private candidate(t: Target): HostCandidate {
    if (t.local) {
      return {
        ...t,
        up: true,
        state: hostState(this.controller.state(t.model)?.status),
        freeBytes: this.freeBytes(),
      };
    }
    const p = this.byName.get(t.host)!;
    return { ...t, up: p.state.up, state: p.stateOf(t.model), freeBytes: p.state.snapshot?.freeBytes };
  }

  private names(hosts: HostModels[]): string {
    const n = hosts.flatMap((h) => h.models.map((m) => (h.local ? m.name : qualifiedName(h.host, m.name))));
    return n.length > 0 ? n.join(", ") : "(none: add models to --models-dir or the config, or check the peers)";
  }

  private bodyFor(r: RoutedRequest, model: string): Buffer | null {
    if (!r.json || r.json.model === model || typeof r.json.model !== "string") return r.body;
    return Buffer.from(JSON.stringify({ ...r.json, model }));
  }

  private pathFor(r: RoutedRequest, model: string): string {
    const q = r.path.indexOf("?");
    if (q < 0 || r.json) return r.path;
    const query = new URLSearchParams(r.path.slice(q + 1));
    if (query.get("model") === null || query.get("model") === model) return r.path;
    query.set("model", model);
    return `${r.path.slice(0, q)}?${query.toString()}`;
  }
}

function listed(state: string): ListedState {
  return state === "ready" ? "loaded" : state === "loading" ? "loading" : state === "failed" ? "failed" : "unloaded";
}
