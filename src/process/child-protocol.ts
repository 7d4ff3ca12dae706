import type { LoadProgress } from "../core/handle.js";

/**
 * llama-server's router/child protocol (active when LLAMA_SERVER_ROUTER_PORT is set in its environment):
 *   stdout: `cmd_child_to_router:state:{"state":"loading","payload":{"stages":[...],"current":"...","value":0..1}}`
 *           `cmd_child_to_router:state:{"state":"ready","payload":{<the /v1/models entry>}}`
 *   stdin (after loading): `cmd_router_to_child:exit` asks for a graceful exit; EOF (the parent died) makes it exit.
 */
export const CHILD_STATE_PREFIX = "cmd_child_to_router:state:";
export const EXIT_COMMAND = "cmd_router_to_child:exit\n";

export interface ReadyInfo {
  id?: string;
  meta?: {
    n_ctx?: number;
    n_ctx_train?: number;
    n_params?: number;
    size?: number;
    n_vocab?: number;
    n_embd?: number;
    ftype?: string;
  };
  [key: string]: unknown;
}

export type ChildMessage =
  | { kind: "loading"; progress: LoadProgress }
  | { kind: "ready"; info: ReadyInfo }
  | { kind: "other-state"; state: string; payload: unknown };

/** Pure: one stdout line → a protocol message, or undefined for anything else (including malformed JSON). */
export function parseChildLine(line: string): ChildMessage | undefined {
  if (!line.startsWith(CHILD_STATE_PREFIX)) return undefined;
  let msg: unknown;
  try {
    msg = JSON.parse(line.slice(CHILD_STATE_PREFIX.length));
  } catch {
    return undefined;
  }
  if (typeof msg !== "object" || msg === null) return undefined;
  const { state, payload } = msg as { state?: unknown; payload?: unknown };
  if (typeof state !== "string") return undefined;
  if (state === "loading") {
    const p = (payload ?? {}) as { stages?: unknown; current?: unknown; value?: unknown };
    const stages = Array.isArray(p.stages) ? p.stages.filter((s): s is string => typeof s === "string") : [];
    const value = typeof p.value === "number" && Number.isFinite(p.value) ? Math.max(0, Math.min(1, p.value)) : 0;
    return {
      kind: "loading",
      progress: { stage: typeof p.current === "string" ? p.current : (stages[0] ?? "model"), stages, value },
    };
  }
  if (state === "ready") {
    return { kind: "ready", info: (typeof payload === "object" && payload !== null ? payload : {}) as ReadyInfo };
  }
  return { kind: "other-state", state, payload };
}
