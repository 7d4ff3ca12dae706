/**
 * Slash commands typed at the chat prompt, and the assembly of multi-line input. Pure.
 */

import type { ThinkMode } from "./render.js";

export type SlashCommand =
  | { readonly name: "help" }
  | { readonly name: "exit" }
  | { readonly name: "clear" }
  | { readonly name: "model"; readonly model?: string }
  | { readonly name: "system"; readonly text?: string }
  | { readonly name: "think"; readonly mode?: ThinkMode }
  | { readonly name: "save"; readonly file: string }
  | { readonly name: "invalid"; readonly message: string };

export const HELP_TEXT = `Commands:
  /help              this help
  /model [NAME]      show the model, or switch to NAME (keeps the conversation)
  /system [TEXT]     show the system prompt, or set it (/system - removes it)
  /clear             forget the conversation (the system prompt stays)
  /think show|hide   show the thinking as it streams, or only how long it took
  /save FILE         write the conversation to FILE: .json as JSON, anything else as markdown
  /exit              leave (also Ctrl-D, or Ctrl-C at an empty prompt)

Input:
  Enter sends. End a line with \\ to continue on the next line, or open a block with """
  and close it with """ on its own line. Up/Down walk the history (kept across sessions).
  Ctrl-C while the model answers stops the answer; Ctrl-C on a line you are typing clears it.
  Start a message with // to send text that begins with a slash.`;

/**
 * `undefined` when the line is a message, not a command. A line starting with `//` is a message that begins
 * with `/` (see unescapeMessage).
 */
export function parseSlashCommand(line: string): SlashCommand | undefined {
  const t = line.trim();
  if (!t.startsWith("/") || t.startsWith("//")) return undefined;
  const m = /^\/(\S*)\s*([\s\S]*)$/.exec(t);
  const name = (m?.[1] ?? "").toLowerCase();
  const arg = (m?.[2] ?? "").trim();
  switch (name) {
    case "help":
    case "?":
    case "h":
      return { name: "help" };
    case "exit":
    case "quit":
    case "bye":
    case "q":
      return { name: "exit" };
    case "clear":
    case "reset":
      return { name: "clear" };
    case "model":
      return arg ? { name: "model", model: arg } : { name: "model" };
    case "system":
      return arg ? { name: "system", text: arg } : { name: "system" };
    case "think": {
      if (!arg) return { name: "think" };
      const a = arg.toLowerCase();
      if (a === "show" || a === "on") return { name: "think", mode: "show" };
      if (a === "hide" || a === "off") return { name: "think", mode: "hide" };
      return { name: "invalid", message: `/think takes show or hide, not "${arg}"` };
    }
    case "save":
      if (!arg) return { name: "invalid", message: "/save needs a file name, e.g. /save chat.md or /save chat.json" };
      return { name: "save", file: unquote(arg) };
    default:
      return {
        name: "invalid",
        message: `unknown command /${name}; type /help for the list (start with // to send a message that begins with /)`,
      };
  }
}

/** `//text` → `/text`; other messages unchanged. */
export function unescapeMessage(text: string): string {
  return text.replace(/^(\s*)\/\//, "$1/");
}

function unquote(s: string): string {
  const m = /^(["'])(.*)\1$/.exec(s);
  return m ? (m[2] ?? "") : s;
}

export type InputStep = { readonly done: true; readonly text: string } | { readonly done: false };

/**
 * Joins physical lines into one message: a trailing `\` continues the line; `"""` opens a block that runs until
 * a line ending with `"""`.
 */
export class InputAssembler {
  private lines: string[] = [];
  private block = false;
  private cont = false;

  /** True when the next line continues the current message (show a continuation prompt). */
  get continuing(): boolean {
    return this.block || this.cont;
  }

  reset(): void {
    this.lines = [];
    this.block = false;
    this.cont = false;
  }

  /**
   * A line of pasted text that is not the end of the message: kept as is (no `\` needed). Inside a `"""` block it
   * is an ordinary block line (and a closing `"""` still closes the block, but the message waits for Enter).
   */
  pushRaw(line: string): void {
    if (this.block) {
      const t = line.trimEnd();
      if (t.endsWith('"""')) {
        this.lines.push(t.slice(0, -3));
        this.block = false;
        this.cont = true;
        return;
      }
      this.lines.push(line);
      return;
    }
    if (!this.cont && this.lines.length === 0 && line.trimStart().startsWith('"""')) {
      const after = line.trimStart().slice(3);
      this.block = true;
      if (after.trim() !== "") this.lines.push(after);
      return;
    }
    this.lines.push(line.endsWith("\\") && !line.endsWith("\\\\") ? line.slice(0, -1) : line);
    this.cont = true;
  }

  push(line: string): InputStep {
    if (this.block) {
      const t = line.trimEnd();
      if (t.endsWith('"""')) {
        this.lines.push(t.slice(0, -3));
        return this.finish();
      }
      this.lines.push(line);
      return { done: false };
    }
    if (!this.cont && line.trimStart().startsWith('"""')) {
      const after = line.trimStart().slice(3);
      const t = after.trimEnd();
      if (t.endsWith('"""') && t.length >= 3) {
        this.lines.push(t.slice(0, -3));
        return this.finish();
      }
      this.block = true;
      if (after.trim() !== "") this.lines.push(after);
      return { done: false };
    }
    if (/(^|[^\\])\\$/.test(line)) {
      this.lines.push(line.slice(0, -1));
      this.cont = true;
      return { done: false };
    }
    this.lines.push(line);
    return this.finish();
  }

  private finish(): InputStep {
    const text = this.lines
      .join("\n")
      .replace(/^([ \t]*\n)+/, "")
      .replace(/\s+$/, "");
    this.reset();
    return { done: true, text };
  }
}
