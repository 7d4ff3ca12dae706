/**
 * `gglib llama install`, as a library (status.ts, update.ts and uninstall.ts beside it do the other subcommands).
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
import { withInstallLock } from "./install-lock.js";
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
    for (const p of res.patches.skipped) rep.info?.(`patch ${p.name} not applied: ${p.reason}`);
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
      ...(res.patches.applied.length > 0 ? { patches: res.patches.applied } : {}),
      ...(res.patches.skipped.length > 0 ? { patchesSkipped: res.patches.skipped.map((p) => p.id) } : {}),
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
