import type { HealthStatus, LoadProgress, ServerHandle } from "./handle.js";

/** Lifecycle events a runner emits. Consumers (proxy, CLI) subscribe; nothing depends on them being heard. */
export type ServerEvent =
  | { readonly type: "spawned"; readonly handle: ServerHandle; readonly at: number }
  | { readonly type: "progress"; readonly handle: ServerHandle; readonly progress: LoadProgress; readonly at: number }
  | { readonly type: "ready"; readonly handle: ServerHandle; readonly loadMs: number; readonly at: number }
  | { readonly type: "health"; readonly handle: ServerHandle; readonly status: HealthStatus; readonly at: number }
  | { readonly type: "stopping"; readonly handle: ServerHandle; readonly at: number }
  | {
      readonly type: "exited";
      readonly handle: ServerHandle;
      readonly exitCode: number | null;
      readonly signal: string | null;
      /** true when we asked it to stop. */
      readonly expected: boolean;
      readonly at: number;
    }
  | {
      readonly type: "log";
      readonly handle: ServerHandle;
      readonly line: string;
      readonly stream: "stdout" | "stderr";
    };

export type ServerEventListener = (event: ServerEvent) => void;
