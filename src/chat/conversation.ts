import { mkdir, writeFile } from "node:fs/promises";
import { dirname, extname, resolve } from "node:path";
import type { TurnStats } from "./render.js";

/** The conversation of one chat session: what is sent upstream, and what /save writes. */

export interface UserTurn {
  readonly role: "user";
  readonly content: string;
  readonly at: string;
}

export interface AssistantTurn {
  readonly role: "assistant";
  readonly content: string;
  readonly thinking?: string;
  readonly model: string;
  readonly at: string;
  readonly finishReason?: string;
  readonly cancelled?: boolean;
  readonly stats?: TurnStats;
}

export type Turn = UserTurn | AssistantTurn;

export interface RequestMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export class Conversation {
  system: string | undefined;
  private turns: Turn[] = [];

  constructor(
    public model: string,
    system?: string,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.system = system && system.trim() !== "" ? system : undefined;
  }

  get history(): readonly Turn[] {
    return this.turns;
  }

  addUser(content: string): void {
    this.turns.push({ role: "user", content, at: this.clock().toISOString() });
  }

  addAssistant(t: Omit<AssistantTurn, "role" | "at">): void {
    this.turns.push({ role: "assistant", at: this.clock().toISOString(), ...t });
  }

  /** Drop the last user message (its answer was cancelled before any text, or failed). */
  dropLastUser(): void {
    const last = this.turns[this.turns.length - 1];
    if (last?.role === "user") this.turns.pop();
  }

  clear(): void {
    this.turns = [];
  }

  /** Messages for /v1/chat/completions: the system prompt, then the turns; the thinking is not sent back. */
  requestMessages(): RequestMessage[] {
    const out: RequestMessage[] = [];
    if (this.system) out.push({ role: "system", content: this.system });
    for (const t of this.turns) {
      if (t.role === "assistant" && t.content === "") continue;
      out.push({ role: t.role, content: t.content });
    }
    return out;
  }

  toJSON(): Record<string, unknown> {
    return {
      format: "gglib-chat/1",
      model: this.model,
      saved_at: this.clock().toISOString(),
      system: this.system ?? null,
      messages: this.turns.map((t) =>
        t.role === "user"
          ? { role: "user", content: t.content, at: t.at }
          : {
              role: "assistant",
              content: t.content,
              ...(t.thinking ? { thinking: t.thinking } : {}),
              model: t.model,
              at: t.at,
              ...(t.finishReason ? { finish_reason: t.finishReason } : {}),
              ...(t.cancelled ? { cancelled: true } : {}),
              ...(t.stats ? { stats: t.stats } : {}),
            },
      ),
    };
  }

  toMarkdown(): string {
    const lines: string[] = [
      `# Chat with ${this.model}`,
      "",
      `_Saved ${this.clock().toISOString()} by gglib chat._`,
      "",
    ];
    if (this.system) lines.push("## System", "", this.system, "");
    for (const t of this.turns) {
      if (t.role === "user") {
        lines.push("## User", "", t.content, "");
        continue;
      }
      lines.push(`## Assistant (${t.model})`, "");
      if (t.thinking && t.thinking.trim() !== "") {
        const secs = t.stats?.thinkingMs !== undefined ? ` for ${(t.stats.thinkingMs / 1000).toFixed(1)} s` : "";
        lines.push("<details>", `<summary>Thought${secs}</summary>`, "", t.thinking.trim(), "", "</details>", "");
      }
      lines.push(t.content === "" ? "_(no answer)_" : t.content, "");
      if (t.cancelled) lines.push("_(cancelled)_", "");
    }
    return lines.join("\n");
  }
}

export type SaveFormat = "json" | "markdown";

export function saveFormatFor(file: string): SaveFormat {
  return extname(file).toLowerCase() === ".json" ? "json" : "markdown";
}

/** Write the conversation; JSON for `.json`, markdown otherwise. Returns the absolute path and the format. */
export async function saveConversation(
  conv: Conversation,
  file: string,
  cwd = process.cwd(),
): Promise<{ path: string; format: SaveFormat }> {
  const path = resolve(cwd, file);
  const format = saveFormatFor(path);
  const text = format === "json" ? JSON.stringify(conv.toJSON(), null, 2) + "\n" : conv.toMarkdown();
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text, "utf8");
  return { path, format };
}
