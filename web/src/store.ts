/**
 * The models' live state, shared by the views: /api/status and /v1/models read once, then kept current from
 * /api/events (state changes and crashes re-read the status once, coalesced; load progress is applied in place).
 * No polling: the only timer is the 1 s tick that counts uptime and TTL down on screen between events.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { follow, getJson } from "./api.js";
import type {
  EventStreamMessage,
  ModelList,
  ModelListEntry,
  ModelStatusReport,
  StatusReport,
} from "../../src/proxy/api-types.js";

export interface ModelsState {
  status?: StatusReport;
  sources: Map<string, ModelListEntry["meta"]>;
  /** performance.now() when `status` was read: uptime/TTL are counted on from it. */
  readAt: number;
  /** The last crash seen per model (reason, epoch ms). */
  crashes: Map<string, { reason: string; at: number }>;
  connected: boolean;
  error?: string;
}

/** The models' state and a function that reads /api/status again (after an action that sends no event). */
export function useModels(enabled: boolean): [ModelsState, () => void] {
  const [s, set] = useState<ModelsState>({ sources: new Map(), readAt: 0, crashes: new Map(), connected: false });
  const refreshRef = useRef<() => void>(() => {});
  useEffect(() => {
    if (!enabled) return;
    const ac = new AbortController();
    let pending: ReturnType<typeof setTimeout> | undefined;
    const refresh = async () => {
      try {
        const [status, list] = await Promise.all([
          getJson<StatusReport>("/api/status", ac.signal),
          getJson<ModelList>("/v1/models", ac.signal),
        ]);
        set((p) => ({
          ...p,
          status,
          readAt: performance.now(),
          sources: new Map(list.data.map((m) => [m.id, m.meta])),
          error: undefined,
        }));
      } catch (e) {
        if (!ac.signal.aborted) set((p) => ({ ...p, error: (e as Error).message }));
      }
    };
    refreshRef.current = () => void refresh();
    const soon = () => {
      if (pending) return;
      pending = setTimeout(() => {
        pending = undefined;
        void refresh();
      }, 40);
    };
    // read at once, and again each time the event stream is (re)connected: from then on no change is missed
    void refresh();
    follow(
      "/api/events",
      (data) => {
        let e: EventStreamMessage;
        try {
          e = JSON.parse(data) as EventStreamMessage;
        } catch {
          return;
        }
        if (e.type === "hello") return;
        if (e.type === "progress") {
          set((p) => {
            if (!p.status) return p;
            const models = p.status.models.map((m): ModelStatusReport =>
              m.name === e.model ? { ...m, progress: e.value } : m,
            );
            return { ...p, status: { ...p.status, models } };
          });
        } else if (e.type === "crash") {
          set((p) => ({ ...p, crashes: new Map(p.crashes).set(e.model, { reason: e.reason, at: e.at }) }));
          soon();
        } else soon();
      },
      ac.signal,
      () => {
        set((p) => ({ ...p, connected: true }));
        void refresh();
      },
      (why) => set((p) => ({ ...p, connected: false, error: `live updates lost (${why}); reconnecting…` })),
    );
    return () => {
      ac.abort();
      if (pending) clearTimeout(pending);
    };
  }, [enabled]);
  return [s, () => refreshRef.current()];
}

/** Re-renders every second (for counters between events). */
export function useTick(ms = 1000): number {
  const [t, setT] = useState(() => performance.now());
  useEffect(() => {
    const id = setInterval(() => setT(performance.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return t;
}
