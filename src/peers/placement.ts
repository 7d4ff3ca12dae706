/**
 * Where a request goes when several hosts can serve its model (pure): the host where the model is loaded, then
 * where it is loading, then the one with the most free memory budget (unknown last); this host before a peer on
 * a tie (no hop). Hosts that are down or unhealthy are left out.
 */
import type { HostModelState } from "./discovery.js";

export interface HostCandidate {
  /** "local" for this proxy, else the peer's name. */
  host: string;
  /** The model's name on that host. */
  model: string;
  local: boolean;
  /** The host answers (a peer's last discovery worked and no request found it dead since). */
  up: boolean;
  state: HostModelState;
  /** The host's free memory budget, bytes; undefined = unknown (no limit, or an OpenAI-compatible server). */
  freeBytes: number | undefined;
}

const RANK: Record<HostModelState, number> = { ready: 0, loading: 1, idle: 2, unknown: 2, failed: 3 };

/** The hosts to try, best first. */
export function placeOrder<C extends HostCandidate>(candidates: readonly C[]): C[] {
  return candidates
    .filter((c) => c.up)
    .map((c, i) => ({ c, i }))
    .sort((a, b) => {
      const r = RANK[a.c.state] - RANK[b.c.state];
      if (r !== 0) return r;
      const fa = a.c.freeBytes;
      const fb = b.c.freeBytes;
      if (fa !== fb) {
        if (fa === undefined) return 1;
        if (fb === undefined) return -1;
        return fb - fa;
      }
      if (a.c.local !== b.c.local) return a.c.local ? -1 : 1;
      return a.i - b.i;
    })
    .map((x) => x.c);
}
