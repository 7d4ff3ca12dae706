// @ts-check
// server state
import path from "node:path";
import { opt } from "./args.mjs";
import { K } from "./knobs.mjs";

export const S = {
  state: "loading", // loading | ready | shutting-down
  port: opt.port,
  meta: null,
  modelId: opt.aliases[0] ?? opt.model,
  aliases: opt.aliases.length > 0 ? opt.aliases : [opt.model],
  nCtx: 0,
  nCtxSlot: 0,
  nSlots: 4,
  kvUnified: true,
  slots: [],
  waiting: [], // resolvers waiting for a slot
  nextTask: 0,
  handled: 0,
  generations: 0,
  inFlight: new Set(), // generation jobs (running or queued)
  conns: new Set(),
  signals: 0,
  startUnix: Math.floor(Date.now() / 1000),
  metrics: {
    promptTokens: 0,
    promptCached: 0,
    promptSeconds: 0,
    predicted: 0,
    predictedSeconds: 0,
    nDecode: 0,
    nTokensMax: 0,
  },
  isThink: false,
  chatTemplate: "",
  /** wakes up pauses when the server starts shutting down */
  shutdownWaiters: new Set(),
  /** the listening server, once bound */
  server: null,
  /** the -lv 4 memory breakdown numbers, printed again at exit */
  breakdown: null,
};

export function isReasoningModel() {
  if (K.reasoning === "1") return true;
  if (K.reasoning === "0") return false;
  return path.basename(opt.model).toLowerCase().includes("think");
}

export const CHATML =
  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
