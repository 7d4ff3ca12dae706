/**
 * Splits a byte stream into lines (\n or \r\n; a lone \r also ends a line, as cmake and progress bars use it).
 * Holds at most `maxLine` characters of an unterminated line so a child that never prints a newline cannot
 * grow our memory.
 */
export class LineSplitter {
  private buf = "";
  private readonly decoder = new TextDecoder("utf-8");

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = 64 * 1024,
  ) {}

  push(chunk: Buffer | string): void {
    this.buf += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c === 10 || c === 13) {
        const line = this.buf.slice(start, i);
        // \r\n counts once
        if (c === 13 && this.buf.charCodeAt(i + 1) === 10) i++;
        start = i + 1;
        this.onLine(line);
      }
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length > this.maxLine) {
      this.onLine(this.buf.slice(0, this.maxLine));
      this.buf = "";
    }
  }

  /** Emits the last unterminated line, if any. */
  end(): void {
    this.buf += this.decoder.decode();
    if (this.buf.length > 0) this.onLine(this.buf);
    this.buf = "";
  }
}
