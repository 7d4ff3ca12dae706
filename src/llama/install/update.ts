/**
 * `gglib llama update`, as a library: installs again from where the install came from (the latest release, or its
 * source), unless that source has nothing newer.
 */
import { existsSync } from "node:fs";
import { GglibError } from "../../core/errors.js";
import { paths } from "../../core/paths.js";
import { run } from "../../process/exec.js";
import { installLlama, type InstallOptions, type InstallResult } from "./install.js";
import { fetchRelease } from "./prebuilt.js";
import { readInstallRecord } from "./record.js";
import { LLAMA_PATCHES, missingPatches, patchId } from "./patches.js";

export interface UpdateOptions extends Omit<InstallOptions, "source" | "version" | "backend"> {
  /** Rebuild/redownload even when nothing changed. */
  force?: boolean;
}

/** Updates the install from where it came: the latest release, or its source again (a git URL is re-cloned). */
export async function updateLlama(opts: UpdateOptions = {}): Promise<InstallResult> {
  const env = opts.env ?? process.env;
  const rep = opts.reporter ?? {};
  const record = readInstallRecord(paths.llamaInstallRecord(env));
  if (!record) {
    throw new GglibError("binary_not_found", "llama.cpp is not installed, so there is nothing to update.", {
      hint: "Install it with `gglib llama install` (or `--source <dir|bundle|git URL>` offline).",
    });
  }
  if (record.installType === "prebuilt") {
    if (!opts.force) {
      rep.step?.("Looking up the latest llama.cpp release");
      const latest = await fetchRelease({ env, ...(opts.signal ? { signal: opts.signal } : {}) });
      if (latest.tag_name === record.tag) {
        rep.info?.(`Already up to date: ${record.tag}.`);
        return { changed: false, record };
      }
      rep.info?.(`Updating ${record.tag ?? record.version} → ${latest.tag_name}`);
    }
    return installLlama({ ...opts, backend: record.backend, force: true });
  }
  // an install that lacks one of gglib's llama.cpp patches (built before it existed) is rebuilt at the same commit
  const missing =
    record.sourceKind === "dir"
      ? []
      : missingPatches(
          record,
          LLAMA_PATCHES.map((p) => patchId(p)),
        );
  if (missing.length > 0)
    rep.info?.(`Rebuilding: this install lacks gglib's llama.cpp patch(es) ${missing.join(", ")}.`);
  if (record.sourceKind === "url" && !opts.force && missing.length === 0) {
    const head = await remoteHead(record.source, record.tag);
    if (head && head === record.commit) {
      rep.info?.(`Already up to date: ${record.commit.slice(0, 12)} is the newest commit of ${record.source}.`);
      return { changed: false, record };
    }
  }
  if (record.sourceKind === "bundle" && !opts.force && missing.length === 0) {
    const head = await bundleHead(record.source);
    if (head && head === record.commit) {
      rep.info?.(`Already up to date: the bundle's HEAD is the installed ${record.commit.slice(0, 12)}.`);
      return { changed: false, record };
    }
  }
  if (record.sourceKind !== "dir" && record.sourceKind !== "url" && !existsSync(record.source)) {
    throw new GglibError("build_failed", `The source of this install (${record.source}) is gone.`, {
      hint: "Install again from a new source: gglib llama install --source <dir|bundle|git URL> --force",
    });
  }
  return installLlama({
    ...opts,
    source: record.source,
    backend: record.backend,
    ...(record.tag ? { version: record.tag } : {}),
    // keep the user's extra flags (those after ours)
    cmakeFlags: record.cmakeFlags.filter((f) => !DEFAULT_FLAG_NAMES.some((n) => f.startsWith(n))),
    force: true,
  });
}

const DEFAULT_FLAG_NAMES = [
  "-DCMAKE_BUILD_TYPE=",
  "-DBUILD_SHARED_LIBS=",
  "-DLLAMA_CURL=",
  "-DLLAMA_OPENSSL=",
  "-DLLAMA_BUILD_TESTS=",
  "-DLLAMA_BUILD_EXAMPLES=",
  "-DLLAMA_USE_PREBUILT_UI=",
  "-DLLAMA_BUILD_UI=",
  "-DGGML_CUDA=",
  "-DGGML_VULKAN=",
  "-DGGML_METAL=",
];

async function remoteHead(url: string, ref?: string): Promise<string | undefined> {
  try {
    const r = await run("git", ["ls-remote", url, ref ?? "HEAD"], { timeoutMs: 30_000 });
    return r.code === 0 ? r.stdout.split(/\s/)[0] || undefined : undefined;
  } catch {
    return undefined;
  }
}

async function bundleHead(bundle: string): Promise<string | undefined> {
  try {
    const r = await run("git", ["bundle", "list-heads", bundle], { timeoutMs: 30_000 });
    if (r.code !== 0) return undefined;
    const lines = r.stdout.trim().split("\n");
    const head = lines.find((l) => l.endsWith(" HEAD")) ?? lines[0];
    return head?.split(" ")[0];
  } catch {
    return undefined;
  }
}
