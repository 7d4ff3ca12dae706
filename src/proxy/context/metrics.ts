/** Prometheus counters of the context cache, registered on the proxy's registry (GET /metrics). */
import { Counter, Gauge, type Registry } from "prom-client";

export class ContextMetrics {
  readonly saves: Counter<"model" | "result">;
  readonly restores: Counter<"model" | "result">;
  readonly savedTokens: Counter<"model">;
  readonly restoredTokens: Counter<"model">;
  readonly reusedTokens: Counter<"model">;
  readonly writtenBytes: Counter<"model">;
  readonly discards: Counter<"model">;
  readonly evictedFiles: Counter;

  constructor(registry: Registry, diskBytes: () => number) {
    const registers = [registry];
    this.saves = new Counter({
      name: "gglib_proxy_context_saves_total",
      help: "Slot saves before a model stopped, by result (ok, empty, failed, timeout).",
      labelNames: ["model", "result"],
      registers,
    });
    this.restores = new Counter({
      name: "gglib_proxy_context_restores_total",
      help: "Slot restores after a model loaded, by result (ok, failed, timeout).",
      labelNames: ["model", "result"],
      registers,
    });
    this.savedTokens = new Counter({
      name: "gglib_proxy_context_saved_tokens_total",
      help: "Tokens of KV cache saved to disk.",
      labelNames: ["model"],
      registers,
    });
    this.restoredTokens = new Counter({
      name: "gglib_proxy_context_restored_tokens_total",
      help: "Tokens of KV cache restored from disk.",
      labelNames: ["model"],
      registers,
    });
    this.reusedTokens = new Counter({
      name: "gglib_proxy_context_reused_tokens_total",
      help: "Prompt tokens the first request after a restore took from the restored cache (llama-server's cache_n).",
      labelNames: ["model"],
      registers,
    });
    this.writtenBytes = new Counter({
      name: "gglib_proxy_context_written_bytes_total",
      help: "Bytes of slot files written.",
      labelNames: ["model"],
      registers,
    });
    this.discards = new Counter({
      name: "gglib_proxy_context_discards_total",
      help: "Saved states discarded because the model file, the llama-server build or a cache setting changed.",
      labelNames: ["model"],
      registers,
    });
    this.evictedFiles = new Counter({
      name: "gglib_proxy_context_evicted_files_total",
      help: "Slot files removed to keep within the disk budget (least recently used first).",
      registers,
    });
    new Gauge({
      name: "gglib_proxy_context_disk_bytes",
      help: "Bytes of saved KV caches on disk.",
      registers,
      collect() {
        this.set(diskBytes());
      },
    });
  }
}
