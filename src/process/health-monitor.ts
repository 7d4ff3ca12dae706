import type { HealthStatus } from "../core/handle.js";

/** Pure: is `next` a change worth reporting after `prev`? */
export function healthChanged(prev: HealthStatus | undefined, next: HealthStatus): boolean {
  if (!prev || prev.status !== next.status) return true;
  // same status: a different unhealthy reason is not a new event (avoids noise while it flaps between errors)
  return false;
}

/**
 * Checks a server every `intervalMs` after it is ready and reports only changes. A process exit is reported by
 * the supervisor at once, not by this poll. Timers are unref'd: the monitor never keeps the process alive.
 */
export class HealthMonitor {
  private timer?: NodeJS.Timeout;
  private last?: HealthStatus;
  private running = false;
  private stopped = false;

  constructor(
    private readonly check: () => Promise<HealthStatus>,
    private readonly onChange: (status: HealthStatus) => void,
    private readonly intervalMs: number,
    initial?: HealthStatus,
  ) {
    this.last = initial;
  }

  start(): void {
    if (this.stopped || this.timer) return;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = true;
    try {
      const s = await this.check();
      if (!this.stopped) this.report(s);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  /** Feed a status observed elsewhere (e.g. the exit event) so it is not reported twice. */
  report(status: HealthStatus): void {
    if (healthChanged(this.last, status)) {
      this.last = status;
      this.onChange(status);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
