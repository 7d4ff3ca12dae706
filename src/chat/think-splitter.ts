/**
 * Splits a model's streamed `content` into thinking and answer when the server leaves the thinking inline
 * (`--reasoning-format none`, or a template llama.cpp does not recognise): `<think>…</think>answer`.
 *
 * A state machine fed one delta at a time. Tags may arrive split across deltas (`"</"`, `"th"`, `"ink>"`), so a
 * tail that could still become a tag is held back until the next delta (or `end()`) decides it.
 *
 * `forcedOpen`: the chat template already opened the block in the prompt (its generation prompt ends with
 * `<think>\n`), so the output starts inside the thinking and only the closing tag appears in the text.
 */

export interface TagPair {
  readonly open: string;
  readonly close: string;
}

/** Tag spellings models use for their thinking block. */
export const THINK_TAGS: readonly TagPair[] = [
  { open: "<think>", close: "</think>" },
  { open: "<thinking>", close: "</thinking>" },
  { open: "<seed:think>", close: "</seed:think>" },
  { open: "<|START_THINKING|>", close: "<|END_THINKING|>" },
];

export interface SplitPiece {
  readonly kind: "thinking" | "answer";
  readonly text: string;
}

type State = "start" | "thinking" | "answer";

export interface ThinkSplitterOptions {
  forcedOpen?: boolean;
  tags?: readonly TagPair[];
}

export class ThinkSplitter {
  private state: State;
  private pending = "";
  /** Closing tags that end the current block (one after a seen opening tag, all when forced open). */
  private closers: readonly string[];
  private trimThinking = true;
  private trimAnswer = false;
  private readonly tags: readonly TagPair[];

  constructor(opts: ThinkSplitterOptions = {}) {
    this.tags = opts.tags ?? THINK_TAGS;
    this.state = opts.forcedOpen ? "thinking" : "start";
    this.closers = this.tags.map((t) => t.close);
  }

  /** True while the text seen so far is (or may still be) inside a thinking block. */
  get inThinking(): boolean {
    return this.state === "thinking";
  }

  /** The server split the reasoning itself (`reasoning_content`): every later content delta is answer. */
  answerOnly(): SplitPiece[] {
    const out: SplitPiece[] = [];
    if (this.state !== "answer") {
      const held = this.pending;
      const wasThinking = this.state === "thinking";
      this.pending = "";
      this.state = "answer";
      if (held.trim() !== "") out.push({ kind: wasThinking ? "thinking" : "answer", text: held });
    }
    return out;
  }

  push(delta: string): SplitPiece[] {
    const out: SplitPiece[] = [];
    let buf = this.pending + delta;
    this.pending = "";
    for (;;) {
      if (buf === "") return out;
      if (this.state === "start") {
        const s = buf.replace(/^\s+/, "");
        if (s === "") {
          this.pending = buf;
          return out;
        }
        const tag = this.tags.find((t) => s.startsWith(t.open));
        if (tag) {
          this.state = "thinking";
          this.closers = [tag.close];
          buf = s.slice(tag.open.length);
          continue;
        }
        if (this.tags.some((t) => t.open.startsWith(s))) {
          this.pending = buf;
          return out;
        }
        this.state = "answer";
        continue;
      }
      if (this.state === "thinking") {
        let at = -1;
        let closer = "";
        for (const c of this.closers) {
          const i = buf.indexOf(c);
          if (i >= 0 && (at < 0 || i < at)) {
            at = i;
            closer = c;
          }
        }
        if (at >= 0) {
          this.emit(out, "thinking", buf.slice(0, at));
          this.state = "answer";
          this.trimAnswer = true;
          buf = buf.slice(at + closer.length);
          continue;
        }
        const hold = heldSuffix(buf, this.closers);
        this.emit(out, "thinking", buf.slice(0, buf.length - hold));
        this.pending = buf.slice(buf.length - hold);
        return out;
      }
      this.emit(out, "answer", buf);
      return out;
    }
  }

  /** The stream ended: whatever was held back is text after all. */
  end(): SplitPiece[] {
    const out: SplitPiece[] = [];
    const held = this.pending;
    this.pending = "";
    if (held === "") return out;
    if (this.state === "thinking") this.emit(out, "thinking", held);
    else if (held.trim() !== "") this.emit(out, "answer", held);
    return out;
  }

  private emit(out: SplitPiece[], kind: "thinking" | "answer", text: string): void {
    let t = text;
    if (kind === "thinking" && this.trimThinking) {
      t = t.replace(/^\s+/, "");
      if (t !== "") this.trimThinking = false;
    }
    if (kind === "answer" && this.trimAnswer) {
      t = t.replace(/^\s+/, "");
      if (t !== "") this.trimAnswer = false;
    }
    if (t === "") return;
    const last = out[out.length - 1];
    if (last && last.kind === kind) out[out.length - 1] = { kind, text: last.text + t };
    else out.push({ kind, text: t });
  }
}

/** Length of the longest suffix of `buf` that is a proper prefix of one of `tags` (it may become that tag). */
function heldSuffix(buf: string, tags: readonly string[]): number {
  let best = 0;
  for (const tag of tags) {
    const max = Math.min(tag.length - 1, buf.length);
    for (let n = max; n > best; n--) {
      if (buf.endsWith(tag.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

/** Does a rendered prompt end inside an open thinking block (the template forces the model to think first)? */
export function promptOpensThinking(prompt: string, tags: readonly TagPair[] = THINK_TAGS): boolean {
  const p = prompt.replace(/\s+$/, "");
  return tags.some((t) => p.endsWith(t.open));
}
