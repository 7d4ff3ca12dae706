/**
 * The proxy's own log (what `gglib proxy` prints: start-up, reloads, state changes, crashes), kept in memory with a
 * bound for the dashboard (GET /api/proxy/logs). Lines are stamped with the time they were written.
 */
import { LogBuffer } from "../process/log-buffer.js";

export class ProxyLog {
  private readonly buf: LogBuffer;
  private readonly listeners = new Set<(line: string) => void>();

  constructor(capacity = 2000) {
    this.buf = new LogBuffer(capacity);
  }

  write(message: string): void {
    for (const part of message.split("\n")) {
      const line = `${new Date().toISOString()} ${part}`;
      this.buf.push(line);
      for (const l of this.listeners) l(line);
    }
  }

  tail(n?: number): string[] {
    return this.buf.tail(n);
  }

  on(listener: (line: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
