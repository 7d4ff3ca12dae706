/**
 * Ollama's `keep_alive`: how long the model stays loaded after this request. A number is seconds; a string is a
 * Go duration ("5m", "1h30m", "300ms", "-1s"; a bare number string is taken as seconds); a negative value keeps the
 * model loaded; 0 unloads it as soon as the answer is done; absent/null means the model's own TTL setting.
 * Mapped onto the scheduler's per-request TTL (src/proxy/scheduler.ts `keepAliveMs`: < 0 never, 0 at once).
 */

import { foreverFrom } from "./wire.js";

export type KeepAlive = { kind: "default" } | { kind: "forever" } | { kind: "ms"; ms: number };

export class KeepAliveError extends Error {
  override name = "KeepAliveError";
}

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.ParseDuration, in milliseconds. Throws KeepAliveError for anything else. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === "0" || s === "+0" || s === "-0") return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m)
    throw new KeepAliveError(`invalid duration ${JSON.stringify(text)}: use e.g. "5m", "1h30m", "30s" or seconds`);
  const sign = m[1] === "-" ? -1 : 1;
  let total = 0;
  for (const part of s.slice(m[1]!.length).matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * UNIT_MS[part[2]!]!;
  }
  return sign * total;
}

/** Parses a request's `keep_alive` value. */
export function parseKeepAlive(v: unknown): KeepAlive {
  if (v === undefined || v === null) return { kind: "default" };
  let ms: number;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new KeepAliveError(`invalid keep_alive ${String(v)}`);
    ms = v * 1000;
  } else if (typeof v === "string") {
    ms = /^\s*[+-]?\d+(?:\.\d+)?\s*$/.test(v) ? Number(v) * 1000 : parseGoDuration(v);
  } else {
    throw new KeepAliveError(`keep_alive must be a duration string ("5m") or a number of seconds, not ${typeof v}`);
  }
  if (ms < 0) return { kind: "forever" };
  return { kind: "ms", ms: Math.round(ms) };
}

/** The scheduler's per-request TTL: undefined = the model's setting, -1 = never, 0 = unload when idle, else ms. */
export function keepAliveToTtlMs(k: KeepAlive): number | undefined {
  if (k.kind === "default") return undefined;
  if (k.kind === "forever") return -1;
  return k.ms;
}

/**
 * `/api/ps`'s `expires_at` for a loaded model (epoch ms): now when it stops as soon as it is idle and nothing runs;
 * `ttlMs` after its last use (or from now while requests run); Ollama's far future when it never expires.
 */
export function expiresAt(o: {
  nowMs: number;
  /** The model's TTL now (≤ 0: none). */
  ttlMs: number;
  stopsWhenIdle: boolean;
  inFlight: number;
  lastUsedMs: number | undefined;
}): number {
  if (o.stopsWhenIdle && o.inFlight === 0) return o.nowMs;
  if (o.ttlMs <= 0) return foreverFrom(o.nowMs);
  return o.inFlight > 0 ? o.nowMs + o.ttlMs : (o.lastUsedMs ?? o.nowMs) + o.ttlMs;
}
