/**
 * Coding-agent sessions replayed turn by turn (issue 23), in each agent API's own shape: Anthropic Messages
 * (`/v1/messages`, Claude Code), OpenAI Responses (`/v1/responses`, Codex) and OpenAI chat completions
 * (`/v1/chat/completions`, opencode). A session starts from a first request body (recorded from the real CLI by
 * bench/agent-session.ts, or a small synthetic one for tests) and grows the way the agents grow it: every request
 * resends the whole history; after an odd turn the assistant calls a tool and the next request carries the tool's
 * result (tool_use / tool_result, function_call / function_call_output, tool_calls / role "tool"); after an even
 * turn it answers in text and the user asks something new. The assistant's turns are fixed text, not what the model
 * generated, so that every server under comparison gets byte-identical prompts.
 *
 * Also: a streamed request with its first-token time and the prompt / cached token counts the server reported.
 */

export type AgentShape = "anthropic-messages" | "openai-responses" | "openai-chat";

export const SHAPE_PATH: Readonly<Record<AgentShape, string>> = {
  "anthropic-messages": "/v1/messages",
  "openai-responses": "/v1/responses",
  "openai-chat": "/v1/chat/completions",
};

type Json = Record<string, unknown>;

/** A directory listing as a tool result (~60 tokens per line with a one-character-per-token vocabulary). */
function toolOutput(turn: number): string {
  return Array.from(
    { length: 12 },
    (_, i) =>
      `-rw-r--r-- 1 dev dev ${1000 + turn * 37 + i * 11} Dec  7 12:${String(i).padStart(2, "0")} src/mod${turn}_${i}.ts`,
  ).join("\n");
}

const userAsk = (turn: number): string => `turn ${turn}: now look at the next module and tell me what it does`;
const assistantText = (turn: number): string => `Turn ${turn}: the module parses the config and returns its entries.`;
const toolArgs = (turn: number): Json => ({ command: `ls -la src/part${turn}` });

/** A tool the request offers (one named like a shell tool, else the first), for the assistant's calls. */
export function toolNameOf(shape: AgentShape, body: Json): string {
  const tools = Array.isArray(body.tools) ? (body.tools as Json[]) : [];
  const names = tools
    .map((t) =>
      shape === "openai-chat"
        ? ((t.function as Json | undefined)?.name as string | undefined)
        : (t.name as string | undefined),
    )
    .filter((n): n is string => typeof n === "string");
  return names.find((n) => /^(bash|shell|exec_command|shell_command)$/i.test(n)) ?? names[0] ?? "bash";
}

/**
 * The request of turn `turn + 1`, from the request of turn `turn` (not changed): its history plus the assistant's
 * answer to turn `turn` (a tool call when `turn` is odd) and what follows it (the tool's result, or a new question).
 */
export function nextTurn(shape: AgentShape, body: Json, turn: number, tool: string): Json {
  const call = turn % 2 === 1;
  const id = `call_${turn}`;
  switch (shape) {
    case "anthropic-messages": {
      const messages = [...(body.messages as Json[])];
      messages.push({
        role: "assistant",
        content: call
          ? [
              { type: "text", text: assistantText(turn) },
              { type: "tool_use", id: `toolu_${turn}`, name: tool, input: toolArgs(turn) },
            ]
          : [{ type: "text", text: assistantText(turn) }],
      });
      messages.push({
        role: "user",
        content: call
          ? [{ type: "tool_result", tool_use_id: `toolu_${turn}`, content: toolOutput(turn) }]
          : [{ type: "text", text: userAsk(turn + 1) }],
      });
      return { ...body, messages };
    }
    case "openai-responses": {
      const input = [...(body.input as Json[])];
      if (call) {
        input.push({ type: "function_call", call_id: id, name: tool, arguments: JSON.stringify(toolArgs(turn)) });
        input.push({ type: "function_call_output", call_id: id, output: toolOutput(turn) });
      } else {
        input.push({
          type: "message",
          role: "assistant",
          content: [{ type: "output_text", text: assistantText(turn) }],
        });
        input.push({ type: "message", role: "user", content: [{ type: "input_text", text: userAsk(turn + 1) }] });
      }
      return { ...body, input };
    }
    case "openai-chat": {
      const messages = [...(body.messages as Json[])];
      if (call) {
        messages.push({
          role: "assistant",
          content: assistantText(turn),
          tool_calls: [{ id, type: "function", function: { name: tool, arguments: JSON.stringify(toolArgs(turn)) } }],
        });
        messages.push({ role: "tool", tool_call_id: id, content: toolOutput(turn) });
      } else {
        messages.push({ role: "assistant", content: assistantText(turn) });
        messages.push({ role: "user", content: userAsk(turn + 1) });
      }
      return { ...body, messages };
    }
  }
}

/** The first request made ready to replay: the model named, streamed, at most `maxTokens` generated. */
export function replayable(shape: AgentShape, body: Json, model: string, maxTokens: number): Json {
  const b: Json = { ...body, model, stream: true };
  delete b.max_tokens;
  delete b.max_completion_tokens;
  delete b.max_output_tokens;
  if (shape === "openai-responses") b.max_output_tokens = maxTokens;
  else b.max_tokens = maxTokens;
  if (shape === "openai-chat") b.stream_options = { include_usage: true };
  return b;
}

/** The `turns` request bodies of a session that starts with `first` (already replayable). */
export function sessionBodies(shape: AgentShape, first: Json, turns: number): Json[] {
  const tool = toolNameOf(shape, first);
  const out = [first];
  for (let t = 1; t < turns; t++) out.push(nextTurn(shape, out[t - 1]!, t, tool));
  return out;
}

/** A small first request in each shape (a system prompt, two tools, a question), for tests without a real CLI. */
export function syntheticFirst(shape: AgentShape, model: string, systemChars = 6000): Json {
  const system =
    "You are a coding agent working in a repository. " +
    Array.from({ length: Math.ceil(systemChars / 60) }, (_, i) => `Rule ${i}: keep changes small and tested.`).join(
      " ",
    );
  const params = {
    type: "object",
    properties: { command: { type: "string", description: "the command line" } },
    required: ["command"],
  };
  const readParams = {
    type: "object",
    properties: { path: { type: "string", description: "the file" } },
    required: ["path"],
  };
  const ask = userAsk(1);
  switch (shape) {
    case "anthropic-messages":
      return {
        model,
        system: [{ type: "text", text: system }],
        tools: [
          { name: "Bash", description: "Run a shell command", input_schema: params },
          { name: "Read", description: "Read a file", input_schema: readParams },
        ],
        messages: [{ role: "user", content: [{ type: "text", text: ask }] }],
        max_tokens: 8,
      };
    case "openai-responses":
      return {
        model,
        instructions: system,
        tools: [
          { type: "function", name: "shell", description: "Run a shell command", parameters: params, strict: false },
          { type: "function", name: "read", description: "Read a file", parameters: readParams, strict: false },
        ],
        input: [{ type: "message", role: "user", content: [{ type: "input_text", text: ask }] }],
        max_output_tokens: 8,
      };
    case "openai-chat":
      return {
        model,
        messages: [
          { role: "system", content: system },
          { role: "user", content: ask },
        ],
        tools: [
          { type: "function", function: { name: "bash", description: "Run a shell command", parameters: params } },
          { type: "function", function: { name: "read", description: "Read a file", parameters: readParams } },
        ],
        max_tokens: 8,
      };
  }
}

export interface StreamedTurn {
  status: number;
  /** ms from sending the request to the first event that carries generated text (or to the end, when none did). */
  firstTokenMs: number;
  totalMs: number;
  /** Prompt tokens in all (evaluated + reused), when the server said. */
  promptTokens: number | null;
  /** Prompt tokens taken from the server's cache (llama-server `timings.cache_n`, or the API's cached count). */
  cachedTokens: number | null;
  text: string;
}

/** The last number a regex's first group matches in `s`, or null. */
function lastNumber(s: string, re: RegExp): number | null {
  let v: number | null = null;
  for (const m of s.matchAll(re)) v = Number(m[1]);
  return v;
}

/** Prompt / cached tokens from a streamed answer: llama-server's timings when present, else the API's usage. */
export function countsOf(sse: string): { promptTokens: number | null; cachedTokens: number | null } {
  const cacheN = lastNumber(sse, /"cache_n":(\d+)/g);
  const promptN = lastNumber(sse, /"prompt_n":(\d+)/g);
  if (cacheN !== null && promptN !== null) return { promptTokens: cacheN + promptN, cachedTokens: cacheN };
  // Anthropic's input_tokens leaves out the tokens read from the cache; OpenAI's prompt/input tokens include them
  const cacheRead = lastNumber(sse, /"cache_read_input_tokens":(\d+)/g);
  if (cacheRead !== null) {
    const input = lastNumber(sse, /"input_tokens":(\d+)/g);
    return { promptTokens: input === null ? null : input + cacheRead, cachedTokens: cacheRead };
  }
  return {
    promptTokens: lastNumber(sse, /"(?:input_tokens|prompt_tokens)":(\d+)/g),
    cachedTokens: lastNumber(sse, /"cached_tokens":(\d+)/g),
  };
}

const GENERATED = /"(?:text|delta|content|reasoning_content)":"[^"]/;

/** One streamed request: first-token time and the server's token counts. */
export async function streamTurn(
  baseUrl: string,
  shape: AgentShape,
  body: Json,
  headers: Record<string, string> = {},
): Promise<StreamedTurn> {
  const t0 = performance.now();
  const r = await fetch(`${baseUrl}${SHAPE_PATH[shape]}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  let firstTokenMs: number | undefined;
  let all = "";
  if (r.body) {
    const dec = new TextDecoder();
    let pending = "";
    for await (const chunk of r.body) {
      const s = dec.decode(chunk as Uint8Array, { stream: true });
      all += s;
      if (firstTokenMs !== undefined) continue;
      pending += s;
      const events = pending.split("\n\n");
      pending = events.pop()!;
      // an event with generated text (not the echo of the request in a `created` event)
      if (events.some((e) => GENERATED.test(e) && !/"type":"(?:response\.created|response\.in_progress)"/.test(e)))
        firstTokenMs = performance.now() - t0;
    }
  }
  const totalMs = performance.now() - t0;
  let text = "";
  for (const m of all.matchAll(/"(?:text|delta|content)":"((?:[^"\\]|\\.)*)"/g)) {
    try {
      text += JSON.parse(`"${m[1]}"`) as string;
    } catch {
      // a partial escape: not needed for the counts
    }
  }
  return {
    status: r.status,
    firstTokenMs: firstTokenMs ?? totalMs,
    totalMs,
    ...countsOf(all),
    text: r.status === 200 ? text : all.slice(0, 500),
  };
}
