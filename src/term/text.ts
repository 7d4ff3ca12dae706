/**
 * Terminal text geometry: display width of characters and wrapping into rows, so a live region (thinking
 * preview, the answer block still being typed) can be erased and redrawn exactly.
 */

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, "");
}

/** Code point ranges that take no column (combining marks, zero-width characters, variation selectors). */
const ZERO_WIDTH: readonly (readonly [number, number])[] = [
  [0x200b, 0x200d],
  [0xfeff, 0xfeff],
  [0x300, 0x36f],
  [0xfe00, 0xfe0f],
];

/** Code point ranges that take two columns: East Asian wide and full-width characters, emoji. */
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe30, 0xfe4f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x3fffd],
];

const within = (cp: number, ranges: readonly (readonly [number, number])[]): boolean =>
  ranges.some(([lo, hi]) => cp >= lo && cp <= hi);

/** Columns a code point takes: 0 (combining, control), 2 (East Asian wide, emoji), else 1. */
export function charWidth(cp: number): number {
  if (cp < 32 || (cp >= 0x7f && cp < 0xa0) || within(cp, ZERO_WIDTH)) return 0;
  return within(cp, WIDE) ? 2 : 1;
}

export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of stripAnsi(s)) w += charWidth(ch.codePointAt(0) ?? 0);
  return w;
}

/** Make text safe to draw in a region we redraw: tabs to spaces, CR and other controls dropped (ESC too). */
export function sanitize(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\t/g, "    ").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
}

/**
 * Wrap plain text (no ANSI) into rows of at most `width` columns: at spaces when a word fits, hard otherwise.
 * Newlines start a new row. Always at least one row.
 */
export function wrapRows(text: string, width: number): string[] {
  const w = Math.max(1, width);
  const rows: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "") {
      rows.push("");
      continue;
    }
    let row = "";
    let rowW = 0;
    let lastSpace = -1; // index in row just after a space
    let widthAtSpace = 0;
    for (const ch of line) {
      const cw = charWidth(ch.codePointAt(0) ?? 0);
      if (rowW + cw > w) {
        if (ch === " ") {
          rows.push(row);
          row = "";
          rowW = 0;
          lastSpace = -1;
          continue;
        }
        if (lastSpace > 0 && lastSpace < row.length) {
          rows.push(row.slice(0, lastSpace));
          row = row.slice(lastSpace);
          rowW -= widthAtSpace;
        } else {
          rows.push(row);
          row = "";
          rowW = 0;
        }
        lastSpace = -1;
      }
      row += ch;
      rowW += cw;
      if (ch === " ") {
        lastSpace = row.length;
        widthAtSpace = rowW;
      }
    }
    rows.push(row);
  }
  return rows;
}

/** Rows of cells as aligned columns (two spaces apart; ANSI colours do not count; the last column is not padded). */
export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => displayWidth(r[i] ?? ""))));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i]! - displayWidth(c))))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
