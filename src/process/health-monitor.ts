import type { HealthStatus } from "../core/handle.js";
import { HANG_PROBES, initialHangState, judgeHang, type HangState } from "./hang-rule.js";

/** Pure: is `next` a change worth reporting after `prev`? */
export function healthChanged(prev: HealthStatus | undefined, next: HealthStatus): boolean {
  if (!prev || prev.status !== next.status) return true;
  // same status: a different unhealthy reason is not a new event (avoids noise while it flaps between errors)
  return false;
}

/** How the monitor tells a hung server from a busy one (the rule is hang-rule.ts). */
export interface HangOptions {
  /** A counter that grows while the server makes progress on requests (default: none, always 0). */
  progress?: () => number;
  /** Failed checks in a row, with no progress in between, that make the server unhealthy (default 3). */
  probes?: number;
  /** Delay before the next check after a failed one, ms (default the interval, at most 1 000). */
  retryMs?: number;
}

/**
 * Checks a server every `intervalMs` after it is ready and reports only changes. A process exit is reported by
 * the supervisor at once, not by this poll. A failed check alone is not reported: a server is reported unhealthy
 * only when the hang rule says hung (several failed checks in a row, checked again sooner, with no progress on its
 * requests in between); a busy server whose `/health` is slow to answer keeps its status. Timers are unref'd: the
 * monitor never keeps the process alive.
 */
export class HealthMonitor {
  private timer?: NodeJS.Timeout;
  private last?: HealthStatus;
  private running = false;
  private stopped = false;
  private hang: HangState;
  private readonly progress: () => number;
  private readonly probes: number;
  private readonly retryMs: number;

  constructor(
    private readonly check: () => Promise<HealthStatus>,
    private readonly onChange: (status: HealthStatus) => void,
    private readonly intervalMs: number,
    initial?: HealthStatus,
    hang: HangOptions = {},
  ) {
    this.last = initial;
    this.progress = hang.progress ?? (() => 0);
    this.probes = hang.probes ?? HANG_PROBES;
    this.retryMs = hang.retryMs ?? Math.min(intervalMs, 1_000);
    this.hang = initialHangState(this.progress());
  }

  start(): void {
    if (this.stopped || this.timer) return;
    this.schedule(this.intervalMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = true;
    let next = this.intervalMs;
    try {
      const s = await this.check();
      if (!this.stopped) next = this.judge(s);
    } finally {
      this.running = false;
      this.schedule(next);
    }
  }

  /** Applies the hang rule to one check; returns the delay before the next one. */
  private judge(s: HealthStatus): number {
    const failed = s.status === "unhealthy";
    const { state, verdict } = judgeHang(this.hang, { answered: !failed, progress: this.progress() }, this.probes);
    this.hang = state;
    if (!failed) {
      this.report(s);
      return this.intervalMs;
    }
    if (verdict === "hung") {
      this.report({
        status: "unhealthy",
        reason: `${s.reason}; ${state.failures} checks in a row, no progress on its requests`,
      });
    }
    return this.retryMs;
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
