import pc from "picocolors";
import { TerminalMarkdown } from "./markdown.js";
import { JsonTurn } from "./turn-json.js";
import { LiveTurn } from "./turn-live.js";
import { PlainTurn } from "./turn-plain.js";
import type { RendererOptions, ThinkMode, TurnOptions, TurnRenderer } from "./turn.js";

/**
 * Decides what a chat answer looks like on the terminal, from the stream's events. One turn renderer per mode:
 *
 *  - live (stdout is a TTY; turn-live.ts): the thinking is drawn dim in a small region that folds to one line
 *    `thought for 3.4 s` when the answer starts; the answer streams as markdown; then a stats line.
 *  - plain (pipe, file; turn-plain.ts): the answer goes to stdout as it arrives, nothing else; thinking goes to
 *    stderr only with `think: "show"`, stats to stderr only with `stats: true`.
 *  - json (turn-json.ts): one JSON object per answer on stdout.
 *
 * They share the record and its timing (turn.ts). Writes only through the given streams, so tests drive it with
 * fake writables.
 */
export {
  formatStats,
  TurnRenderer,
  type RendererOptions,
  type TermOut,
  type ThinkMode,
  type TurnResult,
  type TurnStats,
} from "./turn.js";

export class ChatRenderer {
  private readonly o: TurnOptions;
  private readonly c: ReturnType<typeof pc.createColors>;
  private md: TerminalMarkdown | undefined;

  constructor(opts: RendererOptions) {
    this.o = { ...opts, now: opts.now ?? (() => performance.now()) };
    this.c = pc.createColors(opts.color);
  }

  get thinkMode(): ThinkMode {
    return this.o.think;
  }

  set thinkMode(mode: ThinkMode) {
    this.o.think = mode;
  }

  /** Start showing one answer. */
  startTurn(model: string): TurnRenderer {
    if (this.o.json) return new JsonTurn(model, this.o);
    if (!this.o.live) return new PlainTurn(model, this.o);
    if (this.o.markdown && this.o.color && !this.md) this.md = new TerminalMarkdown(this.width());
    return new LiveTurn(model, this.o, this.c, this.o.markdown ? this.md : undefined);
  }

  private width(): number {
    return Math.max(20, this.o.out.columns ?? 80);
  }
}
