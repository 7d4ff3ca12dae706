/**
 * llama-server's slot actions (`POST /slots/{id}?action=save|restore`) and slot count, each with a deadline. Never
 * throws: a failure or a timeout is a result, so a stop or a request is never held up or failed by a save.
 */
import { errorOfJson, errorOfText } from "../../core/upstream-error.js";

export type SlotResult =
  | {
      ok: true;
      tokens: number;
      bytes: number;
      ms: number;
      /** Context checkpoints saved or restored with the slot (llama-server with our slot-checkpoints patch). */
      checkpoints?: number;
    }
  | { ok: false; error: string; timedOut: boolean };

function describe(e: unknown): { error: string; timedOut: boolean } {
  const err = e as Error;
  const timedOut = err?.name === "TimeoutError" || err?.name === "AbortError";
  return { error: timedOut ? "timed out" : (err?.message ?? String(e)), timedOut };
}

async function post(url: string, body: unknown, timeoutMs: number): Promise<{ status: number; json: unknown }> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? "" : JSON.stringify(body),
    signal: AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs))),
  });
  const text = await r.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json };
}

function errorText(status: number, json: unknown): string {
  const msg = (typeof json === "string" ? errorOfText(json, "") : errorOfJson(json))?.message;
  return `HTTP ${status}${msg ? `: ${msg}` : ""}`;
}

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/**
 * One slot action; llama-server answers it with the tokens and bytes under the action's own keys, and
 * `n_checkpoints` only where the slot-checkpoints patch is in.
 */
async function slotAction(
  baseUrl: string,
  id: number,
  action: "save" | "restore",
  filename: string,
  timeoutMs: number,
): Promise<SlotResult> {
  const t0 = performance.now();
  try {
    const r = await post(`${baseUrl}/slots/${id}?action=${action}`, { filename }, timeoutMs);
    if (r.status !== 200) return { ok: false, error: errorText(r.status, r.json), timedOut: false };
    const j = r.json as Record<string, unknown>;
    const [tokens, bytes] = action === "save" ? [j.n_saved, j.n_written] : [j.n_restored, j.n_read];
    const ckpt = j.n_checkpoints;
    return {
      ok: true,
      tokens: num(tokens),
      bytes: num(bytes),
      ms: performance.now() - t0,
      ...(typeof ckpt === "number" && Number.isInteger(ckpt) ? { checkpoints: ckpt } : {}),
    };
  } catch (e) {
    return { ok: false, ...describe(e) };
  }
}

export function saveSlot(baseUrl: string, id: number, filename: string, timeoutMs: number): Promise<SlotResult> {
  return slotAction(baseUrl, id, "save", filename, timeoutMs);
}

/** The least time one restore gets, ms: a restore that takes longer has wedged llama-server (see restoreBoundMs). */
export const RESTORE_MIN_MS = 5_000;
/** The slowest read a restore is allowed beyond that, bytes per second (a slow disk still restores gigabytes). */
export const RESTORE_MIN_BYTES_PER_S = 50 * 1024 * 1024;

/**
 * Pure: how long one restore of a `bytes`-byte file may take before llama-server is taken for wedged (a restore
 * runs on its main loop: nothing else is served meanwhile), within the `leftMs` of the load's restore budget.
 */
export function restoreBoundMs(bytes: number, leftMs: number): number {
  return Math.max(0, Math.min(leftMs, RESTORE_MIN_MS + (bytes / RESTORE_MIN_BYTES_PER_S) * 1000));
}

export function restoreSlot(baseUrl: string, id: number, filename: string, timeoutMs: number): Promise<SlotResult> {
  return slotAction(baseUrl, id, "restore", filename, timeoutMs);
}

/** The server's slot count (`total_slots` of GET /props); undefined when it cannot be read in time. */
export async function slotCount(baseUrl: string, timeoutMs: number): Promise<number | undefined> {
  try {
    const r = await fetch(`${baseUrl}/props`, { signal: AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs))) });
    if (r.status !== 200) return undefined;
    const n = ((await r.json()) as { total_slots?: unknown }).total_slots;
    return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export interface SlotUsage {
  count: number;
  /** The slots that ran a task in this process. */
  used: Set<number>;
  /** Tokens a used slot holds, about: its last task's prompt plus what it generated. */
  tokens: Map<number, number>;
}

interface SlotJson {
  id?: unknown;
  id_task?: unknown;
  n_prompt_tokens?: unknown;
  next_token?: unknown;
}

/**
 * The slots (GET /slots) and which of them ran a task in this process (llama-server lists `id_task` only for those):
 * a slot that never did holds nothing this process computed, so there is nothing new to save. Undefined when the
 * endpoint is off (`--no-slots`) or does not answer in time.
 */
export async function slotUsage(baseUrl: string, timeoutMs: number): Promise<SlotUsage | undefined> {
  try {
    const r = await fetch(`${baseUrl}/slots`, { signal: AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs))) });
    if (r.status !== 200) return undefined;
    const slots: unknown = await r.json();
    if (!Array.isArray(slots) || slots.length === 0) return undefined;
    const used = new Set<number>();
    const tokens = new Map<number, number>();
    for (const s of slots as SlotJson[]) {
      if (typeof s.id !== "number" || typeof s.id_task !== "number") continue;
      used.add(s.id);
      const decoded = Array.isArray(s.next_token) ? (s.next_token[0] as { n_decoded?: unknown })?.n_decoded : 0;
      if (typeof s.n_prompt_tokens === "number") tokens.set(s.id, s.n_prompt_tokens + num(decoded));
    }
    return { count: slots.length, used, tokens };
  } catch {
    return undefined;
  }
}
