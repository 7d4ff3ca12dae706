/**
 * The page's only way to the proxy: same-origin fetches of the public management API, with the API key (when the
 * user gave one) as `Authorization: Bearer`. Event streams are read with fetch too (EventSource cannot send the
 * key). A 401 anywhere flips `auth` to "needed" and the app shows the key form; nothing else is fetched until then.
 */
import { createParser } from "eventsource-parser";

const KEY_STORE = "gglib.apiKey";

let key = sessionStorage.getItem(KEY_STORE) ?? localStorage.getItem(KEY_STORE) ?? "";
const authListeners = new Set<(needed: boolean) => void>();

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function setApiKey(k: string, remember: boolean): void {
  key = k.trim();
  sessionStorage.setItem(KEY_STORE, key);
  if (remember) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
}

export function forgetApiKey(): void {
  key = "";
  sessionStorage.removeItem(KEY_STORE);
  localStorage.removeItem(KEY_STORE);
  notifyAuth(true);
}

export function hasApiKey(): boolean {
  return key !== "";
}

export function onAuth(l: (needed: boolean) => void): () => void {
  authListeners.add(l);
  return () => authListeners.delete(l);
}

function notifyAuth(needed: boolean): void {
  for (const l of authListeners) l(needed);
}

function headers(extra?: HeadersInit): Headers {
  const h = new Headers(extra);
  if (key) h.set("authorization", `Bearer ${key}`);
  return h;
}

async function failure(r: Response): Promise<ApiError> {
  let message = `${r.status} ${r.statusText}`;
  let code = "http_error";
  try {
    const j = (await r.json()) as { error?: { message?: string; code?: string } };
    if (j.error?.message) message = j.error.message;
    if (j.error?.code) code = j.error.code;
  } catch {
    /* not JSON */
  }
  if (r.status === 401) notifyAuth(true);
  return new ApiError(r.status, code, message);
}

/** Fetch with the key; throws ApiError on a non-2xx answer. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const r = await fetch(path, { ...init, headers: headers(init.headers), cache: "no-store" });
  if (!r.ok) throw await failure(r);
  return r;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const r = await request(path, signal ? { signal } : {});
  return (await r.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const r = await request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  return (await r.json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await request(path)).text();
}

/** Reads an SSE response body, calling `onData` with each event's data, until it ends or `signal` aborts. */
export async function readSse(r: Response, onData: (data: string) => void, signal?: AbortSignal): Promise<void> {
  if (!r.body) return;
  const parser = createParser({ onEvent: (e) => onData(e.data) });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
  } catch (e) {
    if (!signal?.aborted) throw e;
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}

/**
 * Follows an SSE endpoint for as long as `signal` is not aborted: reconnects after the server ends it or the
 * connection drops (1 s, then up to 10 s apart). `onOpen` runs on each (re)connection.
 */
export function follow(
  path: string,
  onData: (data: string) => void,
  signal: AbortSignal,
  onOpen?: () => void,
  onDown?: (why: string) => void,
): void {
  let delay = 1000;
  const loop = async () => {
    while (!signal.aborted) {
      try {
        const r = await request(path, { signal, headers: { accept: "text/event-stream" } });
        onOpen?.();
        delay = 1000;
        await readSse(r, onData, signal);
        if (!signal.aborted) onDown?.("the stream ended");
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status === 401) return; // the key form takes over
        onDown?.((e as Error).message);
      }
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  void loop();
}
