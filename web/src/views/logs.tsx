import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { follow } from "../api.js";
import { ansiSegments, stripAnsi, type Segment } from "../ansi.js";

const KEEP = 5000;

export function LogsView({ models }: { models: string[] }) {
  const [source, setSource] = useState("");
  const [lines, setLines] = useState<string[]>([]);
  const [query, setQuery] = useState("");
  const [followTail, setFollowTail] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const ac = new AbortController();
    setLines([]);
    const path = source === "" ? "/api/proxy/logs" : `/api/logs/${encodeURIComponent(source)}`;
    let first = true;
    follow(
      `${path}?lines=1000&follow=1`,
      (data) => {
        let line: string;
        try {
          line = JSON.parse(data) as string;
        } catch {
          line = data;
        }
        setLines((p) => {
          const next = p.length >= KEEP ? p.slice(p.length - KEEP + 1) : p.slice();
          next.push(line);
          return next;
        });
      },
      ac.signal,
      () => {
        if (!first) setLines([]);
        first = false;
      },
    );
    return () => ac.abort();
  }, [source]);
  const shown = useMemo(() => {
    if (!query) return lines;
    const q = query.toLowerCase();
    return lines.filter((l) => stripAnsi(l).toLowerCase().includes(q));
  }, [lines, query]);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && followTail) el.scrollTop = el.scrollHeight;
  }, [shown, followTail]);
  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    if (atEnd !== followTail) setFollowTail(atEnd);
  };
  return (
    <div class="logs">
      <div class="toolbar">
        <label>
          Log{" "}
          <select value={source} onChange={(e) => setSource((e.target as HTMLSelectElement).value)}>
            <option value="">the proxy</option>
            {models.map((n) => (
              <option key={n} value={n}>
                {n} (llama-server)
              </option>
            ))}
          </select>
        </label>
        <label class="grow">
          <span class="sr-only">Search</span>
          <input
            type="search"
            placeholder="search"
            value={query}
            onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          <input
            type="checkbox"
            checked={followTail}
            onChange={(e) => setFollowTail((e.target as HTMLInputElement).checked)}
          />{" "}
          follow
        </label>
      </div>
      <div class="logbox" ref={box} onScroll={onScroll} tabIndex={0} aria-label="log lines" data-testid="log">
        {shown.length === 0 ? (
          <p class="muted">{lines.length === 0 ? "No lines yet." : "No line matches."}</p>
        ) : (
          shown.map((l, i) => <LogLine key={i} line={l} />)
        )}
      </div>
    </div>
  );
}

/** llama.cpp's level letter after the timestamp (`0.00.012.931 E srv …`): errors and warnings stand out. */
const LEVEL = /^\S+ ([EW]) /;

function LogLine({ line }: { line: string }) {
  const segs = ansiSegments(line);
  const level = LEVEL.exec(line)?.[1];
  return (
    <div class={level === "E" ? "line lvl-e" : level === "W" ? "line lvl-w" : "line"}>
      {segs.map((s, i) => (
        <span key={i} class={classes(s)} style={inline(s)}>
          {s.text}
        </span>
      ))}
    </div>
  );
}

function classes(s: Segment): string | undefined {
  const c: string[] = [];
  if (typeof s.fg === "number") c.push(`fg${s.fg}`);
  if (typeof s.bg === "number") c.push(`bg${s.bg}`);
  if (s.bold) c.push("b");
  if (s.dim) c.push("dim");
  if (s.italic) c.push("i");
  if (s.underline) c.push("u");
  return c.length > 0 ? c.join(" ") : undefined;
}

function inline(s: Segment): Record<string, string> | undefined {
  if (typeof s.fg !== "string" && typeof s.bg !== "string") return undefined;
  const st: Record<string, string> = {};
  if (typeof s.fg === "string") st.color = s.fg;
  if (typeof s.bg === "string") st.backgroundColor = s.bg;
  return st;
}
