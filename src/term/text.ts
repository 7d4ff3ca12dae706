/**
 * Terminal text geometry: display width of characters and wrapping into rows, so a live region (thinking
 * preview, the answer block still being typed) can be erased and redrawn exactly.
 */

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, "");
}

/** Columns a code point takes: 0 (combining, control), 2 (East Asian wide, emoji), else 1. */
export function charWidth(cp: number): number {
  if (cp < 32 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if (cp === 0x200b || cp === 0x200c || cp === 0x200d || cp === 0xfeff) return 0;
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
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
