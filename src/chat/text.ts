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

/**
 * Markdown blocks that are finished in a growing text: everything up to the last blank line outside a code
 * fence, or up to the end of a closing fence line. `rest` is the block still being written.
 */
export function splitCompleteBlocks(text: string): { complete: string; rest: string } {
  const b = new BlockBoundaries();
  b.append(text);
  const at = b.boundary;
  return { complete: text.slice(0, at), rest: text.slice(at) };
}

/**
 * Incremental form of splitCompleteBlocks for a streamed answer: each append scans only the new complete lines,
 * so a long answer costs linear time. `boundary` is the offset (in everything appended) where the last finished
 * block ends.
 */
export class BlockBoundaries {
  /** Text after the last newline seen (the line being written). */
  private line = "";
  /** Offset of `line` in everything appended. */
  private lineStart = 0;
  private fence: string | undefined;
  boundary = 0;

  append(delta: string): void {
    if (!delta.includes("\n")) {
      this.line += delta;
      return;
    }
    const text = this.line + delta;
    let pos = 0;
    for (;;) {
      const nl = text.indexOf("\n", pos);
      if (nl < 0) break;
      this.scanLine(text.slice(pos, nl), this.lineStart + nl + 1);
      pos = nl + 1;
    }
    this.lineStart += pos;
    this.line = text.slice(pos);
  }

  private scanLine(line: string, end: number): void {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (this.fence === undefined) {
      if (m) this.fence = m[1];
      else if (line.trim() === "") this.boundary = end;
    } else if (
      m &&
      m[1] !== undefined &&
      m[1][0] === this.fence[0] &&
      m[1].length >= this.fence.length &&
      line.trim() === m[1]
    ) {
      this.fence = undefined;
      this.boundary = end;
    }
  }
}
