/**
 * Pure arithmetic of a model split across RPC workers: which part of its memory goes to the workers, how llama.cpp
 * shares that part among them (in proportion to each worker's free memory, its default `--tensor-split`), whether
 * each worker has room, and the words of a refusal. Numbers in, numbers and messages out: no sockets, no clock.
 *
 * With RPC workers the workers' devices are llama.cpp's offload devices: on a main host without a GPU the layers
 * `-ngl` offloads (all of them by default: llama-server's `-ngl auto` with `--fit` offloads everything that fits)
 * go to the workers with their KV cache and a compute buffer each; the main host keeps the token embeddings, the
 * output buffer and its own compute buffer. (A main host with its own GPU shares the offloaded layers between that
 * GPU and the workers; this plan counts them all as remote, so it under-counts the local part there.)
 */
import { formatBytes, GiB } from "../core/units.js";
import type { WorkerProbe } from "./probe.js";

/** llama.cpp's `--fit` leaves this much free on every device (`--fit-target`, default 1024 MiB). */
export const FIT_MARGIN_BYTES = GiB;

/** A model's memory by place, as the plan sees it. */
export interface SplitPlan {
  /** On this host (counted against the proxy's memory budget). */
  localBytes: number;
  /** On the workers together. */
  remoteBytes: number;
}

/** The plan from an estimate that puts the offloaded part (`gpuBytes`) on the workers. */
export function planSplit(estimate: { hostBytes: number; gpuBytes: number }): SplitPlan {
  return { localBytes: estimate.hostBytes, remoteBytes: estimate.gpuBytes };
}

export interface WorkerShare {
  endpoint: string;
  /** What llama.cpp will put there. */
  bytes: number;
  freeBytes: number;
  totalBytes: number;
}

export type WorkerCheck =
  { ok: true; shares: WorkerShare[] } | { ok: false; message: string; hint: string; shares?: WorkerShare[] };

/**
 * `remoteBytes` shared among the workers in proportion to their free memory (llama.cpp's default split), each
 * share rounded so that they add up.
 */
export function shareByFreeMemory(
  remoteBytes: number,
  workers: readonly { endpoint: string; freeBytes: number; totalBytes: number }[],
): WorkerShare[] {
  const free = workers.reduce((s, w) => s + Math.max(0, w.freeBytes), 0);
  let left = Math.round(remoteBytes);
  return workers.map((w, i) => {
    const bytes =
      i === workers.length - 1 ? left : free > 0 ? Math.round((remoteBytes * Math.max(0, w.freeBytes)) / free) : 0;
    left -= bytes;
    return { endpoint: w.endpoint, bytes, freeBytes: w.freeBytes, totalBytes: w.totalBytes };
  });
}

/**
 * Before a start: every worker must answer, and its share must fit its free memory less llama.cpp's fit margin.
 * A refusal names the worker and says what to do.
 */
export function checkWorkers(
  model: string,
  plan: SplitPlan,
  probes: readonly WorkerProbe[],
  marginBytes = FIT_MARGIN_BYTES,
): WorkerCheck {
  const down = probes.filter((p) => p.state !== "ready");
  if (down.length > 0) {
    const p = down[0]!;
    const more =
      down.length > 1
        ? ` (and ${down.length - 1} more: ${down
            .slice(1)
            .map((d) => d.endpoint)
            .join(", ")})`
        : "";
    switch (p.state) {
      case "unreachable":
        return {
          ok: false,
          message: `RPC worker ${p.endpoint} of model '${model}' is not reachable: ${p.detail}${more}.`,
          hint: `Start it there with \`gglib rpc-server --host <its address> --port ${portOf(p.endpoint)}\` (or check the address in the model's rpc setting and the network between the hosts).`,
        };
      case "busy":
        return {
          ok: false,
          message: `RPC worker ${p.endpoint} of model '${model}' is busy: ${p.detail}${more}.`,
          hint: "Stop the other llama-server that uses it (another model or another host), or give this model a worker of its own.",
        };
      case "incompatible":
        return {
          ok: false,
          message: `RPC worker ${p.endpoint} of model '${model}' did not answer as an rpc-server should: ${p.detail}${more}.`,
          hint: "Run `gglib rpc-server` from the same llama.cpp install (`gglib llama install`) on every host.",
        };
    }
  }
  const ready = probes.flatMap((p) => (p.state === "ready" ? [p] : []));
  const shares = shareByFreeMemory(
    plan.remoteBytes,
    ready.map((p) => ({ endpoint: p.endpoint, freeBytes: p.freeBytes, totalBytes: p.totalBytes })),
  );
  const short = shares.filter((s) => s.bytes > s.freeBytes - marginBytes);
  if (short.length > 0) {
    const free = ready.reduce((s, p) => s + p.freeBytes, 0);
    return {
      ok: false,
      shares,
      message:
        `Model '${model}' needs ${formatBytes(plan.remoteBytes)} on its RPC workers, but they have ` +
        `${formatBytes(free)} free (${shares.map((s) => `${s.endpoint}: ${formatBytes(s.freeBytes)}`).join(", ")}), ` +
        `and llama.cpp keeps ${formatBytes(marginBytes)} free on each.`,
      hint: "Add a worker to its rpc list, free memory on the workers, or keep more layers on this host with a lower gpuLayers.",
    };
  }
  return { ok: true, shares };
}

function portOf(endpoint: string): string {
  return endpoint.slice(endpoint.indexOf(":") + 1);
}
