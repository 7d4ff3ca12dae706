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
  private readonly swaps: Counter<never>;
  private readonly evictions: Counter<"model" | "reason">;
  private readonly restarts: Counter<"model">;

  constructor(source: MetricsSource) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "gglib_proxy_process_" });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name, help, labelNames, registers: [r] });
    const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
      new Histogram<L>({ name, help, labelNames, buckets, registers: [r] });
    this.requests = counter("gglib_proxy_requests_total", "Requests by model and HTTP status.", ["model", "status"]);
    this.duration = histogram(
      "gglib_proxy_request_duration_seconds",
      "Request duration through the proxy, including any wait for a load.",
      ["model"],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    );
    this.ttfb = histogram(
      "gglib_proxy_time_to_first_byte_seconds",
      "Time from the request to llama-server's response headers (includes load waits).",
      ["model"],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    );
    this.promptTokens = counter("gglib_proxy_prompt_tokens_total", "Prompt tokens (llama-server usage/timings).", [
      "model",
    ]);
    this.genTokens = counter("gglib_proxy_generated_tokens_total", "Generated tokens (llama-server usage/timings).", [
      "model",
    ]);
    this.tps = histogram(
      "gglib_proxy_generation_tokens_per_second",
      "Generation speed per request as llama-server reports it.",
      ["model"],
      [1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000],
    );
    this.loadDuration = histogram(
      "gglib_proxy_model_load_duration_seconds",
      "Time from spawn to ready (result=ok) or failure.",
      ["model", "result"],
      [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
    );
    this.swaps = counter("gglib_proxy_swaps_total", "Models stopped to make room for another.", []);
    this.evictions = counter(
      "gglib_proxy_unloads_total",
      "Models stopped, by reason (evict, ttl, unload, reload, removed, shutdown).",
      ["model", "reason"],
    );
    this.restarts = counter("gglib_proxy_model_crashes_total", "llama-server processes that exited unexpectedly.", [
      "model",
    ]);
    modelGauges(r, source);
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

type ModelSnapshot = ReturnType<MetricsSource["snapshot"]>[number];

/** The per-model gauges, read from the scheduler's state when /metrics is scraped. */
function modelGauges(r: Registry, source: MetricsSource): void {
  const gauge = (
    name: string,
    help: string,
    labelNames: readonly ("model" | "state")[],
    fill: (g: Gauge<"model" | "state">, m: ModelSnapshot) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [r],
      collect() {
        this.reset();
        for (const m of source.snapshot()) fill(this, m);
      },
    });
  gauge("gglib_proxy_queue_depth", "Requests waiting for their model.", ["model"], (g, m) =>
    g.set({ model: m.name }, m.queued),
  );
  gauge("gglib_proxy_requests_in_flight", "Requests being served by llama-server.", ["model"], (g, m) =>
    g.set({ model: m.name }, m.inFlight),
  );
  gauge("gglib_proxy_model_state", "1 for the state each model is in.", ["model", "state"], (g, m) =>
    g.set({ model: m.name, state: m.state }, 1),
  );
  gauge(
    "gglib_proxy_model_memory_bytes",
    "Memory counted for each resident model (measured, else estimated).",
    ["model"],
    (g, m) => {
      if (m.state !== "unloaded" && m.state !== "failed") g.set({ model: m.name }, m.bytes);
    },
  );
}
