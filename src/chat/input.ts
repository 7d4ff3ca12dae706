import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { Writable } from "node:stream";
import { InputAssembler } from "./commands.js";

/**
 * The interactive prompt: one readline interface for the whole session (so pasted text is never lost), with
 *  - multi-line input (trailing `\`, `"""` blocks, and pasted text: lines that arrive in one burst are one message),
 *  - history kept in a file across sessions (Up/Down),
 *  - a "busy" mode while the model answers: the echo is muted, typed lines are dropped, Ctrl-C calls onInterrupt.
 */

export type ReadResult =
  { readonly kind: "message"; readonly text: string } | { readonly kind: "exit"; readonly reason: "eof" | "interrupt" };

/** A writable in front of the terminal that can be muted (readline's echo while an answer streams). */
class MutableOutput extends Writable {
  muted = false;
  readonly isTTY: boolean;

  constructor(private readonly target: NodeJS.WriteStream) {
    super();
    this.isTTY = Boolean(target.isTTY);
    target.on("resize", () => this.emit("resize"));
  }

  get columns(): number {
    return this.target.columns ?? 80;
  }

  get rows(): number {
    return this.target.rows ?? 24;
  }

  // The callback is called at once, so a write is never queued here: `muted` is read when readline writes, not later
  // (a queued redraw written while muted would reach the terminal after the mute ended: the erase of a line that
  // was typed and Ctrl-C'd in one read showed, and the typed text vanished).
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (!this.muted) this.target.write(chunk);
    cb();
  }
}

export interface PromptReaderOptions {
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
  historyFile?: string;
  historySize?: number;
  prompt?: string;
  continuationPrompt?: string;
}

export class PromptReader {
  private readonly rl: Interface;
  private readonly out: MutableOutput;
  private readonly asm = new InputAssembler();
  private burst: string[] = [];
  private burstScheduled = false;
  private waiter: ((r: ReadResult) => void) | undefined;
  private ready: ReadResult[] = [];
  private busy = false;
  private closed = false;
  private history: string[] = [];
  private readonly prompt: string;
  private readonly contPrompt: string;
  /** Called on Ctrl-C while busy. */
  onInterrupt: (() => void) | undefined;
  /** Called on Ctrl-D (end of input) while busy. */
  onEof: (() => void) | undefined;

  constructor(private readonly opts: PromptReaderOptions) {
    this.prompt = opts.prompt ?? ">>> ";
    this.contPrompt = opts.continuationPrompt ?? "... ";
    this.history = loadHistory(opts.historyFile);
    this.out = new MutableOutput(opts.output);
    this.rl = createInterface({
      input: opts.input,
      output: this.out,
      terminal: true,
      history: [...this.history],
      historySize: opts.historySize ?? 1000,
      removeHistoryDuplicates: true,
      prompt: this.prompt,
      tabSize: 4,
    });
    this.rl.on("history", (h: string[]) => {
      this.history = [...h];
    });
    this.rl.on("line", (line: string) => this.onLine(line));
    this.rl.on("SIGINT", () => this.onSigint());
    this.rl.on("close", () => this.onClose());
  }

  /** Reads one message (after showing the prompt), or how the user left. */
  read(): Promise<ReadResult> {
    const queued = this.ready.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve({ kind: "exit", reason: "eof" });
    this.showPrompt(false);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Enter or leave busy mode (an answer is streaming). */
  setBusy(busy: boolean): void {
    if (this.busy === busy) return;
    this.busy = busy;
    if (busy) {
      this.out.muted = true;
      this.burst = [];
      this.asm.reset();
      return;
    }
    // Drop whatever was typed meanwhile (still muted, so the erase is invisible), then show the echo again.
    this.clearLine();
    this.out.muted = false;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  saveHistory(): void {
    saveHistory(this.opts.historyFile, this.history, this.opts.historySize ?? 1000);
  }

  close(): void {
    this.saveHistory();
    if (!this.closed) this.rl.close();
  }

  private showPrompt(preserve: boolean): void {
    this.rl.setPrompt(this.asm.continuing ? this.contPrompt : this.prompt);
    this.rl.prompt(preserve);
  }

  private clearLine(): void {
    this.rl.write(null, { ctrl: true, name: "e" });
    this.rl.write(null, { ctrl: true, name: "u" });
  }

  private deliver(r: ReadResult): void {
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w(r);
    else this.ready.push(r);
  }

  private onLine(line: string): void {
    if (this.busy) return; // typed while the model answered: dropped
    this.burst.push(line);
    if (this.burstScheduled) return;
    this.burstScheduled = true;
    // Lines that arrive in the same tick came in one read: a paste. Decide once they are all in.
    setImmediate(() => this.processBurst());
  }

  private processBurst(): void {
    this.burstScheduled = false;
    const lines = this.burst;
    this.burst = [];
    if (this.busy || lines.length === 0) return;
    const leftover = this.rl.line !== "";
    const pasted = lines.length > 1 || leftover;
    let message: string | undefined;
    lines.forEach((line, i) => {
      const last = i === lines.length - 1;
      if (pasted && (!last || leftover)) {
        this.asm.pushRaw(line);
        return;
      }
      const step = this.asm.push(line);
      if (step.done) message = step.text;
    });
    if (message !== undefined && message.trim() !== "") {
      this.deliver({ kind: "message", text: message });
      return;
    }
    this.showPrompt(true);
  }

  private onSigint(): void {
    if (this.busy) {
      this.onInterrupt?.();
      return;
    }
    if (this.rl.line === "" && !this.asm.continuing && this.burst.length === 0) {
      this.out.write("\n");
      this.deliver({ kind: "exit", reason: "interrupt" });
      return;
    }
    // Ctrl-C on a line being typed: drop it (and any unfinished multi-line message), like a shell.
    this.out.muted = true;
    this.clearLine();
    this.out.muted = false;
    this.out.write("^C\n");
    this.asm.reset();
    this.burst = [];
    this.showPrompt(false);
  }

  private onClose(): void {
    this.closed = true;
    this.saveHistory();
    if (this.busy) this.onEof?.();
    if (!this.busy && !this.waiter) return;
    if (this.waiter) {
      this.out.muted = false;
      this.opts.output.write("\n");
      this.deliver({ kind: "exit", reason: "eof" });
    }
  }
}

/** History file: one entry per line, oldest first (readline keeps newest first). */
export function loadHistory(file: string | undefined): string[] {
  if (!file) return [];
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .reverse();
  } catch {
    return [];
  }
}

export function saveHistory(file: string | undefined, newestFirst: readonly string[], max = 1000): void {
  if (!file) return;
  try {
    mkdirSync(dirname(file), { recursive: true });
    const lines = newestFirst
      .slice(0, max)
      .filter((l) => l.trim() !== "" && !l.includes("\n"))
      .reverse();
    writeFileSync(file, lines.join("\n") + (lines.length ? "\n" : ""), { mode: 0o600 });
  } catch {
    // history is a convenience: a read-only data dir must not break the chat
  }
}
