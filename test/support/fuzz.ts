/** Shared pieces of the property-based tests (fast-check): run counts, cut points, text that trips parsers. */
import fc from "fast-check";

/** Runs per property: 300, or 5 000 with GGLIB_LONG_TESTS=1. */
export const RUNS = process.env.GGLIB_LONG_TESTS === "1" ? 5_000 : 300;

/** Cut points (sorted, unique, inside 1..len-1) for splitting a sequence of `len` units. */
export function cuts(len: number): fc.Arbitrary<number[]> {
  if (len < 2) return fc.constant([]);
  return fc
    .uniqueArray(fc.integer({ min: 1, max: len - 1 }), { maxLength: Math.min(len - 1, 40) })
    .map((a) => a.sort((x, y) => x - y));
}

export function splitAt<T extends { slice(a: number, b?: number): T }>(s: T & { length: number }, at: number[]): T[] {
  const out: T[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(s.slice(prev, c));
    prev = c;
  }
  out.push(s.slice(prev));
  return out;
}

// text with the characters that matter to the parsers: tag pieces, newlines, SSE field syntax, multi-byte UTF-8
export const tricky = fc
  .array(
    fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(
        "<",
        ">",
        "/",
        "think",
        "<think>",
        "</think>",
        "</thi",
        "nk>",
        "\n",
        "\n\n",
        "\r\n",
        " ",
        "data:",
        ": ",
        "é",
        "日本",
        "🙂",
        "\u0000",
        "[DONE]",
      ),
    ),
    { maxLength: 12 },
  )
  .map((a) => a.join(""));
