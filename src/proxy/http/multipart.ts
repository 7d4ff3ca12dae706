/**
 * The small text fields of a multipart/form-data body (the `model` of an OpenAI SDK's transcription request), read
 * by a bounded scan of the parts in order: headers up to 8 KiB per part, at most 256 parts, a file part skipped
 * by searching for the next delimiter (Buffer.indexOf), nothing copied but the fields asked for. The body itself is
 * forwarded unchanged. No multipart parser is among the dependencies (undici's FormData parsing decodes every file
 * into memory, and the body would then have to be written again), and only the first text fields are needed.
 */

/** The boundary of a multipart Content-Type; undefined when it has none. */
export function multipartBoundary(contentType: string): string | undefined {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

const CRLF2 = Buffer.from("\r\n\r\n");
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_PARTS = 256;
const MAX_VALUE_BYTES = 1024;

/**
 * The values of the named text fields (parts without a filename), in the order found; a field over 1 KiB is not
 * a name and is left out. Stops once every name is found, at the closing delimiter, or at something that is not
 * multipart (what was found so far is returned). Pure.
 */
export function multipartFields(body: Buffer, boundary: string, names: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  const delim = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  // the first delimiter may follow a preamble
  let at = body.subarray(0, delim.length).equals(delim) ? 0 : body.indexOf(next);
  if (at < 0) return found;
  if (at > 0) at += 2;
  for (let parts = 0; parts < MAX_PARTS && found.size < names.length; parts++) {
    let p = at + delim.length;
    if (body[p] === 0x2d && body[p + 1] === 0x2d) break; // "--": the closing delimiter
    while (body[p] === 0x20 || body[p] === 0x09) p++; // transport padding
    if (body[p] !== 0x0d || body[p + 1] !== 0x0a) break;
    p += 2;
    const headerEnd = body.indexOf(CRLF2, p);
    if (headerEnd < 0 || headerEnd - p > MAX_HEADER_BYTES) break;
    const field = fieldName(body.toString("latin1", p, headerEnd));
    const valueStart = headerEnd + 4;
    const end = body.indexOf(next, valueStart);
    if (end < 0) break;
    if (field !== undefined && names.includes(field) && !found.has(field) && end - valueStart <= MAX_VALUE_BYTES)
      found.set(field, body.toString("utf8", valueStart, end));
    at = end + 2;
  }
  return found;
}

/** The `name` of a form-data part's Content-Disposition; undefined for a file part or none. */
function fieldName(headers: string): string | undefined {
  for (const line of headers.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== "content-disposition") continue;
    const v = line.slice(colon + 1);
    if (/;\s*filename\*?=/i.test(v)) return undefined;
    const m = /;\s*name=(?:"((?:[^"\\]|\\.)*)"|([^\s;]+))/i.exec(v);
    return m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]) : undefined;
  }
  return undefined;
}
