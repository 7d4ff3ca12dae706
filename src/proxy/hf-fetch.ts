/**
 * The config's `path: hf:<user>/<repo>[:<quant>]` models that are not in the Hugging Face cache yet: fetched in
 * the background, one at a time, into the hub cache (gglib pull's downloader: resume, sha256, lock; the hub cache
 * layout, src/hub/pull.ts hfCache), then the catalog is reloaded and the entry points at the files. A failed
 * fetch is logged with its cause and retried after a growing delay (30 s, 2 min, 10 min by default), then given up
 * until the next reload: never a loop.
 */
import { errorMessage } from "../core/errors.js";
import { parseHfRef } from "../models/stores/hf-ref.js";

export interface HfFetcherOptions {
  /** Fetches `<user>/<repo>[:<tag>]` into the hub cache. */
  pull: (ref: string, signal: AbortSignal) => Promise<unknown>;
  /** After a successful fetch (the proxy reloads its catalog). */
  fetched: (ref: string) => void;
  log: (line: string) => void;
  /** Waits before the 2nd, 3rd… try; a fetch that failed once more than this is given up. */
  retryDelaysMs?: readonly number[];
}

export class HfFetcher {
  private readonly wanted = new Map<string, { failures: number; timer?: NodeJS.Timeout; gaveUp?: boolean }>();
  /** Fetched once in this process: never fetched again (a reference still unresolved after it is only logged). */
  private readonly done = new Set<string>();
  private queue: string[] = [];
  private running: { ref: string; abort: AbortController } | undefined;
  private closed = false;

  constructor(private readonly o: HfFetcherOptions) {}

  /** The `hf:` references missing from the cache now (after each catalog build); others are forgotten. */
  want(refs: readonly string[]): void {
    if (this.closed) return;
    const now = new Set(refs);
    for (const [ref, st] of this.wanted)
      if (!now.has(ref)) {
        if (st.timer) clearTimeout(st.timer);
        this.wanted.delete(ref);
        this.queue = this.queue.filter((r) => r !== ref);
        if (this.running?.ref === ref) this.running.abort.abort();
      }
    for (const ref of now) {
      if (this.done.has(ref)) continue;
      const st = this.wanted.get(ref);
      if (!st) {
        this.wanted.set(ref, { failures: 0 });
        this.enqueue(ref);
      } else if (st.gaveUp) {
        // a reload asks again: one more round of tries
        st.gaveUp = false;
        st.failures = 0;
        this.enqueue(ref);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const st of this.wanted.values()) if (st.timer) clearTimeout(st.timer);
    this.running?.abort.abort();
    this.wanted.clear();
    this.queue = [];
  }

  private enqueue(ref: string): void {
    if (!this.queue.includes(ref) && this.running?.ref !== ref) this.queue.push(ref);
    this.next();
  }

  private next(): void {
    if (this.closed || this.running) return;
    const ref = this.queue.shift();
    if (ref === undefined) return;
    const parsed = parseHfRef(ref);
    if (!parsed) return this.next();
    const abort = new AbortController();
    this.running = { ref, abort };
    const what = `${parsed.repo}${parsed.tag ? `:${parsed.tag}` : ""}`;
    this.o.log(`${ref}: not in the Hugging Face cache; fetching ${what}`);
    this.o.pull(what, abort.signal).then(
      () => {
        this.running = undefined;
        if (this.closed || !this.wanted.has(ref)) return this.next();
        this.wanted.delete(ref);
        this.done.add(ref);
        this.o.log(`${ref}: fetched`);
        this.o.fetched(ref);
        this.next();
      },
      (e: unknown) => {
        this.running = undefined;
        const st = this.wanted.get(ref);
        if (this.closed || !st || abort.signal.aborted) return this.next();
        st.failures++;
        const delays = this.o.retryDelaysMs ?? [30_000, 120_000, 600_000];
        const delay = delays[st.failures - 1];
        if (delay === undefined) {
          st.gaveUp = true;
          this.o.log(
            `${ref}: fetch failed (${errorMessage(e)}); gave up after ${st.failures} tries (a reload tries again)`,
          );
        } else {
          this.o.log(`${ref}: fetch failed (${errorMessage(e)}); retrying in ${Math.round(delay / 1000)} s`);
          st.timer = setTimeout(() => {
            st.timer = undefined;
            this.enqueue(ref);
          }, delay);
          st.timer.unref?.();
        }
        this.next();
      },
    );
  }
}
