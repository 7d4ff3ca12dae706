import { StderrLoadingTurn } from "./turn-plain.js";
import type { TurnOutcome, TurnResult } from "./turn.js";

/** --json: one JSON object per answer on stdout, when it ends; loading on stderr, nothing else while it streams. */
export class JsonTurn extends StderrLoadingTurn {
  protected showThinking(): void {}

  protected foldThinking(): void {}

  protected showAnswer(): void {}

  protected finish(_outcome: TurnOutcome, result: TurnResult): void {
    this.o.out.write(JSON.stringify(jsonRecord(result)) + "\n");
  }
}

function jsonRecord(r: TurnResult): Record<string, unknown> {
  return {
    model: r.model,
    answer: r.answer,
    thinking: r.thinking,
    finish_reason: r.finishReason ?? null,
    cancelled: r.cancelled,
    ...(r.error ? { error: r.error } : {}),
    stats: {
      ttft_ms: round(r.stats.ttftMs),
      thinking_ms: round(r.stats.thinkingMs),
      total_ms: round(r.stats.totalMs),
      prompt_tokens: r.stats.promptTokens ?? null,
      cached_tokens: r.stats.cachedTokens ?? null,
      generated_tokens: r.stats.generatedTokens ?? null,
      tokens_per_second: r.stats.tokensPerSecond !== undefined ? Math.round(r.stats.tokensPerSecond * 100) / 100 : null,
    },
  };
}

function round(n: number | undefined): number | null {
  return n === undefined ? null : Math.round(n);
}
