/**
 * The proxy's RPC workers: the check before an RPC model starts (every worker answers; each has room for its
 * share) and what that check saw, for `/api/status`. Workers are probed right before a start and never while a
 * model runs on them: rpc-server serves one client at a time, so a probe then would only hear silence (busy) and,
 * worse, a probe still connected when llama-server starts would take the worker's only seat.
 */
import { GglibError } from "../core/errors.js";
import { parseEndpoint } from "../rpc/endpoint.js";
import { probeWorkers as defaultProbe, type ProbeOptions, type WorkerProbe } from "../rpc/probe.js";
import { checkWorkers, type WorkerShare } from "../rpc/split.js";
import type { RpcSplitStatus, RpcWorkerStatus } from "./api-types.js";
import type { ProxyModel } from "./catalog.js";

export type WorkerProber = (
  endpoints: ReturnType<typeof parseEndpoint>[],
  opts?: ProbeOptions,
) => Promise<WorkerProbe[]>;

export interface RpcCheckerOptions {
  probe?: WorkerProber;
  /** Default: 2 s to connect, 3 s for the answers (a worker whose last client just left may still be freeing). */
  probeOptions?: ProbeOptions;
  /** Kept free on every worker device (llama.cpp's --fit margin); default FIT_MARGIN_BYTES. */
  marginBytes?: number;
  now?: () => number;
}

export class RpcChecker {
  private readonly seen = new Map<string, { probe: WorkerProbe; at: number }>();
  private readonly shares = new Map<string, WorkerShare[]>();
  private readonly probe: WorkerProber;
  private readonly now: () => number;

  constructor(private readonly opts: RpcCheckerOptions = {}) {
    this.probe = opts.probe ?? defaultProbe;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Before a start: throws GglibError naming the worker and saying what to do when one does not answer or has no
   * room for its share. Models without workers pass at once.
   */
  async preflight(model: ProxyModel): Promise<void> {
    const plan = model.rpc;
    if (!plan) return;
    if (plan.error) throw new GglibError("invalid_config", plan.error);
    const probes = await this.probe(
      plan.workers.map((w) => parseEndpoint(w)),
      this.opts.probeOptions ?? { connectTimeoutMs: 2_000, answerTimeoutMs: 3_000 },
    );
    const at = this.now();
    for (const p of probes) this.seen.set(p.endpoint, { probe: p, at });
    const check = checkWorkers(model.name, plan, probes, this.opts.marginBytes);
    if (check.shares) this.shares.set(model.name, check.shares);
    else this.shares.delete(model.name);
    if (!check.ok) throw new GglibError("rpc_worker_unavailable", check.message, { hint: check.hint });
  }

  /** The split for `/api/status`: the plan, what the last check saw, and what llama-server measured. */
  status(
    model: ProxyModel,
    measured?: { localBytes?: number; remote?: Record<string, number> },
  ): RpcSplitStatus | undefined {
    const plan = model.rpc;
    if (!plan) return undefined;
    const shares = this.shares.get(model.name);
    const workers: RpcWorkerStatus[] = plan.workers.map((endpoint) => {
      const w: RpcWorkerStatus = { endpoint, state: "unknown" };
      const seen = this.seen.get(endpoint);
      if (seen) {
        w.state = seen.probe.state;
        w.checkedAt = new Date(seen.at).toISOString();
        if (seen.probe.state === "ready") {
          w.freeBytes = seen.probe.freeBytes;
          w.totalBytes = seen.probe.totalBytes;
        } else w.detail = seen.probe.detail;
      }
      const share = shares?.find((s) => s.endpoint === endpoint);
      if (share) w.plannedBytes = share.bytes;
      const m = measured?.remote?.[endpoint];
      if (m !== undefined) w.measuredBytes = m;
      return w;
    });
    const out: RpcSplitStatus = { workers, planned: { localBytes: plan.localBytes, remoteBytes: plan.remoteBytes } };
    if (measured?.remote) {
      const remoteBytes = Object.values(measured.remote).reduce((s, x) => s + x, 0);
      out.measured = { remoteBytes, ...(measured.localBytes !== undefined ? { localBytes: measured.localBytes } : {}) };
    }
    if (plan.error) out.error = plan.error;
    return out;
  }
}
