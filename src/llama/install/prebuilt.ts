/**
 * Prebuilt llama.cpp from its GitHub releases: look up a release (latest or a tag), choose the asset for this
 * OS/arch/backend, download it with progress (checking size and sha256 digest when the API gives them), and
 * extract it. The API base is injectable (GGLIB_LLAMA_RELEASES_URL) so tests serve a fake release locally.
 */
import { createHash } from "node:crypto";
import { createWriteStream, existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GglibError } from "../../core/errors.js";
import { run } from "../../process/exec.js";
import type { Backend } from "./source-build.js";

export const DEFAULT_RELEASES_URL = "https://api.github.com/repos/ggml-org/llama.cpp/releases";
export const DEFAULT_GIT_URL = "https://github.com/ggml-org/llama.cpp";

export function releasesUrl(env: NodeJS.ProcessEnv = process.env): string {
  return (env.GGLIB_LLAMA_RELEASES_URL || DEFAULT_RELEASES_URL).replace(/\/+$/, "");
}

/** The fields of GitHub's release JSON that we use. */
export interface ReleaseAsset {
  name: string;
  size?: number;
  browser_download_url: string;
  /** "sha256:<hex>" (GitHub adds it to assets). */
  digest?: string | null;
}

export interface Release {
  tag_name: string;
  name?: string;
  published_at?: string;
  assets: ReleaseAsset[];
}

export interface Platform {
  os: NodeJS.Platform;
  arch: string;
}

export const SOURCE_HINT =
  "Build from source instead: gglib llama install --source <llama.cpp folder | git bundle | git URL> " +
  `(online: --source ${DEFAULT_GIT_URL}).`;

/** Asset name patterns for a platform and backend, best first; [] when llama.cpp publishes none. */
export function assetPatterns(p: Platform, backend: Backend): RegExp[] {
  const ext = "\\.(?:tar\\.gz|zip)$";
  const a = p.arch === "x64" ? "x64" : p.arch === "arm64" ? "arm64" : undefined;
  if (!a) return [];
  if (p.os === "linux") {
    if (backend === "cpu") return [new RegExp(`^llama-.+-bin-ubuntu-${a}${ext}`)];
    if (backend === "vulkan") return [new RegExp(`^llama-.+-bin-ubuntu-vulkan-${a}${ext}`)];
    if (backend === "cuda") return [new RegExp(`^llama-.+-bin-ubuntu-cuda-([\\d.]+)-${a}${ext}`)];
    return [];
  }
  if (p.os === "darwin") {
    if (backend === "metal" || backend === "cpu") return [new RegExp(`^llama-.+-bin-macos-${a}${ext}`)];
    return [];
  }
  if (p.os === "win32") {
    if (backend === "cpu") return [new RegExp(`^llama-.+-bin-win-cpu-${a}${ext}`)];
    if (backend === "vulkan") return [new RegExp(`^llama-.+-bin-win-vulkan-${a}${ext}`)];
    if (backend === "cuda") return [new RegExp(`^llama-.+-bin-win-cuda-([\\d.]+)-${a}${ext}`)];
  }
  return [];
}

function versionKey(v: string): number[] {
  return v.split(".").map(Number);
}

/**
 * The asset for this platform/backend. For CUDA builds published for several toolkit versions, the newest with the
 * same major version as the local toolkit wins (else the newest).
 */
export function chooseAsset(
  release: Release,
  p: Platform,
  backend: Backend,
  cudaVersion?: string,
): ReleaseAsset | undefined {
  for (const re of assetPatterns(p, backend)) {
    const hits = release.assets.filter((x) => re.test(x.name));
    if (hits.length === 0) continue;
    if (backend !== "cuda") return hits[0];
    const withV = hits
      .map((h) => ({ h, v: re.exec(h.name)?.[1] ?? "0" }))
      .sort((x, y) => {
        const a = versionKey(y.v);
        const b = versionKey(x.v);
        for (let i = 0; i < Math.max(a.length, b.length); i++)
          if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
        return 0;
      });
    const major = cudaVersion?.split(".")[0];
    return (major ? withV.find((x) => x.v.split(".")[0] === major) : undefined)?.h ?? withV[0]!.h;
  }
  return undefined;
}

/** For Windows CUDA assets: the matching CUDA runtime DLL archive. */
export function cudartAsset(release: Release, main: ReleaseAsset): ReleaseAsset | undefined {
  const m = /-bin-win-cuda-([\d.]+)-(x64|arm64)/.exec(main.name);
  if (!m) return undefined;
  return release.assets.find((a) => a.name.startsWith("cudart-") && a.name.includes(`cuda-${m[1]}-${m[2]}`));
}

function offlineError(url: string, e: unknown): GglibError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (e as NodeJS.ErrnoException).code;
  const why = code
    ? `${code}${cause?.message && !cause.message.includes(code) ? `: ${cause.message}` : ""}`
    : `${(e as Error).message}${cause?.message ? `: ${cause.message}` : ""}`;
  return new GglibError(
    "build_failed",
    `Could not reach llama.cpp's releases at ${url} (${why}). Are you offline?`,
    { hint: SOURCE_HINT },
    { cause: e },
  );
}

/** GET the release JSON (latest, or a tag). */
export async function fetchRelease(opts: {
  tag?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  timeoutMs?: number;
}): Promise<Release> {
  const base = releasesUrl(opts.env);
  const url = opts.tag && opts.tag !== "latest" ? `${base}/tags/${encodeURIComponent(opts.tag)}` : `${base}/latest`;
  const signals = [AbortSignal.timeout(opts.timeoutMs ?? 20_000), ...(opts.signal ? [opts.signal] : [])];
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { "User-Agent": "gglib", Accept: "application/vnd.github+json" },
      signal: AbortSignal.any(signals),
    });
  } catch (e) {
    throw offlineError(url, e);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new GglibError(
      "build_failed",
      opts.tag
        ? `llama.cpp has no release tagged "${opts.tag}" (${url} → 404).`
        : `No llama.cpp release found at ${url} (404).`,
      {
        hint: opts.tag
          ? "Tags look like b7000; see https://github.com/ggml-org/llama.cpp/releases, or omit --version for the latest."
          : SOURCE_HINT,
      },
    );
  }
  if (!res.ok) {
    const body = (await res.text().catch(() => "")).slice(0, 200);
    const limited = res.status === 403 || res.status === 429;
    throw new GglibError(
      "build_failed",
      `llama.cpp's releases answered ${res.status} at ${url}${body ? `: ${body}` : ""}.`,
      {
        hint: limited
          ? `GitHub's API rate limit: wait an hour, or ${SOURCE_HINT.charAt(0).toLowerCase()}${SOURCE_HINT.slice(1)}`
          : SOURCE_HINT,
      },
    );
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch (e) {
    throw new GglibError(
      "build_failed",
      `llama.cpp's releases at ${url} returned something that is not JSON.`,
      { hint: SOURCE_HINT },
      { cause: e },
    );
  }
  const r = json as Partial<Release>;
  if (typeof r.tag_name !== "string" || !Array.isArray(r.assets)) {
    throw new GglibError("build_failed", `The release JSON at ${url} has no tag_name/assets.`, { hint: SOURCE_HINT });
  }
  return r as Release;
}

/** Streams an asset to `dest` (via dest.partial), reporting (received, total). Verifies size and sha256 digest. */
export async function downloadAsset(
  asset: ReleaseAsset,
  dest: string,
  opts: { onProgress?: (received: number, total: number) => void; signal?: AbortSignal } = {},
): Promise<void> {
  await mkdir(join(dest, ".."), { recursive: true });
  const partial = dest + ".partial";
  let res: Response;
  try {
    res = await fetch(asset.browser_download_url, {
      headers: { "User-Agent": "gglib" },
      redirect: "follow",
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    throw offlineError(asset.browser_download_url, e);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new GglibError(
      "build_failed",
      `Downloading ${asset.name} failed: HTTP ${res.status} from ${asset.browser_download_url}.`,
      { hint: `Try again later. ${SOURCE_HINT}` },
    );
  }
  const total = Number(res.headers.get("content-length") ?? asset.size ?? 0) || asset.size || 0;
  const hash = createHash("sha256");
  let received = 0;
  try {
    // pipeline ends or destroys every stream on any error, so nothing writes to a closed file afterwards
    await pipeline(
      Readable.fromWeb(res.body),
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          received += chunk.byteLength;
          opts.onProgress?.(received, total);
          cb(null, chunk);
        },
      }),
      createWriteStream(partial),
    );
  } catch (e) {
    await rm(partial, { force: true });
    if (e instanceof GglibError) throw e;
    throw new GglibError(
      "build_failed",
      `Downloading ${asset.name} was interrupted after ${received} bytes: ${(e as Error).message}.`,
      { hint: `Run the command again. ${SOURCE_HINT}` },
      { cause: e },
    );
  }
  if (asset.size && received !== asset.size) {
    await rm(partial, { force: true });
    throw new GglibError("build_failed", `Downloaded ${asset.name} is ${received} bytes, expected ${asset.size}.`, {
      hint: "Run the command again (the download was cut short).",
    });
  }
  const want = asset.digest?.startsWith("sha256:") ? asset.digest.slice(7).toLowerCase() : undefined;
  const got = hash.digest("hex");
  if (want && want !== got) {
    await rm(partial, { force: true });
    throw new GglibError(
      "build_failed",
      `Downloaded ${asset.name} does not match its published sha256 (got ${got}, expected ${want}).`,
      {
        hint: "Run the command again; if it persists, the release or a proxy in between is corrupting it.",
      },
    );
  }
  await rename(partial, dest);
}

/** Extracts a .tar.gz (tar) or .zip (unzip, else tar, which reads zips on macOS/Windows/bsdtar). */
export async function extractArchive(archive: string, destDir: string): Promise<void> {
  await mkdir(destDir, { recursive: true });
  const attempts: [string, string[]][] = archive.endsWith(".zip")
    ? [
        ["unzip", ["-q", "-o", archive, "-d", destDir]],
        ["tar", ["-xf", archive, "-C", destDir]],
      ]
    : [["tar", ["-xzf", archive, "-C", destDir]]];
  const errors: string[] = [];
  for (const [cmd, args] of attempts) {
    try {
      const r = await run(cmd, args, { timeoutMs: 300_000 });
      if (r.code === 0) return;
      errors.push(`${cmd} exited ${r.code}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
    } catch (e) {
      errors.push(`${cmd}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not installed" : (e as Error).message}`);
    }
  }
  throw new GglibError("build_failed", `Could not extract ${archive}: ${errors.join("; ")}.`, {
    hint: archive.endsWith(".zip")
      ? "Install unzip (Debian: apt-get install unzip) and run the command again."
      : "Check that tar and gzip are installed.",
  });
}

/** The folder inside an extracted release that holds llama-server (layouts differ: flat, llama-bNNNN/, build/bin/). */
export function findBinaryDir(
  root: string,
  exe = process.platform === "win32" ? "llama-server.exe" : "llama-server",
  depth = 4,
): string | undefined {
  if (existsSync(join(root, exe)) && statSync(join(root, exe)).isFile()) return root;
  if (depth === 0) return undefined;
  let entries: string[];
  try {
    entries = readdirSync(root).sort();
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const p = join(root, e);
    try {
      if (!statSync(p).isDirectory()) continue;
    } catch {
      continue;
    }
    const hit = findBinaryDir(p, exe, depth - 1);
    if (hit) return hit;
  }
  return undefined;
}
