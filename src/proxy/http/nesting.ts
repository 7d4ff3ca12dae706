/**
 * How deep a JSON body nests, counted without parsing it: llama-server's JSON parser (nlohmann::json) recurses per
 * level, so a valid body nested 200,000 levels deep (400 KB of `[`) overflows its stack and the process dies with
 * SIGSEGV, taking every request on that model with it. The proxy refuses such bodies before forwarding them.
 * The scan counts `[` and `{` outside strings (strings are skipped with a native indexOf to their closing quote),
 * so it costs one pass over the bytes, and nothing for a body shorter than the limit.
 */

/** The deepest nesting of arrays and objects a body may have (serde_json's default limit; JSON APIs need far less). */
export const MAX_JSON_DEPTH = 128;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * Pure: the byte offset of the first `[` or `{` (outside strings) that opens level `limit + 1`, or -1 when the text
 * never nests deeper than `limit`. Not a validator: malformed JSON is the parser's to refuse.
 */
export function nestingBeyond(body: Buffer, limit: number = MAX_JSON_DEPTH): number {
  const n = body.length;
  if (n <= limit) return -1;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = body[i];
    if (c === QUOTE) {
      i = stringEnd(body, i + 1);
      if (i < 0) return -1;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return i;
    } else if ((c === CLOSE_ARRAY || c === CLOSE_OBJECT) && depth > 0) {
      depth--;
    }
  }
  return -1;
}

/** The offset of the quote that closes a string whose first byte is at `from`, or -1 when it never closes. */
function stringEnd(body: Buffer, from: number): number {
  for (;;) {
    const q = body.indexOf(QUOTE, from);
    if (q < 0) return -1;
    let k = q - 1;
    while (k >= from && body[k] === BACKSLASH) k--;
    // an even run of backslashes escapes itself, not the quote
    if ((q - 1 - k) % 2 === 0) return q;
    from = q + 1;
  }
}
