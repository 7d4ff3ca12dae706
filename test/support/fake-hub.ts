/**
 * A local stand-in for the Hugging Face hub, for pull tests: never the network. Two HTTP servers on 127.0.0.1:
 *
 *   hub    GET  /api/models/<user>/<repo>/revision/<rev>           model info (what @huggingface/hub's modelInfo reads)
 *          GET  /api/models/<user>/<repo>/tree/<rev>[/<path>]      file listing (listFiles; `recursive`, Link paging)
 *          POST /api/models/<user>/<repo>/paths-info/<rev>         info on given paths (pathsInfo)
 *          GET  /<user>/<repo>/resolve/<rev>/<path>                302 to the file server for LFS files (with
 *                                                                  X-Linked-Size / X-Linked-Etag), the bytes for git files
 *   files  GET  /blobs/<sha256>                                    the bytes, with Range
 *
 * The shapes follow the hub: tree entries `{ type, oid, size, path, lfs?: { oid, size, pointerSize } }` (lfs.oid
 * the SHA-256 of the content, oid the git id of the pointer), errors `{ "error": "…" }` with X-Error-Code
 * (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo), 401 for an anonymous request to a private or missing
 * repo, 401/403 for a gated file without / with a token lacking access.
 *
 * Faults, set on `hub.faults` at any time: cut the connection after N bytes of a file (the next `times` requests),
 * serve a file with one byte flipped (a wrong checksum), ignore Range (200 from byte 0), stall after N bytes.
 * Every request is logged in `hub.requests` (server, method, path, range, whether it carried a token).
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeHubFile {
  path: string;
  content: Uint8Array;
  /** Kept in git rather than LFS (listed with a git oid only, served by the hub itself). Default: .gguf in LFS. */
  git?: boolean;
  /** The size the listing claims (default the content's): a repo that changed under a pull, or a huge file. */
  listedSize?: number;
}

export interface FakeHubRepo {
  /** `<user>/<repo>` */
  id: string;
  files: FakeHubFile[];
  /** Commit id (default: derived from the id). */
  sha?: string;
  private?: boolean;
  gated?: false | "auto" | "manual";
  /** Tokens that may read a private repo / download from a gated one. */
  allowedTokens?: string[];
}

export interface FakeHubFaults {
  /** Close the socket after `afterBytes` bytes of this file's body, for the next `times` requests (default 1). */
  cut?: { path: string; afterBytes: number; times?: number };
  /** Flip one byte of this file in every response (`times` limits it). */
  corrupt?: { path: string; times?: number };
  /** Answer ranged requests with 200 and the whole file. */
  ignoreRanges?: boolean;
  /** Send `afterBytes` bytes, then nothing (the socket stays open), for the next `times` requests. */
  stall?: { path: string; afterBytes: number; times?: number };
  /** Send file bodies at about this many bytes per second (a slow link, to watch progress). */
  throttle?: number;
  /** Answer the file server's requests with this status (the next `times`). */
  status?: { path: string; code: number; times?: number };
}

export interface FakeRequest {
  server: "hub" | "files";
  method: string;
  path: string;
  range?: string;
  token?: string;
}

export interface FakeHub {
  url: string;
  filesUrl: string;
  requests: FakeRequest[];
  faults: FakeHubFaults;
  /** Paths of files whose response has stalled (a stall fault fired and its bytes were written). */
  stalled: string[];
  repos: Map<string, FakeHubRepo>;
  addRepo(repo: FakeHubRepo): void;
  /** Requests for one file's bytes (resolve or blob) so far. */
  fileRequests(path: string): FakeRequest[];
  close(): Promise<void>;
}

export interface FakeHubOptions {
  repos?: FakeHubRepo[];
  /** Tokens the hub knows (others get 401 "Invalid credentials"). Default: every token in any allowedTokens, plus hf_valid. */
  validTokens?: string[];
  /** Tree entries per page (the Link header pages the rest). Default 1000. */
  pageSize?: number;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

interface Blob {
  repo: FakeHubRepo;
  file: FakeHubFile;
  sha: string;
}

function pointer(f: FakeHubFile): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(f.content)}\nsize ${f.content.length}\n`;
}

function entry(f: FakeHubFile): Record<string, unknown> {
  const size = f.listedSize ?? f.content.length;
  if (f.git ?? !/\.gguf$/i.test(f.path)) {
    return { type: "file", oid: gitOid(f.content), size, path: f.path };
  }
  const p = Buffer.from(pointer(f));
  return {
    type: "file",
    oid: gitOid(p),
    size,
    path: f.path,
    lfs: { oid: sha256(f.content), size, pointerSize: p.length },
    xetHash: sha256(Buffer.concat([Buffer.from("xet"), f.content])),
  };
}

function dirEntries(files: readonly FakeHubFile[]): Record<string, unknown>[] {
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = f.path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort().map((d) => ({ type: "directory", oid: gitOid(Buffer.from(d)), size: 0, path: d }));
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string | undefined, message: string): void {
  sendJson(res, status, { error: message }, code ? { "x-error-code": code, "x-error-message": message } : {});
}

function tokenOf(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
  return m?.[1]?.trim();
}

async function body(req: IncomingMessage): Promise<string> {
  let s = "";
  for await (const c of req) s += String(c);
  return s;
}

function take(f: { times?: number } | undefined): boolean {
  if (!f) return false;
  const t = f.times ?? 1;
  if (t <= 0) return false;
  f.times = t - 1;
  return true;
}

/** Serves bytes with Range and the faults. */
function serveBytes(req: IncomingMessage, res: ServerResponse, path: string, data: Uint8Array, hub: FakeHub): void {
  const faults = hub.faults;
  if (faults.status?.path === path && take(faults.status)) {
    sendError(res, faults.status.code, undefined, `fake status ${faults.status.code}`);
    return;
  }
  let bytes = Buffer.from(data);
  if (faults.corrupt?.path === path && (faults.corrupt.times === undefined || take(faults.corrupt))) {
    bytes = Buffer.from(bytes);
    const i = Math.floor(bytes.length / 2);
    bytes[i] = bytes[i]! ^ 0xff;
  }
  const total = bytes.length;
  let start = 0;
  let end = total - 1;
  let status = 200;
  const range = req.headers.range;
  if (range && !faults.ignoreRanges) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === "" && m[2] === "")) {
      res.writeHead(416, { "content-range": `bytes */${total}` });
      res.end();
      return;
    }
    if (m[1] === "") {
      start = Math.max(0, total - Number(m[2]));
    } else {
      start = Number(m[1]);
      if (m[2] !== "") end = Math.min(end, Number(m[2]));
    }
    if (start >= total || start > end) {
      res.writeHead(416, { "content-range": `bytes */${total}` });
      res.end();
      return;
    }
    status = 206;
  }
  const slice = bytes.subarray(start, end + 1);
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    "content-length": String(slice.length),
    "accept-ranges": "bytes",
    etag: `"${sha256(data)}"`,
  };
  if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${total}`;
  res.writeHead(status, headers);
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  const cut = faults.cut?.path === path && take(faults.cut) ? faults.cut.afterBytes : undefined;
  const stall = faults.stall?.path === path && take(faults.stall) ? faults.stall.afterBytes : undefined;
  const limit = cut ?? stall;
  if ((limit === undefined || limit >= slice.length) && faults.throttle) {
    const step = Math.max(1, Math.floor(faults.throttle / 20));
    let pos = 0;
    const tick = () => {
      if (res.destroyed) return;
      const next = Math.min(slice.length, pos + step);
      const last = next >= slice.length;
      res.write(slice.subarray(pos, next), () => (last ? res.end() : setTimeout(tick, 50)));
      pos = next;
    };
    tick();
    return;
  }
  if (limit === undefined || limit >= slice.length) {
    res.end(slice);
    return;
  }
  res.write(slice.subarray(0, limit), () => {
    if (cut !== undefined) setTimeout(() => res.socket?.destroy(), 20);
    // a stall: leave the response open; the client gives up (the server's close() ends it)
    else hub.stalled.push(path);
  });
}

export async function startFakeHub(opts: FakeHubOptions = {}): Promise<FakeHub> {
  const repos = new Map<string, FakeHubRepo>();
  const blobs = new Map<string, Blob>();
  const pageSize = opts.pageSize ?? 1000;
  const valid = new Set(opts.validTokens ?? ["hf_valid"]);
  const servers: Server[] = [];

  const hub: FakeHub = {
    url: "",
    filesUrl: "",
    requests: [],
    faults: {},
    stalled: [],
    repos,
    addRepo(repo) {
      repos.set(repo.id, repo);
      for (const t of repo.allowedTokens ?? []) valid.add(t);
      for (const f of repo.files) {
        if (!(f.git ?? !/\.gguf$/i.test(f.path)))
          blobs.set(sha256(f.content), { repo, file: f, sha: sha256(f.content) });
      }
    },
    fileRequests(path) {
      return hub.requests.filter(
        (r) =>
          (r.server === "hub" && r.path.includes("/resolve/") && decodeURIComponent(r.path).endsWith(`/${path}`)) ||
          (r.server === "files" && new URL(r.path, "http://x").searchParams.get("path") === path),
      );
    },
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.closeAllConnections();
              s.close(() => r());
            }),
        ),
      );
    },
  };
  for (const r of opts.repos ?? []) hub.addRepo(r);

  const commit = (repo: FakeHubRepo) => repo.sha ?? createHash("sha1").update(`commit ${repo.id}`).digest("hex");

  /** Access check for a repo; answers the error itself and returns undefined when refused. */
  const visible = (req: IncomingMessage, res: ServerResponse, id: string): FakeHubRepo | undefined => {
    const token = tokenOf(req);
    if (token !== undefined && !valid.has(token)) {
      sendError(res, 401, undefined, "Invalid credentials in Authorization header");
      return undefined;
    }
    const repo = repos.get(id);
    const allowed = repo && (!repo.private || (token !== undefined && (repo.allowedTokens ?? []).includes(token)));
    if (!repo || !allowed) {
      // the hub does not tell a missing repo from one you may not see
      if (token === undefined) sendError(res, 401, "RepoNotFound", "Repository not found");
      else sendError(res, 404, "RepoNotFound", "Repository not found");
      return undefined;
    }
    return repo;
  };

  const revisionOk = (res: ServerResponse, repo: FakeHubRepo, rev: string): boolean => {
    if (rev === "main" || rev === "HEAD" || rev === commit(repo)) return true;
    sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    return false;
  };

  const hubServer = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      const rec: FakeRequest = { server: "hub", method: req.method ?? "GET", path: url.pathname + url.search };
      if (req.headers.range) rec.range = req.headers.range;
      const tok = tokenOf(req);
      if (tok) rec.token = tok;
      hub.requests.push(rec);
      const p = url.pathname.split("/").map((s) => decodeURIComponent(s));
      // /api/models/<u>/<r>/revision/<rev>
      if (p[1] === "api" && p[2] === "models" && p[5] === "revision" && req.method === "GET") {
        const repo = visible(req, res, `${p[3]}/${p[4]}`);
        if (!repo || !revisionOk(res, repo, p[6] ?? "main")) return;
        sendJson(res, 200, {
          _id: createHash("sha1").update(repo.id).digest("hex").slice(0, 24),
          id: repo.id,
          private: repo.private ?? false,
          gated: repo.gated ?? false,
          sha: commit(repo),
          downloads: 0,
          likes: 0,
          lastModified: "2026-01-01T00:00:00.000Z",
          pipeline_tag: "text-generation",
          siblings: repo.files.map((f) => ({ rfilename: f.path })),
        });
        return;
      }
      // /api/models/<u>/<r>/tree/<rev>[/<path>]
      if (p[1] === "api" && p[2] === "models" && p[5] === "tree" && req.method === "GET") {
        const repo = visible(req, res, `${p[3]}/${p[4]}`);
        if (!repo || !revisionOk(res, repo, p[6] ?? "main")) return;
        const under = p.slice(7).join("/");
        const recursive = url.searchParams.get("recursive") === "true";
        const inDir = (path: string) => {
          if (under && !path.startsWith(`${under}/`)) return false;
          const rest = under ? path.slice(under.length + 1) : path;
          return recursive || !rest.includes("/");
        };
        const all = [...dirEntries(repo.files), ...repo.files.map(entry)].filter((e) => inDir(e.path as string));
        if (under && all.length === 0 && !repo.files.some((f) => f.path === under)) {
          sendError(res, 404, "EntryNotFound", `${under} does not exist on "${p[6]}"`);
          return;
        }
        const cursor = Number(url.searchParams.get("cursor") ?? 0);
        const page = all.slice(cursor, cursor + pageSize);
        const headers: Record<string, string> = {};
        if (cursor + pageSize < all.length) {
          const next = new URL(url.pathname + url.search, hub.url);
          next.searchParams.set("cursor", String(cursor + pageSize));
          headers.link = `<${next.href}>; rel="next"`;
        }
        sendJson(res, 200, page, headers);
        return;
      }
      // /api/models/<u>/<r>/paths-info/<rev>
      if (p[1] === "api" && p[2] === "models" && p[5] === "paths-info" && req.method === "POST") {
        const repo = visible(req, res, `${p[3]}/${p[4]}`);
        if (!repo || !revisionOk(res, repo, p[6] ?? "main")) return;
        let paths: string[] = [];
        try {
          paths = (JSON.parse(await body(req)) as { paths?: string[] }).paths ?? [];
        } catch {
          sendError(res, 400, undefined, "Invalid JSON body");
          return;
        }
        sendJson(res, 200, repo.files.filter((f) => paths.includes(f.path)).map(entry));
        return;
      }
      // /<u>/<r>/resolve/<rev>/<path>
      if (p[3] === "resolve" && (req.method === "GET" || req.method === "HEAD")) {
        const repo = visible(req, res, `${p[1]}/${p[2]}`);
        if (!repo || !revisionOk(res, repo, p[4] ?? "main")) return;
        const path = p.slice(5).join("/");
        if (repo.gated) {
          const token = tokenOf(req);
          if (token === undefined) {
            sendError(
              res,
              401,
              "GatedRepo",
              `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
            );
            return;
          }
          if (!(repo.allowedTokens ?? []).includes(token)) {
            sendError(
              res,
              403,
              "GatedRepo",
              `Access to model ${repo.id} is restricted and you are not in the authorized list. Visit ${hub.url}/${repo.id} to ask for access.`,
            );
            return;
          }
        }
        const file = repo.files.find((f) => f.path === path);
        if (!file) {
          sendError(res, 404, "EntryNotFound", "Entry not found");
          return;
        }
        const e = entry(file);
        if (!e.lfs) {
          serveBytes(req, res, file.path, file.content, hub);
          return;
        }
        const sha = sha256(file.content);
        res.writeHead(302, {
          location: `${hub.filesUrl}/blobs/${sha}?repo=${encodeURIComponent(repo.id)}&path=${encodeURIComponent(file.path)}`,
          "x-linked-size": String(file.content.length),
          "x-linked-etag": `"${sha}"`,
          etag: `"${gitOid(Buffer.from(pointer(file)))}"`,
          "x-repo-commit": commit(repo),
        });
        res.end();
        return;
      }
      sendError(res, 404, undefined, "Sorry, we can't find the page you are looking for.");
    })().catch((e: unknown) => {
      if (!res.headersSent) sendError(res, 500, undefined, String(e));
      else res.destroy();
    });
  });

  const filesServer = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const rec: FakeRequest = { server: "files", method: req.method ?? "GET", path: url.pathname + url.search };
    if (req.headers.range) rec.range = req.headers.range;
    const tok = tokenOf(req);
    if (tok) rec.token = tok;
    hub.requests.push(rec);
    const m = /^\/blobs\/([0-9a-f]{64})$/.exec(url.pathname);
    // the blob of that repo's file (several repos may hold the same bytes)
    const file = repos
      .get(url.searchParams.get("repo") ?? "")
      ?.files.find((f) => f.path === url.searchParams.get("path"));
    const blob = m && file && sha256(file.content) === m[1] ? { file } : m ? blobs.get(m[1]!) : undefined;
    if (!blob) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("NoSuchKey");
      return;
    }
    serveBytes(req, res, blob.file.path, blob.file.content, hub);
  });

  for (const s of [hubServer, filesServer]) {
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  }
  hub.url = `http://127.0.0.1:${(hubServer.address() as AddressInfo).port}`;
  hub.filesUrl = `http://127.0.0.1:${(filesServer.address() as AddressInfo).port}`;
  return hub;
}

/** Pseudo-random bytes (seeded), for fake model files of a given size that start like a GGUF. */
export function fakeBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  out.set(Buffer.from("GGUF").subarray(0, Math.min(4, size)));
  return out;
}
