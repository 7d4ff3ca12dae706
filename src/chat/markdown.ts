import { Marked, type MarkedExtension } from "marked";
import { markedTerminal } from "marked-terminal";

/** Renders markdown for a terminal (marked + marked-terminal). Only used when the output is a colour TTY. */
export class TerminalMarkdown {
  private readonly marked: Marked;

  constructor(width = 80) {
    this.marked = new Marked();
    // @types/marked-terminal types the extension against an older marked; the runtime object is a MarkedExtension.
    const ext = markedTerminal({ reflowText: false, width, tab: 2, emoji: false }) as unknown as MarkedExtension;
    this.marked.use(ext);
  }

  /** One or more complete blocks → terminal text, without trailing blank lines. Falls back to the source. */
  render(source: string): string {
    try {
      const out = this.marked.parse(source, { async: false });
      return out.replace(/\s+$/, "");
    } catch {
      return source.replace(/\s+$/, "");
    }
  }
}
