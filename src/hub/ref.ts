/**
 * What `gglib pull` is asked for: `<user>/<repo>[:<quant or file>]`, also written `hf.co/<user>/<repo>:<tag>` (the
 * form Ollama and llama.cpp's `-hf` use) or as a hub URL. Pure: no network.
 *
 *   parsePullRef("bartowski/Qwen3-4B-GGUF:Q4_K_M")  → { repo: "bartowski/Qwen3-4B-GGUF", tag: "Q4_K_M" }
 *   parsePullRef("hf.co/unsloth/gemma-3-4b-it-GGUF") → { repo: "unsloth/gemma-3-4b-it-GGUF" }
 *   parsePullRef("user/repo:sub/dir/model-f16.gguf") → { repo: "user/repo", tag: "sub/dir/model-f16.gguf" }
 */
import { GglibError } from "../core/errors.js";

export interface PullRef {
  /** `<user>/<repo>` as the hub spells it. */
  repo: string;
  user: string;
  name: string;
  /** A quantization (`Q4_K_M`, case-insensitive), a file name or path in the repo, or a file stem. */
  tag?: string;
  /** `@<revision>` (branch, tag or commit); default: the repo's main branch. */
  revision?: string;
}

export const DEFAULT_HUB_URL = "https://huggingface.co";

/** One part of a repo id: the hub's rule (letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96). */
const PART_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;

function refError(ref: string, why: string): GglibError {
  return new GglibError("invalid_config", `"${ref}" is not a Hugging Face model reference: ${why}.`, {
    hint: "Write <user>/<repo>[:<quant or file>], e.g. gglib pull bartowski/Qwen3-4B-GGUF:Q4_K_M",
  });
}

export function parsePullRef(input: string): PullRef {
  let s = input.trim();
  if (s === "") throw refError(input, "it is empty");
  s = s.replace(/^https?:\/\//i, "").replace(/^(?:www\.)?(?:hf\.co|huggingface\.co)\//i, "");
  // a hub page URL: <user>/<repo>/blob|resolve/<rev>/<path> names one file
  const page = /^([^/]+)\/([^/:@]+)\/(?:blob|resolve)\/([^/]+)\/(.+)$/.exec(s);
  let repoPart: string;
  let tag: string | undefined;
  let revision: string | undefined;
  if (page) {
    repoPart = `${page[1]}/${page[2]}`;
    revision = decodeURIComponent(page[3]!);
    tag = decodeURIComponent(page[4]!.replace(/\?.*$/, ""));
  } else {
    s = s.replace(/\/(?:tree\/main)?\/?$/, "");
    const colon = s.indexOf(":");
    repoPart = colon >= 0 ? s.slice(0, colon) : s;
    tag = colon >= 0 ? s.slice(colon + 1) : undefined;
    const at = repoPart.indexOf("@");
    if (at >= 0) {
      revision = repoPart.slice(at + 1);
      repoPart = repoPart.slice(0, at);
      if (revision === "") throw refError(input, "the revision after @ is empty");
    }
  }
  if (tag !== undefined) {
    tag = tag.trim();
    if (tag === "" || tag.toLowerCase() === "latest") tag = undefined;
  }
  const parts = repoPart.split("/");
  if (parts.length !== 2) {
    throw refError(input, parts.length < 2 ? "it needs both a user (or organisation) and a repo name" : "too many /");
  }
  const [user, name] = parts as [string, string];
  for (const p of [user, name]) {
    if (!PART_RE.test(p) || p.includes("--") || p.includes("..")) {
      throw refError(input, `"${p}" is not a valid user or repo name (letters, digits, - _ . up to 96)`);
    }
  }
  if (tag !== undefined && (tag.split("/").includes("..") || tag.startsWith("/"))) {
    throw refError(input, `the file "${tag}" would leave the repo`);
  }
  const ref: PullRef = { repo: `${user}/${name}`, user, name };
  if (tag !== undefined) ref.tag = tag;
  if (revision !== undefined) ref.revision = revision;
  return ref;
}

/** The hub URL: the option, else HF_ENDPOINT (huggingface_hub's variable), else huggingface.co. No trailing slash. */
export function hubUrlFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = option ?? (env.HF_ENDPOINT || undefined) ?? DEFAULT_HUB_URL;
  return url.replace(/\/+$/, "");
}

/** The access token: the option, else HF_TOKEN, else the older HUGGING_FACE_HUB_TOKEN. */
export function tokenFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = option ?? (env.HF_TOKEN || undefined) ?? (env.HUGGING_FACE_HUB_TOKEN || undefined);
  return t?.trim() || undefined;
}
