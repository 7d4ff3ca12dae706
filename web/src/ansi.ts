/**
 * ANSI SGR colour codes in a log line turned into styled segments (pure; the log view renders them as spans).
 * Supports reset, bold, dim, italic, underline, the 8/16 colours (as palette indexes 0–15, themed by CSS), 256
 * colours and 24-bit colours (as CSS colours). Every other escape sequence is dropped.
 */

export interface Segment {
  text: string;
  /** Palette index 0–15, or a CSS colour for 256/24-bit colours. */
  fg?: number | string;
  bg?: number | string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
}

type Style = Omit<Segment, "text">;

// eslint-disable-next-line no-control-regex
const ESC = /\x1b\[([0-9;:]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

const CUBE = [0, 95, 135, 175, 215, 255];

function color256(n: number): number | string {
  if (n < 16) return n;
  if (n >= 232) {
    const g = 8 + (n - 232) * 10;
    return `rgb(${g},${g},${g})`;
  }
  const i = n - 16;
  return `rgb(${CUBE[Math.floor(i / 36)]},${CUBE[Math.floor(i / 6) % 6]},${CUBE[i % 6]})`;
}

function apply(style: Style, params: number[]): Style {
  const s: Style = { ...style };
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === 0) {
      for (const k of Object.keys(s)) delete (s as Record<string, unknown>)[k];
    } else if (p === 1) s.bold = true;
    else if (p === 2) s.dim = true;
    else if (p === 3) s.italic = true;
    else if (p === 4) s.underline = true;
    else if (p === 22) {
      delete s.bold;
      delete s.dim;
    } else if (p === 23) delete s.italic;
    else if (p === 24) delete s.underline;
    else if (p >= 30 && p <= 37) s.fg = p - 30;
    else if (p === 39) delete s.fg;
    else if (p >= 40 && p <= 47) s.bg = p - 40;
    else if (p === 49) delete s.bg;
    else if (p >= 90 && p <= 97) s.fg = p - 90 + 8;
    else if (p >= 100 && p <= 107) s.bg = p - 100 + 8;
    else if (p === 38 || p === 48) {
      const key = p === 38 ? "fg" : "bg";
      if (params[i + 1] === 5 && params[i + 2] !== undefined) {
        s[key] = color256(params[i + 2]! & 255);
        i += 2;
      } else if (params[i + 1] === 2 && params[i + 4] !== undefined) {
        const [r, g, b] = [params[i + 2]!, params[i + 3]!, params[i + 4]!].map((v) => Math.max(0, Math.min(255, v)));
        s[key] = `rgb(${r},${g},${b})`;
        i += 4;
      }
    }
  }
  return s;
}

function sameStyle(a: Style, b: Style): boolean {
  const ka = Object.keys(a) as Array<keyof Style>;
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

export function ansiSegments(line: string): Segment[] {
  const out: Segment[] = [];
  let style: Style = {};
  let last = 0;
  let lastStyle: Style | undefined;
  const push = (text: string) => {
    if (!text) return;
    const prev = out[out.length - 1];
    if (prev && lastStyle === style) prev.text += text;
    else out.push({ text, ...style });
    lastStyle = style;
  };
  ESC.lastIndex = 0;
  for (let m = ESC.exec(line); m; m = ESC.exec(line)) {
    push(line.slice(last, m.index));
    last = ESC.lastIndex;
    if (m[2] === "m") {
      const params = (m[1] ?? "").split(/[;:]/).map((x) => (x === "" ? 0 : Number(x)));
      const next = apply(style, params.length > 0 ? params : [0]);
      if (!sameStyle(next, style)) style = next;
    }
  }
  push(line.slice(last));
  return out;
}

/** The line without escape sequences (for search). */
export function stripAnsi(line: string): string {
  return line.replace(ESC, "");
}
