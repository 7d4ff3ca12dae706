import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { GglibError } from "../core/errors.js";
import type { LlamaCapabilities } from "../core/ports.js";
import { paths } from "../core/paths.js";
import { run } from "../process/exec.js";
import { SLOT_CHECKPOINTS_TAG } from "./install/patches.js";

/** What a llama-server binary can do: defined with the runner port (core/ports.ts), probed here. */
export type { LlamaCapabilities };

/** Pure: the flag spellings in llama-server's --help text. */
export function parseHelpFlags(help: string): Set<string> {
  const flags = new Set<string>();
  for (const raw of help.split("\n")) {
    if (!raw.startsWith("-")) continue; // flag lines start at column 0; descriptions are indented
    // descriptions start at column 40; a longer flag column takes the whole line (its description wraps below)
    const col = raw.length > 40 && raw[39] === " " ? raw.slice(0, 40) : raw;
    for (const m of col.matchAll(/(?:^|[\s,])(--?[A-Za-z0-9][A-Za-z0-9-]*)/g)) {
      if (m[1]) flags.add(m[1]);
    }
  }
  return flags;
}

/** Pure: parse `--version` output. */
export function parseVersion(text: string): Pick<LlamaCapabilities, "version" | "build" | "commit" | "builtWith"> {
  const version = /^version:\s*(.+)$/m.exec(text)?.[1]?.trim();
  const build = /build (\d+)/.exec(version ?? "")?.[1];
  const commit = /commit ([0-9a-f]{6,40})/.exec(version ?? "")?.[1];
  const builtWith = /^(built with .+)$/m.exec(text)?.[1]?.trim();
  return { version, build: build !== undefined ? Number(build) : undefined, commit, builtWith };
}

export function guessBackend(versionText: string): string {
  const t = versionText.toLowerCase();
  for (const b of ["cuda", "hip", "rocm", "vulkan", "metal", "sycl", "opencl"]) if (t.includes(b)) return b;
  return "cpu";
}

interface CacheFile {
  [key: string]: {
    version?: string;
    build?: number;
    commit?: string;
    builtWith?: string;
    backend: string;
    flags: string[];
    childProtocol: boolean;
    slotCheckpoints?: boolean;
  };
}

/** Bump when the parsing changes, so cached probes are redone. */
const CACHE_VERSION = 3;
const memo = new Map<string, Promise<LlamaCapabilities>>();

/**
 * Probes a binary (runs --version and --help, ~50 ms), cached in memory and on disk per path + mtime + size.
 */
export async function probeCapabilities(
  binaryPath: string,
  opts: { cacheFile?: string | null } = {},
): Promise<LlamaCapabilities> {
  let st;
  try {
    st = await stat(binaryPath);
  } catch {
    throw new GglibError("binary_not_found", `llama-server binary not found at ${binaryPath}.`, { binaryPath });
  }
  const key = `${CACHE_VERSION}|${binaryPath}|${st.mtimeMs}|${st.size}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const p = probeUncached(binaryPath, key, opts.cacheFile === undefined ? paths.capabilityCache() : opts.cacheFile);
  memo.set(key, p);
  p.catch(() => memo.delete(key));
  return p;
}

async function probeUncached(binaryPath: string, key: string, cacheFile: string | null): Promise<LlamaCapabilities> {
  if (cacheFile) {
    const cached = await readCache(cacheFile);
    const c = cached[key];
    if (c) return { binaryPath, ...c, flags: new Set(c.flags) };
  }
  const [v, h, slotCheckpoints] = await Promise.all([
    run(binaryPath, ["--version"], { timeoutMs: 20_000 }),
    run(binaryPath, ["--help"], { timeoutMs: 20_000 }),
    fileContains(binaryPath, SLOT_CHECKPOINTS_TAG),
  ]).catch((e: unknown) => {
    throw new GglibError("binary_not_executable", `Could not run ${binaryPath}: ${(e as Error).message}`, {
      binaryPath,
      hint: "Check that the file is an executable llama-server for this platform.",
    });
  });
  const versionText = v.stderr + "\n" + v.stdout;
  const helpText = h.stdout.length > h.stderr.length ? h.stdout : h.stderr;
  const flags = parseHelpFlags(helpText);
  if (flags.size === 0 || !flags.has("--port")) {
    throw new GglibError(
      "binary_not_executable",
      `${binaryPath} does not look like llama-server (its --help lists no --port flag).`,
      {
        binaryPath,
        hint: "Point GGLIB_LLAMA_SERVER at llama.cpp's llama-server binary, or run `gglib llama install`.",
      },
    );
  }
  const caps: LlamaCapabilities = {
    binaryPath,
    ...parseVersion(versionText),
    backend: guessBackend(versionText),
    flags,
    // the router (`--models-dir`) and its child protocol arrived together
    childProtocol: flags.has("--models-dir"),
    slotCheckpoints,
  };
  if (cacheFile) {
    const cached = await readCache(cacheFile);
    cached[key] = {
      version: caps.version,
      build: caps.build,
      commit: caps.commit,
      builtWith: caps.builtWith,
      backend: caps.backend,
      flags: [...flags],
      childProtocol: caps.childProtocol,
      slotCheckpoints: caps.slotCheckpoints ?? false,
    };
    await mkdir(dirname(cacheFile), { recursive: true }).catch(() => undefined);
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(cached))
      .then(() => rename(tmp, cacheFile))
      .catch(() => undefined);
  }
  return caps;
}

async function readCache(file: string): Promise<CacheFile> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as CacheFile;
  } catch {
    return {};
  }
}

/**
 * Does the file hold `needle` (ASCII)? Read in chunks, with the needle's length less one carried over, so a match
 * across two chunks is found. A binary's string table is searched this way (~20 ms for a 10 MB llama-server).
 */
export async function fileContains(file: string, needle: string): Promise<boolean> {
  const want = Buffer.from(needle, "latin1");
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const buf = Buffer.concat([tail, chunk as Buffer]);
    if (buf.includes(want)) return true;
    tail = buf.subarray(Math.max(0, buf.length - (want.length - 1)));
  }
  return false;
}
