/**
 * `gglib llama install / status / update / uninstall`, as a library.
 *
 * Install flow: pick the backend (detected or asked) → prebuilt download from llama.cpp's GitHub releases, or a
 * source build (`--source` folder | git bundle | git URL, via source-build.ts) after a build-tool check → verify
 * the new binary with `--version` → swap it into <dataDir>/llama atomically with its install.json. A failed
 * install never breaks the one already there; two installs at once are serialised by a lock.
 */
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, lstatSync, renameSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { GglibError } from "../../core/errors.js";
import { formatBytes } from "../../core/units.js";
import { cacheDir, paths } from "../../core/paths.js";
import { run } from "../../process/exec.js";
import { withLock } from "../../process/lockfile.js";
import {
  checkDependencies,
  detectBackend,
  formatDependencies,
  systemProbe,
  type BackendChoice,
  type BackendDetection,
  type Dependency,
  type Probe,
} from "./detect.js";
import {
  chooseAsset,
  cudartAsset,
  downloadAsset,
  extractArchive,
  fetchRelease,
  findBinaryDir,
  SOURCE_HINT,
  type Release,
} from "./prebuilt.js";
import { commitFromVersion, readInstallRecord, writeInstallRecord, type InstallRecord } from "./record.js";
import {
  RPC_SERVER_TARGETS,
  buildFromSource,
  classifySource,
  parseVersionText,
  type Backend,
  type BuildStage,
} from "./source-build.js";

/** What the install reports while it works (the CLI draws it; library callers may ignore it). */
export interface InstallReporter {
  /** A new step: "Checking build tools", "Downloading llama-b7000-bin-ubuntu-x64.tar.gz", … */
  step?(message: string): void;
  /** 0..1 within the current step, with a short detail. */
  progress?(fraction: number, detail: string): void;
  info?(message: string): void;
  warn?(message: string): void;
}

export interface InstallOptions {
  /** Build from this llama.cpp folder, git bundle or git URL. Without it: the prebuilt release. */
  source?: string;
  backend?: BackendChoice;
  /** Release tag (prebuilt) or git ref (git URL/bundle source). */
  version?: string;
  /** Reinstall even if llama.cpp is installed. */
  force?: boolean;
  /** Extra cmake -D flags (source builds). */
  cmakeFlags?: readonly string[];
  jobs?: number;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  reporter?: InstallReporter;
  /** For tests: the machine as seen by detection and the dependency check. */
  probe?: Probe;
}

export interface InstallResult {
  /** false when it was already installed and nothing was done. */
  changed: boolean;
  record: InstallRecord;
  detection?: BackendDetection;
  /** First line(s) of `llama-server --version`. */
  versionText?: string;
}

const exeName = (): string => (process.platform === "win32" ? "llama-server.exe" : "llama-server");

export async function installLlama(opts: InstallOptions = {}): Promise<InstallResult> {
  const env = opts.env ?? process.env;
  const rep = opts.reporter ?? {};
  const probe = opts.probe ?? systemProbe(env);
  const existing = readInstallRecord(paths.llamaInstallRecord(env));
  if (existing && !opts.force && !opts.source && !opts.version && existsSync(existing.binaryPath)) {
    rep.info?.(`llama.cpp ${existing.version} (${existing.backend}) is already installed in ${paths.llamaDir(env)}.`);
    rep.info?.("Use `gglib llama update` for a newer one, or --force to reinstall.");
    return { changed: false, record: existing };
  }
  const { backend, detection } = await chooseBackend(opts.backend ?? "auto", probe, rep);
  const ctx: InstallContext = { backend, ...(detection ? { detection } : {}), env, probe, rep };
  return withInstallLock(env, async () => {
    if (opts.source) return sourceInstall({ ...opts, source: opts.source }, ctx);
    return prebuiltInstall(opts, ctx);
  });
}

/** What both kinds of install work with: the chosen backend (and why), the environment, the machine, the reporter. */
interface InstallContext {
  backend: Backend;
  detection?: BackendDetection;
  env: NodeJS.ProcessEnv;
  probe: Probe;
  rep: InstallReporter;
}

async function chooseBackend(
  choice: BackendChoice,
  probe: Probe,
  rep: InstallReporter,
): Promise<{ backend: Backend; detection?: BackendDetection }> {
  if (choice !== "auto") {
    if (choice === "metal" && probe.platform !== "darwin") {
      throw new GglibError("invalid_config", "The Metal backend exists only on macOS.", {
        hint: "Use --backend auto, cpu, cuda or vulkan.",
      });
    }
    if (choice === "cuda" && probe.platform === "darwin") {
      throw new GglibError("invalid_config", "CUDA is not available on macOS.", {
        hint: "Use --backend metal (or auto).",
      });
    }
    return { backend: choice };
  }
  const detection = await detectBackend(probe);
  rep.info?.(`Backend: ${detection.backend} (${detection.reasons.join("; ")})`);
  return { backend: detection.backend, detection };
}

// ---------------------------------------------------------------------------------------------------------------
// Source build

async function sourceInstall(
  opts: InstallOptions & { source: string },
  { backend, detection, env, probe, rep }: InstallContext,
): Promise<InstallResult> {
  const kind = classifySource(opts.source);
  const source = kind === "url" ? opts.source : resolvePath(opts.source);
  if (kind === "bundle" && !existsSync(source)) {
    throw new GglibError("build_failed", `--source ${opts.source}: no such folder or file.`, {
      hint: "Pass a llama.cpp source folder, a git bundle (.bundle) or a git URL.",
    });
  }
  rep.step?.("Checking build tools");
  const deps = await checkDependencies({ backend, needGit: kind !== "dir" }, probe);
  assertDependencies(deps);
  rep.info?.(formatDependencies(deps));

  const work = join(
    cacheDir(env),
    "llama-build",
    createHash("sha1")
      .update(`${source}\0${opts.version ?? ""}`)
      .digest("hex")
      .slice(0, 12),
  );
  const logFile = join(
    cacheDir(env),
    "llama-build",
    "logs",
    `build-${new Date().toISOString().replace(/[:.]/g, "-")}.log`,
  );
  const staging = `${paths.llamaDir(env)}.staging-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const stageNames: Record<BuildStage, string> = {
    prepare: kind === "dir" ? `Preparing ${source}` : `Cloning ${source}`,
    configure: "Configuring (cmake)",
    build: "Building llama-server",
    install: "Installing",
  };
  try {
    const res = await buildFromSource({
      source,
      backend,
      workDir: work,
      installDir: staging,
      // llama-cli beside llama-server: `gglib chat --cli` looks for it there (and the test rig can reuse the install)
      // rpc-server too: `gglib rpc-server` runs it on a worker host (llama.cpp's RPC backend)
      optionalTargets: ["llama-cli", ...RPC_SERVER_TARGETS],
      ...(opts.version ? { gitRef: opts.version } : {}),
      ...(opts.cmakeFlags ? { cmakeFlags: opts.cmakeFlags } : {}),
      ...(opts.jobs ? { jobs: opts.jobs } : {}),
      logFile,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onStage: (s) => rep.step?.(stageNames[s]),
      onProgress: (f, line) => rep.progress?.(f, progressDetail(line)),
    });
    const versionText = await verifyBinary(join(staging, "bin", exeName()), logFile);
    const finalBinary = paths.llamaServerBinary(env);
    const record: InstallRecord = {
      schema: 1,
      installType: "source",
      version: parseVersionText(versionText) ?? res.version ?? res.commit.slice(0, 7),
      ...(opts.version ? { tag: opts.version } : {}),
      commit: res.commit !== "unknown" ? res.commit : (commitFromVersion(versionText) ?? "unknown"),
      backend,
      cmakeFlags: res.cmakeFlags,
      source,
      sourceKind: kind,
      binaryPath: finalBinary,
      installedAt: new Date().toISOString(),
      durationMs: res.durationMs,
      logFile: join(paths.llamaDir(env), "build.log"),
    };
    copyFileSync(logFile, join(staging, "build.log"));
    await writeInstallRecord(join(staging, "install.json"), record);
    swapIntoPlace(staging, paths.llamaDir(env));
    return { changed: true, record, ...(detection ? { detection } : {}), versionText };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Installs llama.cpp binaries that were already built elsewhere (the test rig's build of the same commit and
 * flags), with their install record, instead of building them again: copied into a staging folder, verified with
 * `--version`, swapped into <dataDir>/llama like any install.
 */
export async function adoptBuild(opts: {
  /** The folder holding bin/llama-server (and optionally bin/llama-cli). */
  from: string;
  record: InstallRecord;
  env?: NodeJS.ProcessEnv;
}): Promise<InstallResult> {
  const env = opts.env ?? process.env;
  return withInstallLock(env, async () => {
    const staging = `${paths.llamaDir(env)}.staging-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    try {
      mkdirSync(join(staging, "bin"), { recursive: true });
      for (const f of readdirSync(join(opts.from, "bin"))) {
        copyFileSync(join(opts.from, "bin", f), join(staging, "bin", f));
        chmodSync(join(staging, "bin", f), 0o755);
      }
      const versionText = await verifyBinary(join(staging, "bin", exeName()));
      const record: InstallRecord = {
        ...opts.record,
        version: parseVersionText(versionText) ?? opts.record.version,
        binaryPath: paths.llamaServerBinary(env),
        installedAt: new Date().toISOString(),
      };
      delete record.logFile;
      await writeInstallRecord(join(staging, "install.json"), record);
      swapIntoPlace(staging, paths.llamaDir(env));
      return { changed: true, record, versionText };
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });
}

/** `[ 42%] Building CXX object tools/server/CMakeFiles/llama-server.dir/server.cpp.o` → `server.cpp` */
function progressDetail(line: string): string {
  const obj = /([\w.+-]+)\.(?:o|obj)\b/.exec(line)?.[1];
  if (obj) return obj;
  const link = /Linking \w+ (?:\w+ )?(?:executable|static library|shared library) (\S+)/.exec(line)?.[1];
  if (link) return `linking ${basename(link)}`;
  return line.replace(/^\[\s*\d+%\]\s*/, "").slice(0, 40);
}

function assertDependencies(deps: readonly Dependency[]): void {
  const missing = deps.filter((d) => !d.found || d.problem);
  if (missing.length === 0) return;
  throw new GglibError("build_failed", `Missing build tools: ${missing.map((d) => d.name).join(", ")}.`, {
    hint: `${formatDependencies(deps)}\nOr skip building: run \`gglib llama install\` without --source for a prebuilt binary (online).`,
  });
}

function resolvePath(p: string): string {
  return join(p.startsWith("/") ? "" : process.cwd(), p);
}

// ---------------------------------------------------------------------------------------------------------------
// Prebuilt download

async function prebuiltInstall(
  opts: InstallOptions,
  { backend, detection, env, probe, rep }: InstallContext,
): Promise<InstallResult> {
  rep.step?.(`Looking up llama.cpp ${opts.version ?? "latest"} release`);
  const release = await fetchRelease({
    ...(opts.version ? { tag: opts.version } : {}),
    env,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const plat = { os: probe.platform, arch: probe.arch };
  const asset = chooseAsset(release, plat, backend, detection?.cuda.version);
  if (!asset) {
    throw new GglibError(
      "build_failed",
      `llama.cpp ${release.tag_name} has no prebuilt binary for ${plat.os}-${plat.arch} with the ${backend} backend.`,
      {
        hint:
          `${SOURCE_HINT}` +
          (backend === "cuda" && chooseAsset(release, plat, "vulkan")
            ? `\nOr the prebuilt Vulkan build, which also runs on NVIDIA GPUs: gglib llama install --backend vulkan`
            : "") +
          (backend !== "cpu" && chooseAsset(release, plat, "cpu")
            ? `\nOr the CPU build: gglib llama install --backend cpu`
            : ""),
      },
    );
  }
  const t0 = Date.now();
  const downloads = join(cacheDir(env), "llama-downloads");
  const archive = join(downloads, asset.name);
  const staging = `${paths.llamaDir(env)}.staging-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    await fetchArchive(asset, archive, rep, opts.signal);
    rep.step?.(`Extracting ${asset.name}`);
    const unpacked = join(staging, "unpacked");
    await extractArchive(archive, unpacked);
    const extra = probe.platform === "win32" ? cudartAsset(release, asset) : undefined;
    const binSrc = findBinaryDir(unpacked);
    if (!binSrc) {
      throw new GglibError("build_failed", `${asset.name} holds no ${exeName()}.`, {
        hint: `The release layout may have changed. ${SOURCE_HINT}`,
      });
    }
    await rename(binSrc, join(staging, "bin"));
    if (extra) {
      try {
        const dll = join(downloads, extra.name);
        await fetchArchive(extra, dll, rep, opts.signal);
        await extractArchive(dll, join(staging, "bin"));
      } catch (e) {
        rep.warn?.(`Could not add the CUDA runtime (${extra.name}): ${(e as Error).message}`);
      }
    }
    await rm(unpacked, { recursive: true, force: true });
    makeExecutables(join(staging, "bin"));
    const versionText = await verifyBinary(join(staging, "bin", exeName()));
    const record: InstallRecord = {
      schema: 1,
      installType: "prebuilt",
      version: parseVersionText(versionText) ?? release.tag_name,
      tag: release.tag_name,
      commit: commitFromVersion(versionText) ?? "unknown",
      backend,
      cmakeFlags: [],
      source: asset.browser_download_url,
      sourceKind: "release",
      asset: asset.name,
      binaryPath: paths.llamaServerBinary(env),
      installedAt: new Date().toISOString(),
      durationMs: Date.now() - t0,
    };
    await writeInstallRecord(join(staging, "install.json"), record);
    rep.step?.("Installing");
    swapIntoPlace(staging, paths.llamaDir(env));
    await rm(archive, { force: true });
    return { changed: true, record, ...(detection ? { detection } : {}), versionText };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function fetchArchive(
  asset: Release["assets"][number],
  dest: string,
  rep: InstallReporter,
  signal?: AbortSignal,
): Promise<void> {
  rep.step?.(`Downloading ${asset.name}`);
  await downloadAsset(asset, dest, {
    onProgress: (got, total) =>
      rep.progress?.(
        total > 0 ? got / total : 0,
        total > 0 ? `${formatBytes(got)} / ${formatBytes(total)}` : formatBytes(got),
      ),
    ...(signal ? { signal } : {}),
  });
}

/** chmod +x the regular files without an extension (and .so/.dylib untouched); symlinks are left alone. */
function makeExecutables(dir: string): void {
  if (process.platform === "win32") return;
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const st = lstatSync(p);
    if (st.isFile() && (!f.includes(".") || /^llama-/.test(f)) && !/\.(so|dylib|h|txt|md|json)(\.|$)/.test(f))
      chmodSync(p, 0o755);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared steps

/** Runs `<bin> --version`; it must exit 0 (this also proves its shared libraries load). Returns its text. */
async function verifyBinary(bin: string, logFile?: string): Promise<string> {
  let r;
  try {
    r = await run(bin, ["--version"], { timeoutMs: 30_000 });
  } catch (e) {
    throw new GglibError("build_failed", `The new llama-server cannot be started: ${(e as Error).message}.`, {
      binaryPath: bin,
      hint: logFile ? `Full build log: ${logFile}` : SOURCE_HINT,
    });
  }
  const text = (r.stderr + "\n" + r.stdout).trim();
  if (r.code !== 0) {
    throw new GglibError(
      "build_failed",
      `The new llama-server fails \`--version\` (exit ${r.code ?? r.signal}): ${text.split("\n").slice(-3).join(" | ")}`,
      {
        binaryPath: bin,
        hint: logFile ? `Full build log: ${logFile}` : `A library may be missing on this system. ${SOURCE_HINT}`,
      },
    );
  }
  return text;
}

/** Replaces `target` with `staging` (rename; the old one is removed after). A running old binary keeps working. */
function swapIntoPlace(staging: string, target: string): void {
  const old = `${target}.old-${process.pid}`;
  rmSync(old, { recursive: true, force: true });
  if (existsSync(target)) renameSync(target, old);
  try {
    renameSync(staging, target);
  } catch (e) {
    if (existsSync(old)) renameSync(old, target);
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}

/** One `gglib llama install/update/uninstall` at a time (they replace the same folder). */
function withInstallLock<T>(env: NodeJS.ProcessEnv, fn: () => Promise<T>): Promise<T> {
  const held = ({ pid }: { pid: number }) =>
    new GglibError("build_failed", `Another \`gglib llama install/update\` is running (pid ${pid}).`, {
      hint: "Wait for it to finish, or stop it and run the command again.",
    });
  return withLock(paths.llamaDir(env) + ".lock", { held }, fn);
}

// ---------------------------------------------------------------------------------------------------------------
// status / update / uninstall

export interface LlamaStatus {
  installed: boolean;
  dir: string;
  binaryPath: string;
  record?: InstallRecord;
  /** `--version` ran and exited 0. */
  healthy: boolean;
  versionText?: string;
  /** Why it is not healthy. */
  problem?: string;
  /** GGLIB_LLAMA_SERVER is set: gglib runs that binary instead. */
  override?: string;
}

export async function llamaStatus(env: NodeJS.ProcessEnv = process.env): Promise<LlamaStatus> {
  const dir = paths.llamaDir(env);
  const record = readInstallRecord(paths.llamaInstallRecord(env));
  const binaryPath = record?.binaryPath ?? paths.llamaServerBinary(env);
  const base = {
    dir,
    binaryPath,
    ...(record ? { record } : {}),
    ...(env.GGLIB_LLAMA_SERVER ? { override: env.GGLIB_LLAMA_SERVER } : {}),
  };
  if (!existsSync(binaryPath)) {
    return {
      ...base,
      installed: false,
      healthy: false,
      problem: record ? `the install record exists but ${binaryPath} is gone` : "llama.cpp is not installed",
    };
  }
  try {
    const r = await run(binaryPath, ["--version"], { env, timeoutMs: 30_000 });
    const text = (r.stderr + "\n" + r.stdout).trim();
    if (r.code === 0) return { ...base, installed: true, healthy: true, versionText: text };
    return {
      ...base,
      installed: true,
      healthy: false,
      versionText: text,
      problem: `\`--version\` exited ${r.code ?? r.signal}`,
    };
  } catch (e) {
    return { ...base, installed: true, healthy: false, problem: `cannot run it: ${(e as Error).message}` };
  }
}

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
  if (record.sourceKind === "url" && !opts.force) {
    const head = await remoteHead(record.source, record.tag);
    if (head && head === record.commit) {
      rep.info?.(`Already up to date: ${record.commit.slice(0, 12)} is the newest commit of ${record.source}.`);
      return { changed: false, record };
    }
  }
  if (record.sourceKind === "bundle" && !opts.force) {
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

export interface UninstallResult {
  removed: boolean;
  dir: string;
  /** Build trees and downloads removed too (purge). */
  purged: string[];
}

export async function uninstallLlama(
  opts: { env?: NodeJS.ProcessEnv; purge?: boolean } = {},
): Promise<UninstallResult> {
  const env = opts.env ?? process.env;
  const dir = paths.llamaDir(env);
  const removed = existsSync(dir);
  await withInstallLock(env, async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const purged: string[] = [];
  if (opts.purge) {
    for (const p of [join(cacheDir(env), "llama-build"), join(cacheDir(env), "llama-downloads")]) {
      if (existsSync(p)) {
        await rm(p, { recursive: true, force: true });
        purged.push(p);
      }
    }
  }
  return { removed, dir, purged };
}
