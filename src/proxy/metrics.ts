/**
 * The proxy's Prometheus metrics (GET /metrics). Reading them never touches a model: every value is kept in the
 * proxy's own registry or read from the scheduler's state.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { UsageStats } from "./forward.js";

export interface MetricsSource {
  /** Per model: scheduler state, queued requests, in flight, memory. */
  snapshot(): Array<{ name: string; state: string; queued: number; inFlight: number; bytes: number }>;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"model" | "status">;
  private readonly duration: Histogram<"model">;
  private readonly ttfb: Histogram<"model">;
  private readonly promptTokens: Counter<"model">;
  private readonly genTokens: Counter<"model">;
  private readonly tps: Histogram<"model">;
  private readonly loadDuration: Histogram<"model" | "result">;
  private readonly swaps: Counter;
  private readonly evictions: Counter<"model" | "reason">;
  private readonly restarts: Counter<"model">;

  constructor(source: MetricsSource) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "gglib_proxy_process_" });
    this.requests = new Counter({
      name: "gglib_proxy_requests_total",
      help: "Requests by model and HTTP status.",
      labelNames: ["model", "status"],
      registers: [r],
    });
    this.duration = new Histogram({
      name: "gglib_proxy_request_duration_seconds",
      help: "Request duration through the proxy, including any wait for a load.",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [r],
    });
    this.ttfb = new Histogram({
      name: "gglib_proxy_time_to_first_byte_seconds",
      help: "Time from the request to llama-server's response headers (includes load waits).",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [r],
    });
    this.promptTokens = new Counter({
      name: "gglib_proxy_prompt_tokens_total",
      help: "Prompt tokens (llama-server usage/timings).",
      labelNames: ["model"],
      registers: [r],
    });
    this.genTokens = new Counter({
      name: "gglib_proxy_generated_tokens_total",
      help: "Generated tokens (llama-server usage/timings).",
      labelNames: ["model"],
      registers: [r],
    });
    this.tps = new Histogram({
      name: "gglib_proxy_generation_tokens_per_second",
      help: "Generation speed per request as llama-server reports it.",
      labelNames: ["model"],
      buckets: [1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000],
      registers: [r],
    });
    this.loadDuration = new Histogram({
      name: "gglib_proxy_model_load_duration_seconds",
      help: "Time from spawn to ready (result=ok) or failure.",
      labelNames: ["model", "result"],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
      registers: [r],
    });
    this.swaps = new Counter({
      name: "gglib_proxy_swaps_total",
      help: "Models stopped to make room for another.",
      registers: [r],
    });
    this.evictions = new Counter({
      name: "gglib_proxy_unloads_total",
      help: "Models stopped, by reason (evict, ttl, unload, reload, removed, shutdown).",
      labelNames: ["model", "reason"],
      registers: [r],
    });
    this.restarts = new Counter({
      name: "gglib_proxy_model_crashes_total",
      help: "llama-server processes that exited unexpectedly.",
      labelNames: ["model"],
      registers: [r],
    });
    new Gauge({
      name: "gglib_proxy_queue_depth",
      help: "Requests waiting for their model.",
      labelNames: ["model"],
      registers: [r],
      collect() {
        this.reset();
        for (const m of source.snapshot()) this.set({ model: m.name }, m.queued);
      },
    });
    new Gauge({
      name: "gglib_proxy_requests_in_flight",
      help: "Requests being served by llama-server.",
      labelNames: ["model"],
      registers: [r],
      collect() {
        this.reset();
        for (const m of source.snapshot()) this.set({ model: m.name }, m.inFlight);
      },
    });
    new Gauge({
      name: "gglib_proxy_model_state",
      help: "1 for the state each model is in.",
      labelNames: ["model", "state"],
      registers: [r],
      collect() {
        this.reset();
        for (const m of source.snapshot()) this.set({ model: m.name, state: m.state }, 1);
      },
    });
    new Gauge({
      name: "gglib_proxy_model_memory_bytes",
      help: "Memory counted for each resident model (measured, else estimated).",
      labelNames: ["model"],
      registers: [r],
      collect() {
        this.reset();
        for (const m of source.snapshot())
          if (m.state !== "unloaded" && m.state !== "failed") this.set({ model: m.name }, m.bytes);
      },
    });
  }

  /** Label children cached per model (and status): the hot path does no label hashing. */
  private readonly perModel = new Map<
    string,
    {
      duration: ReturnType<Histogram<"model">["labels"]>;
      ttfb: ReturnType<Histogram<"model">["labels"]>;
      tps: ReturnType<Histogram<"model">["labels"]>;
      prompt: ReturnType<Counter<"model">["labels"]>;
      gen: ReturnType<Counter<"model">["labels"]>;
      byStatus: Map<number, ReturnType<Counter<"model" | "status">["labels"]>>;
    }
  >();

  request(
    model: string,
    status: number,
    seconds: number,
    ttfbS: number | undefined,
    usage: UsageStats | undefined,
  ): void {
    let m = this.perModel.get(model);
    if (!m) {
      m = {
        duration: this.duration.labels(model),
        ttfb: this.ttfb.labels(model),
        tps: this.tps.labels(model),
        prompt: this.promptTokens.labels(model),
        gen: this.genTokens.labels(model),
        byStatus: new Map(),
      };
      this.perModel.set(model, m);
    }
    let req = m.byStatus.get(status);
    if (!req) m.byStatus.set(status, (req = this.requests.labels(model, String(status))));
    req.inc();
    m.duration.observe(seconds);
    if (ttfbS !== undefined) m.ttfb.observe(ttfbS);
    if (usage) {
      if (usage.promptTokens !== undefined) m.prompt.inc(usage.promptTokens);
      if (usage.completionTokens !== undefined) m.gen.inc(usage.completionTokens);
      if (usage.predictedPerSecond !== undefined && usage.predictedPerSecond > 0)
        m.tps.observe(usage.predictedPerSecond);
    }
  }

  load(model: string, seconds: number, ok: boolean): void {
    this.loadDuration.observe({ model, result: ok ? "ok" : "failed" }, seconds);
  }

  unloaded(model: string, reason: string): void {
    this.evictions.inc({ model, reason });
    if (reason === "evict") this.swaps.inc();
  }

  crashed(model: string): void {
    this.restarts.inc({ model });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
