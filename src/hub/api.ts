/**
 * The hub's read API, through `@huggingface/hub`: repo info (commit, gated, private) and the recursive file listing
 * with each file's size and SHA-256 (its LFS oid). Errors become GglibErrors that say what to do (a token, a
 * spelling, a network). Also reads one GGUF header over HTTP ranges, for the default quantization choice.
 *
 * The token goes in through a `fetch` wrapper rather than the library's `accessToken`, which refuses tokens that
 * do not start with `hf_` (a self-hosted hub's may not); the same wrapper carries the abort signal.
 */
import { HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { GglibError } from "../core/errors.js";
import { describeHeader, NeedMore, parseGgufHeader, type ModelMetadata } from "../gguf/reader.js";
import type { RepoFile } from "./files.js";

export interface HubContext {
  hubUrl: string;
  token?: string;
  signal?: AbortSignal;
}

/** fetch with the token (on the hub's own origin only) and the signal. */
export function hubFetch(ctx: HubContext): typeof fetch {
  const origin = new URL(ctx.hubUrl).origin;
  return (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const headers = new Headers(init?.headers);
    if (ctx.token && new URL(url).origin === origin) headers.set("authorization", `Bearer ${ctx.token}`);
    return fetch(input, { ...init, headers, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  };
}

export interface RepoInfo {
  /** The commit the listing and the downloads are pinned to. */
  sha?: string;
  gated: false | "auto" | "manual";
  private: boolean;
}

export async function repoInfo(ctx: HubContext, repo: string, revision = "main"): Promise<RepoInfo> {
  try {
    const info = await modelInfo({
      name: repo,
      hubUrl: ctx.hubUrl,
      revision,
      additionalFields: ["sha"],
      fetch: hubFetch(ctx),
    });
    const r: RepoInfo = { gated: info.gated ?? false, private: info.private ?? false };
    if (typeof info.sha === "string" && /^[0-9a-f]{40}$/.test(info.sha)) r.sha = info.sha;
    return r;
  } catch (e) {
    throw hubError(e, ctx, repo, { revision });
  }
}

/** Every file of the repo at `revision` (recursive). */
export async function listRepoFiles(ctx: HubContext, repo: string, revision: string): Promise<RepoFile[]> {
  const out: RepoFile[] = [];
  try {
    for await (const e of listFiles({ repo, recursive: true, revision, hubUrl: ctx.hubUrl, fetch: hubFetch(ctx) })) {
      if (e.type !== "file") continue;
      const f: RepoFile = { path: e.path, size: e.lfs?.size ?? e.size };
      if (e.lfs?.oid && /^[0-9a-f]{64}$/i.test(e.lfs.oid)) f.sha256 = e.lfs.oid.toLowerCase();
      else if (e.oid) f.gitOid = e.oid.toLowerCase();
      out.push(f);
    }
  } catch (e) {
    throw hubError(e, ctx, repo, { revision });
  }
  return out;
}

/** The URL a file downloads from (the hub redirects it to its file storage). */
export function resolveUrl(hubUrl: string, repo: string, revision: string, path: string): string {
  const p = path.split("/").map(encodeURIComponent).join("/");
  return `${hubUrl}/${repo}/resolve/${encodeURIComponent(revision)}/${p}`;
}

function tokenHint(ctx: HubContext, repo: string): string {
  return `Create a read token at ${ctx.hubUrl}/settings/tokens and set HF_TOKEN=hf_… (or pass --token); for a gated repo, also accept its terms on ${ctx.hubUrl}/${repo}.`;
}

function serverText(e: HubApiError): string {
  const msg =
    typeof e.data?.error === "string" ? e.data.error : typeof e.data?.message === "string" ? e.data.message : "";
  return msg.trim();
}

/**
 * A hub error as a GglibError. `status` and `code` (the X-Error-Code header) come from our own requests;
 * HubApiError from the library carries the status and the JSON body.
 */
export function hubError(
  e: unknown,
  ctx: HubContext,
  repo: string,
  what: { revision?: string; file?: string; status?: number; code?: string; message?: string } = {},
): Error {
  if (e instanceof GglibError) return e;
  if (ctx.signal?.aborted) return ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error("aborted");
  const status = e instanceof HubApiError ? e.statusCode : what.status;
  const server = e instanceof HubApiError ? serverText(e) : (what.message ?? "");
  const said = server ? ` The hub said: "${server}".` : "";
  const code = what.code ?? "";
  const subject = what.file ? `${what.file} in ${repo}` : repo;
  if (status === undefined) {
    const cause = e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
    return new GglibError("download_failed", `Cannot reach the hub at ${ctx.hubUrl}: ${cause}.`, {
      hint: "Check the network connection (or HF_ENDPOINT / --hub-url if you use a mirror).",
    });
  }
  if (code === "GatedRepo" || /gated|restricted/i.test(server)) {
    return new GglibError(
      "hub_auth",
      ctx.token
        ? `${repo} is gated and this token's account has not been granted access (${status}).${said}`
        : `${repo} is gated: it needs a token of an account that accepted its terms (${status}).${said}`,
      { hint: ctx.token ? `Ask for access on ${ctx.hubUrl}/${repo}, then try again.` : tokenHint(ctx, repo) },
    );
  }
  if (status === 401) {
    return new GglibError(
      "hub_auth",
      ctx.token
        ? `The hub refused the token for ${subject} (401): it is invalid or expired, or the repo does not exist.${said}`
        : `Cannot read ${subject}: it does not exist, or it is private and needs a token (401).${said}`,
      {
        hint: ctx.token
          ? `Check HF_TOKEN, and the spelling of ${repo}.`
          : `Check the spelling. ${tokenHint(ctx, repo)}`,
      },
    );
  }
  if (status === 403) {
    return new GglibError("hub_auth", `The hub refused access to ${subject} (403).${said}`, {
      hint: `Make sure the token (HF_TOKEN) may read ${repo}: ${ctx.hubUrl}/settings/tokens.`,
    });
  }
  if (status === 404) {
    if (code === "RevisionNotFound" || /revision|rev id/i.test(server)) {
      return new GglibError("hub_not_found", `${repo} has no revision "${what.revision ?? "main"}".${said}`, {
        hint: "Check the branch, tag or commit after @.",
      });
    }
    if (what.file || code === "EntryNotFound") {
      return new GglibError("hub_not_found", `${subject} does not exist (404).${said}`, {
        hint: `See the files on ${ctx.hubUrl}/${repo}/tree/main.`,
      });
    }
    return new GglibError("hub_not_found", `There is no model repo ${repo} on ${ctx.hubUrl} (404).${said}`, {
      hint: `Check the spelling (search on ${ctx.hubUrl}/models?search=gguf).`,
    });
  }
  return new GglibError("download_failed", `The hub answered ${status} for ${subject}.${said}`, {
    hint: status >= 500 ? "The hub has trouble; try again in a while." : "Try again; if it persists, report it.",
  });
}

/**
 * The architecture of a GGUF file on the hub, from its header only: ranged reads of 1 MiB, growing ×4 until the
 * key/values parse (tensor infos are not read). Undefined when it cannot be read (the choice then goes unchecked).
 */
export async function readRemoteArchitecture(
  ctx: HubContext,
  url: string,
  size: number,
  maxBytes = 64 << 20,
): Promise<ModelMetadata | undefined> {
  const f = hubFetch(ctx);
  let want = Math.min(size, 1 << 20);
  let buf = new Uint8Array(0);
  for (let round = 0; round < 8; round++) {
    if (want > buf.length) {
      const res = await f(url, { headers: { range: `bytes=${buf.length}-${want - 1}` } });
      if (res.status !== 206 && res.status !== 200) {
        await res.body?.cancel();
        return undefined;
      }
      const chunk = new Uint8Array(await res.arrayBuffer());
      // a server that ignores ranges sends it all from 0
      const part = res.status === 200 ? chunk.subarray(buf.length, want) : chunk;
      const next = new Uint8Array(buf.length + part.length);
      next.set(buf);
      next.set(part, buf.length);
      buf = next;
    }
    try {
      const header = parseGgufHeader(buf, buf.length >= size, { tensors: false, maxArrayItems: 0 });
      return describeHeader(header, { path: url, files: [url], sizes: [size], tensors: [] }, { chatTemplate: false });
    } catch (e) {
      if (!(e instanceof NeedMore)) return undefined;
      want = Math.min(size, Math.max(e.bytes, buf.length * 4));
      if (want > maxBytes) return undefined;
    }
  }
  return undefined;
}
