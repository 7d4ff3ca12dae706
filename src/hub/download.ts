/**
 * One file from the hub into place: resumable (HTTP Range), verified, atomic.
 *
 * Hand-written rather than @huggingface/hub's downloadFile / downloadFileToCacheDir, because those
 *   - return a Blob whose stream() cannot resume: a cut connection fails the whole file, and the ranged slice
 *     does not check that the server answered 206 from the offset asked for (a 200 from byte 0 would be appended);
 *   - write into the hub's cache layout (blobs + snapshot symlinks), not a models folder, and overwrite the
 *     `.incomplete` file instead of resuming it;
 *   - report no progress and verify no checksum.
 * Here: the bytes go to `.<name>.part` next to the destination (hidden: the models-folder scan skips dot files),
 * with `.<name>.part.json` recording which content it is (size and SHA-256), so a later run resumes it with
 * `Range: bytes=<have>-` after re-hashing what is there. A cut or stalled connection is retried from where it
 * stopped; a server that ignores the range (200) or answers another start restarts the file. At the end the SHA-256
 * (the LFS oid; for files kept in git, the git blob SHA-1) must match, else the part is removed and the download
 * refused; then fsync and rename into place. The token reaches only the hub: the download follows the hub's
 * redirect to its file storage, and fetch drops the Authorization header on a cross-origin redirect.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GglibError } from "../core/errors.js";

export interface DownloadTarget {
  url: string;
  /** Final absolute path. */
  dest: string;
  size: number;
  sha256?: string;
  /** Git blob SHA-1, for files not in LFS. */
  gitOid?: string;
}

export interface DownloadProgress {
  /** Bytes of the file in place so far (resumed bytes included). */
  completed: number;
  total: number;
  /** Bytes that came over the network in this run. */
  transferred: number;
  /** "hashing" while re-reading a partial file before resuming, else "downloading". */
  phase: "hashing" | "downloading";
}

export interface DownloadOptions {
  /** fetch that adds the token for the hub (see hubFetch). */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** Consecutive failed attempts (no byte gained) before giving up. Default 6. */
  maxAttempts?: number;
  /** First retry delay, doubled each time up to 8 s. Default 500 ms. */
  retryDelayMs?: number;
  /** No byte for this long aborts the attempt (then retried). Default 60 s. */
  stallMs?: number;
  /** Least time between two progress calls (the last one always comes). Default 100 ms. */
  progressIntervalMs?: number;
  /** Describes a 401/403/404 from the hub (status, X-Error-Code, body text) as a user-facing error. */
  httpError?: (status: number, code: string | undefined, message: string) => Error;
}

export interface DownloadResult {
  dest: string;
  /** Bytes fetched over the network by this call. */
  transferred: number;
  /** Offset a previous run's partial file was resumed from (0: fresh). */
  resumedFrom: number;
  /** How many times a cut or stalled connection was picked up again. */
  reconnects: number;
  /** Hex digest checked (sha256, or the git oid). */
  digest?: string;
}

export function partPaths(dest: string): { part: string; meta: string } {
  const part = join(dirname(dest), `.${basename(dest)}.part`);
  return { part, meta: `${part}.json` };
}

interface PartMeta {
  url: string;
  size: number;
  sha256?: string;
  gitOid?: string;
}

function newHash(t: DownloadTarget): Hash | undefined {
  if (t.sha256) return createHash("sha256");
  if (t.gitOid) return createHash("sha1").update(`blob ${t.size}\0`);
  return undefined;
}

/** The digest a file's content would be checked with (for files already in place). */
export async function digestFile(
  path: string,
  t: Pick<DownloadTarget, "sha256" | "gitOid" | "size">,
  onBytes?: (n: number) => void,
): Promise<string | undefined> {
  const h = newHash({ url: "", dest: path, ...t });
  if (!h) return undefined;
  await hashInto(h, path, undefined, onBytes);
  return h.digest("hex");
}

async function hashInto(h: Hash, path: string, end?: number, onBytes?: (n: number) => void): Promise<void> {
  if (end === 0) return;
  const stream = createReadStream(path, end !== undefined ? { end: end - 1 } : {});
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    h.update(chunk);
    n += chunk.length;
    onBytes?.(n);
  }
}

function sameContent(a: PartMeta, t: DownloadTarget): boolean {
  return a.size === t.size && a.sha256 === t.sha256 && a.gitOid === t.gitOid;
}

async function readMeta(path: string): Promise<PartMeta | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as PartMeta;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** `bytes 100-199/1000` → 100 */
function rangeStart(header: string | null): number | undefined {
  const m = /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/i.exec(header?.trim() ?? "");
  return m ? Number(m[1]) : undefined;
}

class Retry extends Error {}

/** Downloads `t.url` to `t.dest` (see the header comment). Resolves once the verified file is in place. */
export async function downloadToFile(t: DownloadTarget, o: DownloadOptions = {}): Promise<DownloadResult> {
  const doFetch = o.fetch ?? fetch;
  const maxAttempts = o.maxAttempts ?? 6;
  const retryDelay = o.retryDelayMs ?? 500;
  const stallMs = o.stallMs ?? 60_000;
  const interval = o.progressIntervalMs ?? 100;
  const { part, meta } = partPaths(t.dest);
  await mkdir(dirname(t.dest), { recursive: true });

  let transferred = 0;
  let lastEmit = 0;
  const emit: Emit = (completed, phase, force = false) => {
    const now = Date.now();
    if (!force && now - lastEmit < interval) return;
    lastEmit = now;
    o.onProgress?.({ completed, total: t.size, transferred, phase });
  };

  let { offset, hash } = await resumePoint(t, part, meta, emit);
  const resumedFrom = offset;
  const fh: FileHandle = await open(part, offset > 0 ? "r+" : "w");
  let reconnects = 0;
  try {
    await fh.truncate(offset);
    emit(offset, "downloading", true);
    let failures = 0;
    for (;;) {
      o.signal?.throwIfAborted();
      if (offset === t.size && t.size > 0) break; // a previous run got every byte
      const stall = new AbortController();
      const signal = o.signal ? AbortSignal.any([o.signal, stall.signal]) : stall.signal;
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => stall.abort(new Retry(`no data for ${stallMs} ms`)), stallMs);
      };
      const before = offset;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        await fh.write(buf, 0, buf.length, offset - buf.length);
      };
      try {
        arm();
        const headers: Record<string, string> = {};
        if (offset > 0) headers.range = `bytes=${offset}-`;
        let res: Response;
        try {
          res = await doFetch(t.url, { headers, signal });
        } catch (e) {
          throw o.signal?.aborted ? e : new Retry(`cannot connect: ${errText(e)}`);
        }
        if (res.status === 206) {
          const start = rangeStart(res.headers.get("content-range"));
          if (start !== offset) {
            await res.body?.cancel();
            throw await restart(`the server resumed at ${start ?? "?"} instead of ${offset}`);
          }
        } else if (res.status === 200) {
          if (offset > 0) await restartFromZero();
        } else if (res.status === 416) {
          await res.body?.cancel();
          throw await restart("the server refused the range (416)");
        } else {
          throw await failedResponse(res, t, o);
        }
        if (!res.body) throw new Retry("the response has no body");
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          arm();
          const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          if (offset + b.length > t.size) {
            throw new GglibError("download_failed", `${t.url} sent more than the ${t.size} bytes the hub lists.`, {
              hint: "The repo may have changed during the download; run the pull again.",
            });
          }
          hash?.update(b);
          pending.push(b);
          pendingBytes += b.length;
          offset += b.length;
          transferred += b.length;
          if (pendingBytes >= 4 << 20) await flush();
          emit(offset, "downloading");
        }
        await flush();
        if (offset < t.size) throw new Retry(`the connection closed at ${offset} of ${t.size} bytes`);
        break;
      } catch (e) {
        // keep the good bytes received before the cut
        await flush().catch(() => undefined);
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : e;
        const retry = e instanceof Retry || (stall.signal.aborted && !(e instanceof GglibError)) || isNetwork(e);
        if (!retry) throw e;
        failures = offset > before ? 1 : failures + 1;
        if (failures >= maxAttempts) {
          const why = e instanceof Error ? e.message : String(e);
          throw new GglibError(
            "download_failed",
            `Downloading ${basename(t.dest)} failed after ${failures} attempts: ${why}.`,
            { hint: `Run the same command again: it resumes from byte ${offset} (the part file is kept).` },
          );
        }
        reconnects++;
        await sleep(Math.min(8000, retryDelay * 2 ** (failures - 1)), o.signal);
      } finally {
        clearTimeout(timer);
      }
    }
    emit(offset, "downloading", true);
    await fh.sync();
  } finally {
    await fh.close();
  }

  const digest = hash?.digest("hex");
  await verifyAndPlace(t, part, meta, digest);
  const r: DownloadResult = { dest: t.dest, transferred, resumedFrom, reconnects };
  if (digest) r.digest = digest;
  return r;

  async function restartFromZero(): Promise<void> {
    offset = 0;
    hash = newHash(t);
    await fh.truncate(0);
  }
  async function restart(why: string): Promise<Retry> {
    await restartFromZero();
    return new Retry(why);
  }
}

type Emit = (completed: number, phase: DownloadProgress["phase"], force?: boolean) => void;

/** Where a download starts: after the bytes of an earlier run's part file of the same content (re-hashed), else 0
 * with a fresh record of which content the part file holds. */
async function resumePoint(
  t: DownloadTarget,
  part: string,
  meta: string,
  emit: Emit,
): Promise<{ offset: number; hash: Hash | undefined }> {
  let offset = 0;
  const old = await readMeta(meta);
  const have = await stat(part).then(
    (s) => s.size,
    () => -1,
  );
  if (old && sameContent(old, t) && have > 0 && have <= t.size) offset = have;
  const hash = newHash(t);
  if (offset > 0 && hash) {
    emit(0, "hashing", true);
    await hashInto(hash, part, offset, (n) => emit(n, "hashing"));
  }
  if (offset === 0) {
    const m: PartMeta = { url: t.url, size: t.size };
    if (t.sha256) m.sha256 = t.sha256;
    if (t.gitOid) m.gitOid = t.gitOid;
    await writeFile(meta, JSON.stringify(m) + "\n");
  }
  return { offset, hash };
}

/** Why a response that is neither 200, 206 nor 416 failed: a Retry for 429/5xx, else the user-facing error. */
async function failedResponse(res: Response, t: DownloadTarget, o: DownloadOptions): Promise<Error> {
  const text = await res.text().catch(() => "");
  if (res.status === 429 || res.status >= 500) return new Retry(`the server answered ${res.status}`);
  let message = text.trim().slice(0, 300);
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === "string") message = j.error;
  } catch {
    /* not JSON */
  }
  const code = res.headers.get("x-error-code") ?? undefined;
  return (
    o.httpError?.(res.status, code, message) ??
    new GglibError("download_failed", `${t.url} answered ${res.status}: ${message}`)
  );
}

/** The part file's digest must be the hub's (else the part is removed and the download refused); then into place. */
async function verifyAndPlace(
  t: DownloadTarget,
  part: string,
  meta: string,
  digest: string | undefined,
): Promise<void> {
  const expected = t.sha256 ?? t.gitOid;
  if (expected && digest !== expected.toLowerCase()) {
    await rm(part, { force: true });
    await rm(meta, { force: true });
    throw new GglibError(
      "checksum_mismatch",
      `${basename(t.dest)} does not match the hub's checksum (${t.sha256 ? "SHA-256" : "git SHA-1"} ${digest} instead of ${expected}); the download was removed.`,
      { hint: "Run the pull again; if it fails the same way, the file storage or a proxy in between serves bad data." },
    );
  }
  await rename(part, t.dest);
  await rm(meta, { force: true });
}

function errText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? e.cause.message : undefined;
  return cause ? `${e.message} (${cause})` : e.message;
}

/** Socket-level failures while reading a body (undici: "terminated", ECONNRESET, "other side closed"). */
function isNetwork(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const text = `${e.name} ${e.message} ${e.cause instanceof Error ? `${e.cause.name} ${e.cause.message} ${(e.cause as NodeJS.ErrnoException).code ?? ""}` : ""}`;
  return /terminated|ECONNRESET|EPIPE|ETIMEDOUT|ECONNREFUSED|other side closed|socket|network|fetch failed|UND_ERR/i.test(
    text,
  );
}
