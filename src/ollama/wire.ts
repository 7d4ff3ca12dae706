/**
 * Ollama's wire format, byte for byte where it is cheap: JSON as Go's encoding/json writes it (`<`, `>`, `&`,
 * U+2028 and U+2029 escaped as \u003c …, which JSON.stringify does not do), timestamps as Go's RFC 3339 with
 * nanoseconds (`2024-07-22T20:33:28.123648Z`: trailing zeros dropped), durations as integer nanoseconds, one JSON
 * object per line for streams (`application/x-ndjson`), and errors as `{"error":"…"}`.
 */

const GO_ESCAPES: Readonly<Record<string, string>> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/** JSON.stringify, then Go's HTML-safe escapes (these characters only ever occur inside JSON strings). */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]!);
}

/** One NDJSON line. */
export function ndjsonLine(value: unknown): string {
  return goJson(value) + "\n";
}

/**
 * Go's `time.Time` JSON form in UTC (RFC 3339, fraction to the microsecond, trailing zeros removed).
 * `epochMs` may carry sub-millisecond digits (performance.timeOrigin + performance.now()).
 */
export function goTime(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const iso = new Date(wholeMs).toISOString(); // 2024-07-22T20:33:28.123Z
  // a double holds epoch ms to ~0.2 µs: keep microseconds (what the clock really gives), not noise
  const subUs = Math.min(Math.round((epochMs - wholeMs) * 1000), 999);
  const ns = (wholeMs % 1000) * 1e6 + subUs * 1000;
  const frac = String(ns).padStart(9, "0").replace(/0+$/, "");
  return `${iso.slice(0, 19)}${frac ? `.${frac}` : ""}Z`;
}

/** Wall-clock now with sub-millisecond precision (for created_at). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Milliseconds → integer nanoseconds (Go's time.Duration), never negative. */
export function msToNs(ms: number): number {
  return Math.max(0, Math.round(ms * 1e6));
}

/** A year-2318 timestamp: what Ollama reports as `expires_at` for a model kept loaded forever (now + max int64 ns). */
export function foreverFrom(epochMs: number): number {
  return epochMs + 9_223_372_036_854; // 2^63-1 ns in ms
}

export const NDJSON_HEADERS = {
  "content-type": "application/x-ndjson",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
} as const;

/** Ollama's error body: `{"error":"…"}`. */
export function errorJson(message: string): string {
  return goJson({ error: message });
}
