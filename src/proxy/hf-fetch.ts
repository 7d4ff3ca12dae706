/**
 * The config's `path: hf:<user>/<repo>[:<quant>]` models that are not in the Hugging Face cache yet: fetched on
 * first use (a request naming the model, `POST /api/...load`, or `preload: true` at start), as the first stage of
 * its load (ModelController's `download` option), into the hub cache (gglib pull's downloader: resume, sha256,
 * lock; the hub cache layout, src/hub/pull.ts hfCache); then the catalog is reloaded, the entry points at the
 * files and the load goes on. Every request that waits meanwhile shares the one download and sees its progress.
 *
 * A failed fetch answers each of its waiters with a 502 naming the repo and the cause; the next request within a
 * cooldown (30 s, 2 min, 10 min, then 10 min each: `retryDelaysMs`) gets a 503 with the same cause and a
 * Retry-After; the first request after it tries again. Nothing is retried without a request: never a loop.
 * The decision (fetch, share, refuse) is `hfFetchStep`, pure.
 */
import { errorMessage, HttpError } from "../core/errors.js";
import { parseHfRef } from "../models/stores/hf-ref.js";

/** What is known of one reference's fetches. */
export interface HfFetchState {
  /** A fetch under way. */
  running: boolean;
  /** Fetched in this process (a reference that still does not resolve after it is not fetched again). */
  done: boolean;
  /** Failed fetches since the last success. */
  failures: number;
  /** The last failure's cause, and until when no new fetch starts (ms, the clock's). */
  lastError?: string;
  retryAt?: number;
}

export type HfFetchStep =
  | { action: "none" }
  | { action: "join" }
  | { action: "fetch" }
  | { action: "refuse"; reason: string; retryAfterMs: number };

/** The default waits after the 1st, 2nd, 3rd… failure (the last one repeats). */
export const HF_RETRY_DELAYS_MS: readonly number[] = [30_000, 120_000, 600_000];

/** A request for a reference in state `s` at `now`: fetch it, share the running fetch, refuse it, or nothing. Pure. */
export function hfFetchStep(s: HfFetchState | undefined, now: number): HfFetchStep {
  if (!s) return { action: "fetch" };
  if (s.done) return { action: "none" };
  if (s.running) return { action: "join" };
  if (s.retryAt !== undefined && now < s.retryAt)
    return { action: "refuse", reason: s.lastError ?? "unknown", retryAfterMs: s.retryAt - now };
  return { action: "fetch" };
}

/** The cooldown after the `failures`-th failure in a row. Pure. */
export function hfRetryDelay(failures: number, delays: readonly number[] = HF_RETRY_DELAYS_MS): number {
  if (delays.length === 0) return 0;
  return delays[Math.min(Math.max(failures, 1), delays.length) - 1]!;
}

export interface HfFetcherOptions {
  /** Fetches `<user>/<repo>[:<tag>]` into the hub cache; `onProgress` gets 0..1 of its bytes. */
  pull: (ref: string, signal: AbortSignal, onProgress: (value: number) => void) => Promise<unknown>;
  /** After a successful fetch: the proxy reloads its catalog (the fetch's waiters wait for it). */
  fetched: (ref: string) => Promise<unknown>;
  log: (line: string) => void;
  /** Cooldowns after the 1st, 2nd… failure (the last repeats). Default HF_RETRY_DELAYS_MS. */
  retryDelaysMs?: readonly number[];
  now?: () => number;
}

interface Running {
  promise: Promise<void>;
  listeners: Set<(value: number) => void>;
  last: number;
  abort: AbortController;
}

export class HfFetcher {
  private readonly states = new Map<string, HfFetchState>();
  private readonly running = new Map<string, Running>();
  private closed = false;

  constructor(private readonly o: HfFetcherOptions) {}

  /**
   * The fetch a load of `ref` (for model `model`, whose catalog entry still lacks the files) must wait for. Rejects
   * (or throws) an HttpError: 502 when the fetch failed or left no file for the reference, 503 during its cooldown.
   */
  fetch(ref: string, model: string, onProgress: (value: number) => void): Promise<void> | undefined {
    if (this.closed) throw new HttpError(503, "shutting_down", "The proxy is shutting down.");
    const parsed = parseHfRef(ref);
    if (!parsed) return undefined;
    const what = `${parsed.repo}${parsed.tag ? `:${parsed.tag}` : ""}`;
    const now = (this.o.now ?? Date.now)();
    const step = hfFetchStep(this.states.get(ref), now);
    if (step.action === "none")
      // fetched, and the catalog still has no file for it (a tag that names no file of the repo)
      throw new HttpError(
        502,
        "model_download_failed",
        `Model '${model}': ${what} was fetched from the Hugging Face hub, but the cache still has no model for ${ref}; check the quant or file name (the reload's warnings say what the repo has).`,
      );
    if (step.action === "refuse") {
      const s = Math.max(1, Math.ceil(step.retryAfterMs / 1000));
      throw new HttpError(
        503,
        "model_download_failed",
        `Model '${model}': fetching ${what} from the Hugging Face hub failed (${step.reason}); it is tried again on a request after ${s} s.`,
        s,
      );
    }
    let run = this.running.get(ref);
    if (!run || step.action === "fetch") run = this.start(ref, what, model);
    const r = run;
    r.listeners.add(onProgress);
    if (r.last > 0) onProgress(r.last);
    return r.promise.finally(() => r.listeners.delete(onProgress));
  }

  /** Aborts the fetches under way (their waiters get a 503). */
  close(): void {
    this.closed = true;
    for (const r of this.running.values()) r.abort.abort(new Error("the proxy is shutting down"));
  }

  private start(ref: string, what: string, model: string): Running {
    const state = this.states.get(ref) ?? { running: false, done: false, failures: 0 };
    this.states.set(ref, state);
    state.running = true;
    const abort = new AbortController();
    const run: Running = { listeners: new Set(), last: 0, abort, promise: Promise.resolve() };
    this.o.log(`${ref}: not in the Hugging Face cache; fetching ${what} (first use of '${model}')`);
    const progress = (value: number) => {
      if (!(value > run.last)) return;
      run.last = value;
      for (const l of run.listeners) l(value);
    };
    run.promise = this.o
      .pull(what, abort.signal, progress)
      .then(
        async () => {
          this.o.log(`${ref}: fetched`);
          // done once the catalog has it: a request meanwhile still shares this fetch
          try {
            await this.o.fetched(ref);
          } finally {
            state.running = false;
          }
          state.done = true;
          state.failures = 0;
          state.lastError = undefined;
          state.retryAt = undefined;
        },
        (e: unknown) => {
          state.running = false;
          if (abort.signal.aborted) {
            this.states.delete(ref);
            throw new HttpError(503, "shutting_down", `Model '${model}': fetching ${what} was stopped.`);
          }
          state.failures++;
          const delay = hfRetryDelay(state.failures, this.o.retryDelaysMs);
          state.lastError = errorMessage(e);
          state.retryAt = (this.o.now ?? Date.now)() + delay;
          this.o.log(
            `${ref}: fetch failed (${state.lastError}); tried again on a request after ${Math.round(delay / 1000)} s`,
          );
          throw new HttpError(
            502,
            "model_download_failed",
            `Model '${model}': fetching ${what} from the Hugging Face hub failed: ${state.lastError}. Check the repo and quant in the config (and HF_TOKEN for a gated repo); the next request after ${Math.ceil(delay / 1000)} s tries again.`,
            Math.max(1, Math.ceil(delay / 1000)),
          );
        },
      )
      .finally(() => {
        if (this.running.get(ref) === run) this.running.delete(ref);
      });
    this.running.set(ref, run);
    return run;
  }
}
