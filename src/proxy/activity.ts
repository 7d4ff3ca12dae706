/**
 * The recent requests through the proxy, for the dashboard's activity view (GET /api/activity). A fixed ring of
 * preallocated records written in place from what the proxy already has when a request ends (status, durations,
 * llama-server's usage/timings): no allocation, no promise and no serialization on the hot path; listeners (the
 * activity stream) are called only while someone follows.
 */
import type { ActivityRecord } from "./api-types.js";
import type { UsageStats } from "./forward.js";

export type { ActivityRecord };

function blank(): ActivityRecord {
  return {
    seq: 0,
    at: 0,
    model: "",
    method: "",
    path: "",
    status: 0,
    durationMs: 0,
    ttfbMs: null,
    promptTokens: null,
    completionTokens: null,
    cachedTokens: null,
    tokensPerSecond: null,
    promptPerSecond: null,
  };
}

export class ActivityLog {
  private readonly ring: ActivityRecord[];
  private next = 0;
  private count = 0;
  /** Requests ever recorded (the seq of the newest). */
  total = 0;
  private readonly listeners = new Set<(r: ActivityRecord) => void>();

  constructor(readonly capacity = 1000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("ActivityLog capacity must be ≥ 1");
    this.ring = Array.from({ length: capacity }, blank);
  }

  /** One finished request. `startedAt`: performance.now() at its arrival; seconds as the metrics take them. */
  record(
    model: string,
    method: string,
    path: string,
    status: number,
    startedAt: number,
    ttfbS: number | undefined,
    usage: UsageStats | undefined,
  ): void {
    const now = performance.now();
    const r = this.ring[this.next]!;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    r.seq = ++this.total;
    r.at = Math.round(performance.timeOrigin + startedAt);
    r.model = model;
    r.method = method;
    r.path = path;
    r.status = status;
    r.durationMs = Math.round((now - startedAt) * 10) / 10;
    r.ttfbMs = ttfbS !== undefined ? Math.round(ttfbS * 10_000) / 10 : null;
    r.promptTokens = usage?.promptTokens ?? null;
    r.completionTokens = usage?.completionTokens ?? null;
    r.cachedTokens = usage?.cachedTokens ?? null;
    r.tokensPerSecond = usage?.predictedPerSecond ?? null;
    r.promptPerSecond = usage?.promptPerSecond ?? null;
    if (this.listeners.size > 0) for (const l of this.listeners) l(r);
  }

  /** Copies of the kept records, oldest first: those after `since` (a seq), of `model` when given, the last `limit`. */
  list(o: { since?: number; model?: string; limit?: number } = {}): ActivityRecord[] {
    const out: ActivityRecord[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) {
      const r = this.ring[(start + i) % this.capacity]!;
      if (o.since !== undefined && r.seq <= o.since) continue;
      if (o.model !== undefined && r.model !== o.model) continue;
      out.push({ ...r });
    }
    return o.limit !== undefined && out.length > o.limit ? out.slice(out.length - o.limit) : out;
  }

  get size(): number {
    return this.count;
  }

  /** Called with each new record (a live view: copy what you keep, the object is reused). */
  on(listener: (r: ActivityRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
