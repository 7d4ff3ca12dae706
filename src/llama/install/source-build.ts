import { createWriteStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { copyFile, chmod, mkdir, rename, rm } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { GglibError } from "../../core/errors.js";
import { run } from "../../process/exec.js";
import { applyPatches, type PatchOutcome, type SourcePatch } from "./patches.js";

/**
 * Builds llama.cpp's llama-server (and optionally llama-cli) from source with cmake: from a folder, a git bundle
 * (as shipped in the npm package node-llama-cpp) or a git URL. Used by `gglib llama install --source` and by the
 * test rig. Offline: nothing is downloaded (the web UI and curl/OpenSSL are turned off).
 */
export type Backend = "cpu" | "cuda" | "vulkan" | "metal";

export interface SourceBuildOptions {
  /** A source folder (has CMakeLists.txt), a git bundle file, or a git URL. */
  source: string;
  backend: Backend;
  /** Working folder: the clone goes to <workDir>/src, the build tree to <workDir>/build-<backend>. */
  workDir: string;
  /** Binaries are copied to <installDir>/bin. */
  installDir: string;
  /** Git branch/tag to check out when cloning a URL. */
  gitRef?: string;
  /** cmake targets (default: llama-server). */
  targets?: readonly string[];
  /** More targets, built when this source tree defines them (llama-cli: older trees call it `main`). */
  optionalTargets?: readonly string[];
  /** Extra -D flags, appended after ours. */
  cmakeFlags?: readonly string[];
  /** Our patches to apply to a tree we clone (default: every one in patches.ts); a source folder is built as is. */
  patches?: readonly SourcePatch[];
  /** Parallel build jobs (default: the number of cores). */
  jobs?: number;
  /** 0..1 from cmake's `[ NN%]` lines, with the line. */
  onProgress?: (fraction: number, line: string) => void;
  /** Stage changes: "clone", "configure", "build", "install". */
  onStage?: (stage: BuildStage) => void;
  /** Full build log. */
  logFile: string;
  signal?: AbortSignal;
}

export type BuildStage = "prepare" | "configure" | "build" | "install";

export interface SourceBuildResult {
  binaryPath: string;
  binaries: string[];
  commit: string;
  version?: string;
  cmakeFlags: string[];
  /** Our patches applied (ids, patches.ts) and the ones left out with why. */
  patches: PatchOutcome;
  durationMs: number;
  logFile: string;
}

/** Flags for an offline, relocatable build: static libs so the installed binary does not depend on the build tree. */
export function cmakeFlagsFor(backend: Backend): string[] {
  const base = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    // the RPC backend: `llama-server --rpc host:port,...` and `rpc-server` (models split across hosts)
    "-DGGML_RPC=ON",
  ];
  switch (backend) {
    case "cuda":
      return [...base, "-DGGML_CUDA=ON"];
    case "vulkan":
      return [...base, "-DGGML_VULKAN=ON"];
    case "metal":
      return [...base, "-DGGML_METAL=ON"];
    case "cpu":
      return [...base, "-DGGML_METAL=OFF"];
  }
}

/** Parses cmake/make's `[ 42%] Building ...` into 0.42. */
export function parseCmakeProgress(line: string): number | undefined {
  const m = /^\[\s*(\d{1,3})%\]/.exec(line);
  if (!m) return undefined;
  return Math.min(100, Number(m[1])) / 100;
}

/**
 * Targets installed under another name: newer llama.cpp trees call the RPC worker `ggml-rpc-server`; it is
 * installed as `rpc-server`, the name of older trees and of llama.cpp's docs, so one name finds it everywhere.
 */
const INSTALL_NAMES: Readonly<Record<string, string>> = { "ggml-rpc-server": "rpc-server" };

/** The RPC worker's cmake target, whichever name this tree gives it (built when GGML_RPC is on). */
export const RPC_SERVER_TARGETS = ["rpc-server", "ggml-rpc-server"] as const;

export type SourceKind = "dir" | "bundle" | "url";

export function classifySource(source: string): SourceKind {
  if (/^[a-z+]+:\/\//i.test(source) || /^git@[^:]+:/.test(source)) return "url";
  if (existsSync(source) && statSync(source).isDirectory()) return "dir";
  return "bundle";
}

export async function buildFromSource(opts: SourceBuildOptions): Promise<SourceBuildResult> {
  const t0 = Date.now();
  const targets = opts.targets && opts.targets.length > 0 ? [...opts.targets] : ["llama-server"];
  await mkdir(opts.workDir, { recursive: true });
  await mkdir(join(opts.logFile, ".."), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: "w" });
  const logLine = (l: string) => log.write(l + "\n");
  const fail = (message: string, hint: string): never => {
    throw new GglibError("build_failed", message, { hint: `${hint}\nFull build log: ${opts.logFile}` });
  };
  try {
    opts.onStage?.("prepare");
    const kind = classifySource(opts.source);
    let srcDir: string;
    if (kind === "dir") {
      if (!existsSync(join(opts.source, "CMakeLists.txt"))) {
        fail(
          `${opts.source} is not a llama.cpp source folder (no CMakeLists.txt).`,
          "Pass the folder of a llama.cpp checkout.",
        );
      }
      srcDir = opts.source;
    } else {
      if (kind === "bundle" && !existsSync(opts.source)) {
        fail(`Source ${opts.source} does not exist.`, "Pass a llama.cpp folder, a git bundle file or a git URL.");
      }
      srcDir = join(opts.workDir, "src");
      await rm(srcDir, { recursive: true, force: true });
      const args = ["clone", "--quiet"];
      if (kind === "url") args.push("--depth", "1");
      if (opts.gitRef) args.push("--branch", opts.gitRef);
      args.push(opts.source, srcDir);
      logLine(`$ git ${args.join(" ")}`);
      const r = await runLogged("git", args, {}, logLine, opts.signal);
      if (r !== 0) {
        fail(
          `git clone of ${opts.source} failed (exit ${r}).`,
          kind === "url"
            ? "Check the URL and your network, or pass a local folder or bundle with --source."
            : "Is it a git bundle?",
        );
      }
    }
    let commit = "unknown";
    const rev = await run("git", ["-C", srcDir, "rev-parse", "HEAD"]).catch(() => undefined);
    if (rev && rev.code === 0) commit = rev.stdout.trim();
    const patches = await applyPatches(srcDir, {
      owned: kind !== "dir",
      ...(opts.patches ? { patches: opts.patches } : {}),
      log: logLine,
    });

    for (const t of opts.optionalTargets ?? []) if (!targets.includes(t) && definesTarget(srcDir, t)) targets.push(t);
    const buildDir = join(opts.workDir, `build-${opts.backend}`);
    const flags = [...cmakeFlagsFor(opts.backend), ...(opts.cmakeFlags ?? [])];
    opts.onStage?.("configure");
    const configure = ["-S", srcDir, "-B", buildDir, ...flags];
    logLine(`$ cmake ${configure.join(" ")}`);
    const rc = await runLogged("cmake", configure, {}, logLine, opts.signal);
    if (rc !== 0)
      fail(
        `cmake configure failed (exit ${rc}).`,
        "Check that cmake and a C++ compiler are installed (Debian: apt-get install cmake g++).",
      );

    opts.onStage?.("build");
    const jobs = opts.jobs ?? Math.max(1, cpus().length);
    let progress = 0;
    const buildArgs = ["--build", buildDir, "--config", "Release", "-j", String(jobs), "--target", ...targets];
    logLine(`$ cmake ${buildArgs.join(" ")}`);
    const rb = await runLogged(
      "cmake",
      buildArgs,
      {},
      (l) => {
        logLine(l);
        const f = parseCmakeProgress(l);
        // make's percentages are per target and can step back when several targets build: never report that
        if (f !== undefined && f >= progress) {
          progress = f;
          opts.onProgress?.(f, l);
        }
      },
      opts.signal,
    );
    if (opts.signal?.aborted) fail("Build cancelled.", "Run the command again to restart the build.");
    if (rb !== 0)
      fail(`Building ${targets.join(", ")} failed (exit ${rb}).`, "The end of the build log shows the compiler error.");

    opts.onStage?.("install");
    const binDir = join(opts.installDir, "bin");
    await mkdir(binDir, { recursive: true });
    const exe = process.platform === "win32" ? ".exe" : "";
    const installed: string[] = [];
    for (const t of targets) {
      const candidates = [join(buildDir, "bin", t + exe), join(buildDir, "bin", "Release", t + exe)];
      const name = (INSTALL_NAMES[t] ?? t) + exe;
      const built = candidates.find((c) => existsSync(c));
      if (!built)
        fail(`The build finished but ${t} was not found in ${join(buildDir, "bin")}.`, "Check the build log.");
      const dest = join(binDir, name);
      // copy then rename: a running binary of the same name is never overwritten in place
      await copyFile(built!, dest + ".new");
      await chmod(dest + ".new", 0o755);
      await rename(dest + ".new", dest);
      installed.push(dest);
    }
    const binaryPath = installed[0]!;
    const v = await run(binaryPath, ["--version"], { timeoutMs: 30_000 }).catch(() => undefined);
    const version = v ? parseVersionText(v.stderr + "\n" + v.stdout) : undefined;
    return {
      binaryPath,
      binaries: installed,
      commit,
      version,
      cmakeFlags: flags,
      patches,
      durationMs: Date.now() - t0,
      logFile: opts.logFile,
    };
  } finally {
    await new Promise<void>((r) => log.end(() => r()));
  }
}

/** Does a CMakeLists.txt one folder below tools/ or examples/ define the executable `target`? */
export function definesTarget(srcDir: string, target: string): boolean {
  const name = target.replace(/[^\w-]/g, "");
  const re = new RegExp(`(?:set\\s*\\(\\s*TARGET\\s+|add_executable\\s*\\(\\s*)${name}[\\s)]`);
  for (const top of ["tools", "examples"]) {
    let dirs: string[];
    try {
      dirs = readdirSync(join(srcDir, top));
    } catch {
      continue;
    }
    for (const d of dirs) {
      try {
        if (re.test(readFileSync(join(srcDir, top, d, "CMakeLists.txt"), "utf8"))) return true;
      } catch {
        /* not a target folder */
      }
    }
  }
  return false;
}

/** `version: 0.4.0-dev (build 1, commit 80fb11a)` → `0.4.0-dev (build 1, commit 80fb11a)` */
export function parseVersionText(text: string): string | undefined {
  const m = /^version:\s*(.+)$/m.exec(text);
  return m?.[1]?.trim();
}

async function runLogged(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine: (l: string) => void,
  signal?: AbortSignal,
): Promise<number> {
  try {
    const r = await run(cmd, args, {
      env: { ...process.env, ...env },
      onLine: (l) => onLine(l),
      signal,
      maxCapture: 0,
    });
    return r.code ?? 1;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") {
      throw new GglibError("build_failed", `${cmd} is not installed.`, {
        hint:
          cmd === "git"
            ? "Install git (Debian: apt-get install git)."
            : "Install cmake (Debian: apt-get install cmake g++).",
      });
    }
    throw e;
  }
}
