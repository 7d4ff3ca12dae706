// @ts-check
// nlohmann::json parse error messages (malformed request bodies answer 500 with this text)

export const CTRL_NAMES = [
  "NUL",
  "SOH",
  "STX",
  "ETX",
  "EOT",
  "ENQ",
  "ACK",
  "BEL",
  "BS",
  "HT",
  "LF",
  "VT",
  "FF",
  "CR",
  "SO",
  "SI",
  "DLE",
  "DC1",
  "DC2",
  "DC3",
  "DC4",
  "NAK",
  "SYN",
  "ETB",
  "CAN",
  "EM",
  "SUB",
  "ESC",
  "FS",
  "GS",
  "RS",
  "US",
];
export const CTRL_SHORT = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r" };
export function jsonParseErrorMessage(text) {
  const s = text;
  let i = 0;
  let line = 1;
  let col = 0;
  let tokStr = "";
  const EOF = null;
  const get = () => {
    col++;
    if (i >= s.length) return EOF;
    const ch = s[i++];
    tokStr += ch;
    if (ch === "\n") {
      line++;
      col = 0;
    }
    return ch;
  };
  const unget = () => {
    col--;
    i--;
    tokStr = tokStr.slice(0, -1);
  };
  let lexErr = "";
  const scan = () => {
    // like nlohmann's lexer, the "last read" text is only reset when a string or a number starts
    let ch;
    do ch = get();
    while (ch === " " || ch === "\t" || ch === "\n" || ch === "\r");
    if (ch === EOF) return "end of input";
    if ("[]{}:,".includes(ch)) return `'${ch}'`;
    if (ch === '"' || ch === "-" || (ch >= "0" && ch <= "9")) tokStr = ch;
    if (ch === '"') {
      for (;;) {
        const c = get();
        if (c === EOF) return ((lexErr = "invalid string: missing closing quote"), "<parse error>");
        if (c === '"') return "string literal";
        const code = c.charCodeAt(0);
        if (code < 0x20) {
          const hex = code.toString(16).toUpperCase().padStart(4, "0");
          lexErr = `invalid string: control character U+${hex} (${CTRL_NAMES[code]}) must be escaped to \\u${hex}${CTRL_SHORT[code] ? ` or ${CTRL_SHORT[code]}` : ""}`;
          return "<parse error>";
        }
        if (c === "\\") {
          const e = get();
          if (e === EOF) return ((lexErr = "invalid string: missing closing quote"), "<parse error>");
          if (!'"\\/bfnrtu'.includes(e))
            return ((lexErr = "invalid string: forbidden character after backslash"), "<parse error>");
        }
      }
    }
    if (ch === "-" || (ch >= "0" && ch <= "9")) {
      let c = ch;
      if (c === "-") {
        c = get();
        if (c === EOF || !(c >= "0" && c <= "9"))
          return ((lexErr = "invalid number; expected digit after '-'"), "<parse error>");
      }
      if (c !== "0") while ((c = get()) !== EOF && c >= "0" && c <= "9");
      else c = get();
      if (c === ".") {
        c = get();
        if (c === EOF || !(c >= "0" && c <= "9"))
          return ((lexErr = "invalid number; expected digit after '.'"), "<parse error>");
        while ((c = get()) !== EOF && c >= "0" && c <= "9");
      }
      if (c === "e" || c === "E") {
        c = get();
        if (c === "+" || c === "-") {
          c = get();
          if (c === EOF || !(c >= "0" && c <= "9"))
            return ((lexErr = "invalid number; expected digit after exponent sign"), "<parse error>");
        } else if (c === EOF || !(c >= "0" && c <= "9"))
          return ((lexErr = "invalid number; expected '+', '-', or digit after exponent"), "<parse error>");
        while ((c = get()) !== EOF && c >= "0" && c <= "9");
      }
      unget();
      return "number literal";
    }
    for (const lit of ["true", "false", "null"]) {
      if (ch === lit[0]) {
        for (let k = 1; k < lit.length; k++) {
          if (get() !== lit[k]) return ((lexErr = "invalid literal"), "<parse error>");
        }
        return `${lit} literal`;
      }
    }
    lexErr = "invalid literal";
    return "<parse error>";
  };
  class PErr extends Error {}
  let last = "";
  const fail = (context, expected) => {
    let m = `syntax error while parsing ${context} - `;
    if (last === "<parse error>")
      m += `${lexErr}; last read: '${tokStr.replace(/[\x00-\x1f]/g, (c) => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}>`)}'`;
    else m += `unexpected ${last}`;
    if (expected) m += `; expected ${expected}`;
    throw new PErr(`[json.exception.parse_error.101] parse error at line ${line}, column ${col}: ${m}`);
  };
  const next = () => (last = scan());
  const LIT = "'[', '{', or a literal";
  // read through a function: `last` changes inside next(), which TypeScript's narrowing does not see
  const cur = () => last;
  const parseValue = () => {
    if (cur() === "'{'") {
      next();
      if (cur() === "'}'") return;
      for (;;) {
        if (cur() !== "string literal") fail("object key", "string literal");
        next();
        if (cur() !== "':'") fail("object separator", "':'");
        next();
        parseValue();
        next();
        if (cur() === "','") {
          next();
          continue;
        }
        if (cur() === "'}'") return;
        fail("object", "'}'");
      }
    }
    if (cur() === "'['") {
      next();
      if (cur() === "']'") return;
      for (;;) {
        parseValue();
        next();
        if (cur() === "','") {
          next();
          continue;
        }
        if (cur() === "']'") return;
        fail("array", "']'");
      }
    }
    if (/literal$/.test(last) && cur() !== "<parse error>") return;
    if (cur() === "<parse error>") fail("value", "");
    fail("value", LIT);
  };
  if (s.trim() === "") {
    for (const ch of s) if (ch === "\n") line++;
    return `[json.exception.parse_error.101] parse error at line ${line}, column ${s.length - s.lastIndexOf("\n")}: attempting to parse an empty input; check that your input string or stream contains the expected JSON`;
  }
  try {
    next();
    parseValue();
    next();
    if (last !== "end of input") fail("value", "end of input");
    return null;
  } catch (e) {
    if (e instanceof PErr) return e.message;
    throw e;
  }
}
