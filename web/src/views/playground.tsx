import { useEffect, useRef, useState } from "preact/hooks";
import { getJson, postJson, readSse, request } from "../api.js";
import { AnswerFolder, type Answer } from "../chat.js";
import { ms, num } from "../format.js";
import type { ConfigReport } from "../../../src/proxy/api-types.js";

interface Turn {
  role: "user" | "assistant";
  content: string;
  answer?: Answer;
}

export function PlaygroundView({ models }: { models: string[] }) {
  const [model, setModel] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [input, setInput] = useState("");
  const [maxTokens, setMaxTokens] = useState(256);
  const [running, setRunning] = useState<AbortController | undefined>();
  const [endpoints, setEndpoints] = useState<Map<string, string[]>>(new Map());
  const log = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!model && models.length > 0) setModel(models[0]!);
  }, [models, model]);
  useEffect(() => {
    getJson<ConfigReport>("/api/config").then(
      (c) => setEndpoints(new Map(c.models.map((m) => [m.name, m.endpoints]))),
      () => {},
    );
  }, []);
  useEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [turns]);

  const send = async () => {
    const text = input.trim();
    if (!text || !model || running) return;
    const history: Turn[] = [...turns, { role: "user", content: text }];
    const folder = new AnswerFolder();
    setTurns([...history, { role: "assistant", content: "", answer: { ...folder.answer } }]);
    setInput("");
    const ac = new AbortController();
    setRunning(ac);
    const show = () =>
      setTurns([
        ...history,
        {
          role: "assistant",
          content: folder.answer.content,
          answer: { ...folder.answer, stats: { ...folder.answer.stats } },
        },
      ]);
    try {
      const r = await request("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model,
          stream: true,
          max_tokens: maxTokens,
          messages: history.map((t) => ({ role: t.role, content: t.content })),
        }),
        signal: ac.signal,
      });
      await readSse(r, (d) => folder.push(d) && show(), ac.signal);
      if (ac.signal.aborted) folder.answer.stats.finishReason = "stopped";
    } catch (e) {
      if (!ac.signal.aborted) folder.answer.error = (e as Error).message;
    }
    folder.finish();
    show();
    setRunning(undefined);
  };

  const eps = endpoints.get(model) ?? ["chat"];
  return (
    <div class="playground">
      <div class="toolbar">
        <label>
          Model{" "}
          <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
            {models.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          max tokens{" "}
          <input
            type="number"
            min={1}
            max={32768}
            value={maxTokens}
            class="narrow"
            onInput={(e) => setMaxTokens(Number((e.target as HTMLInputElement).value) || 256)}
          />
        </label>
        <button type="button" onClick={() => setTurns([])} disabled={running !== undefined || turns.length === 0}>
          Clear
        </button>
      </div>
      <div class="chat" ref={log} aria-live="polite" data-testid="chat">
        {turns.length === 0 ? <p class="muted">Ask something; the answer streams in.</p> : null}
        {turns.map((t, i) => (
          <div key={i} class={`turn ${t.role}`}>
            {t.answer?.thinking ? (
              <details class="thinking" open={!t.answer.done} data-testid="thinking">
                <summary>thinking{t.answer.done ? "" : "…"}</summary>
                <div class="text">{t.answer.thinking}</div>
              </details>
            ) : null}
            {t.role === "user" || t.content ? (
              <div class="text" data-testid={t.role === "assistant" ? "answer" : undefined}>
                {t.content}
              </div>
            ) : null}
            {t.answer?.error ? (
              <p class="error" role="alert">
                {t.answer.error}
              </p>
            ) : null}
            {t.answer ? <Stats a={t.answer} /> : null}
          </div>
        ))}
      </div>
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <label class="grow">
          <span class="sr-only">Message</span>
          <textarea
            rows={2}
            value={input}
            placeholder="Message (Enter sends, Shift+Enter adds a line)"
            onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                void send();
              }
            }}
          />
        </label>
        {running ? (
          <button type="button" class="stop" onClick={() => running.abort()}>
            Stop
          </button>
        ) : (
          <button type="submit" disabled={!model || !input.trim()}>
            Send
          </button>
        )}
      </form>
      {eps.includes("embeddings") || eps.includes("rerank") ? <VectorTry model={model} endpoints={eps} /> : null}
    </div>
  );
}

function Stats({ a }: { a: Answer }) {
  const s = a.stats;
  if (!a.done && s.firstTokenMs === undefined) return <p class="stats muted small">waiting for the first token…</p>;
  return (
    <p class="stats muted small" data-testid="stats">
      {s.generatedTokens !== undefined ? `${s.generatedTokens} tokens` : ""}
      {s.tokensPerSecond !== undefined ? ` · ${num(s.tokensPerSecond, 1)} tokens/s` : ""}
      {s.promptTokens !== undefined ? ` · prompt ${s.promptTokens}` : ""}
      {s.cachedTokens ? ` + ${s.cachedTokens} cached` : ""}
      {s.firstTokenMs !== undefined ? ` · first token ${ms(s.firstTokenMs)}` : ""}
      {s.totalMs !== undefined ? ` · total ${ms(s.totalMs)}` : ""}
      {s.finishReason ? ` · ${s.finishReason}` : ""}
    </p>
  );
}

function VectorTry({ model, endpoints }: { model: string; endpoints: string[] }) {
  const [text, setText] = useState("");
  const [query, setQuery] = useState("");
  const [out, setOut] = useState<string>("");
  const embed = async () => {
    try {
      const r = await postJson<{ data: Array<{ embedding: number[] }> }>("/v1/embeddings", {
        model,
        input: text.split("\n").filter(Boolean),
      });
      setOut(
        r.data
          .map(
            (d, i) =>
              `#${i}: ${d.embedding.length} dims [${d.embedding
                .slice(0, 6)
                .map((v) => v.toFixed(4))
                .join(", ")}, …]`,
          )
          .join("\n"),
      );
    } catch (e) {
      setOut((e as Error).message);
    }
  };
  const rerank = async () => {
    const docs = text.split("\n").filter(Boolean);
    try {
      const r = await postJson<{ results: Array<{ index: number; relevance_score: number }> }>("/v1/rerank", {
        model,
        query,
        documents: docs,
      });
      setOut(
        r.results
          .sort((a, b) => b.relevance_score - a.relevance_score)
          .map((x) => `${x.relevance_score.toFixed(4)}  ${docs[x.index] ?? ""}`)
          .join("\n"),
      );
    } catch (e) {
      setOut((e as Error).message);
    }
  };
  return (
    <section class="vectors">
      <h3>Embeddings / rerank</h3>
      {endpoints.includes("rerank") ? (
        <input
          type="text"
          placeholder="query (rerank)"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
      ) : null}
      <textarea
        rows={3}
        placeholder="one text per line"
        value={text}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
      />
      <div class="actions">
        {endpoints.includes("embeddings") ? (
          <button type="button" onClick={() => void embed()}>
            Embed
          </button>
        ) : null}
        {endpoints.includes("rerank") ? (
          <button type="button" onClick={() => void rerank()}>
            Rerank
          </button>
        ) : null}
      </div>
      {out ? <pre>{out}</pre> : null}
    </section>
  );
}
