// @ts-check
// text: fake tokenizer and the words the "model" says
import { opt } from "./args.mjs";
import { S } from "./state.mjs";

export const WORDS = [
  "Hello",
  " from",
  " the",
  " fake",
  " llama",
  "-server",
  ".",
  " Ça",
  " marche",
  " très",
  " bien",
  " 🙂",
  " 微",
  "笑",
  " again",
  ",",
];
export const THINK_WORDS = ["Let", " me", " think", " about", " this", " carefully", "."];
export const SPECIAL_IDS = {
  "<unk>": 0,
  "<s>": 1,
  "</s>": 2,
  "<|im_start|>": 32001,
  "<|im_end|>": 32002,
  "<think>": 32003,
  "</think>": 32004,
};
export const pieceById = new Map(Object.entries(SPECIAL_IDS).map(([p, id]) => [id, p]));
export function pieceId(p) {
  if (p in SPECIAL_IDS) return SPECIAL_IDS[p];
  let h = 0x811c9dc5;
  for (let i = 0; i < p.length; i++) h = Math.imul(h ^ p.charCodeAt(i), 0x01000193) >>> 0;
  const id = 259 + (h % 31000);
  if (!pieceById.has(id)) pieceById.set(id, p);
  return id;
}
export function tokenizePieces(text, addSpecial) {
  const out = addSpecial ? ["<s>"] : [];
  const parts = String(text).split(/(<\|im_start\|>|<\|im_end\|>|<\/?think>|<\/?s>)/);
  let first = true;
  for (const part of parts) {
    if (!part) continue;
    if (part in SPECIAL_IDS) {
      out.push(part);
      first = false;
      continue;
    }
    const t = first && !/^\s/.test(part) ? " " + part : part;
    first = false;
    for (const m of t.match(/\s*[^\s]+|\s+/g) ?? []) out.push(m);
  }
  return out;
}
export const countTokens = (text, addSpecial = false) => tokenizePieces(text, addSpecial).length;

export function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content.map((p) => (typeof p === "string" ? p : typeof p?.text === "string" ? p.text : "")).join("");
  return "";
}
export function renderChat(messages, { thinking }) {
  let s = "";
  for (const m of messages) s += `<|im_start|>${m?.role ?? "user"}\n${textOf(m?.content)}<|im_end|>\n`;
  s += "<|im_start|>assistant\n";
  if (S.isThink) s += thinking ? "<think>\n" : "<think>\n\n</think>\n\n";
  return s;
}
export function thinkingFor(body) {
  if (!S.isThink) return false;
  if (opt.reasoning === "off" || opt.reasoningBudget === 0) return false;
  if (body?.chat_template_kwargs?.enable_thinking === false) return false;
  if (body?.reasoning_effort === "none") return false;
  return true;
}
export function renderAnthropicPrompt(body) {
  const msgs = [];
  if (body.system !== undefined) msgs.push({ role: "system", content: textOf(body.system) });
  for (const m of Array.isArray(body.messages) ? body.messages : [])
    msgs.push({ role: m?.role, content: textOf(m?.content) });
  return renderChat(msgs, { thinking: thinkingFor(body) });
}
export function renderResponsesPrompt(body) {
  const msgs = [];
  if (typeof body.instructions === "string") msgs.push({ role: "system", content: body.instructions });
  if (typeof body.input === "string") msgs.push({ role: "user", content: body.input });
  else if (Array.isArray(body.input))
    for (const it of body.input) msgs.push({ role: it?.role ?? "user", content: textOf(it?.content) });
  return renderChat(msgs, { thinking: thinkingFor(body) });
}
