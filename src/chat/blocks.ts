/** Where a streamed markdown answer has finished blocks, so they can be rendered while the rest is still raw. */

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
