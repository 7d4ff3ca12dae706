/** The last N log lines of a process, oldest first, in O(1) per line. */
export class LogBuffer {
  private readonly lines: string[];
  private next = 0;
  private count = 0;
  /** Lines ever pushed (including dropped ones). */
  total = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("LogBuffer capacity must be a positive integer");
    this.lines = new Array<string>(capacity);
  }

  push(line: string): void {
    this.lines[this.next] = line;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    this.total++;
  }

  /** The last `n` lines (all kept lines by default), oldest first. */
  tail(n = this.count): string[] {
    const k = Math.max(0, Math.min(n, this.count));
    const out = new Array<string>(k);
    const start = (this.next - k + this.capacity) % this.capacity;
    for (let i = 0; i < k; i++) out[i] = this.lines[(start + i) % this.capacity]!;
    return out;
  }

  get size(): number {
    return this.count;
  }
}
