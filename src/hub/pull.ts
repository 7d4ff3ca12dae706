/**
 * `pullModel("user/repo[:quant or file]", { modelsDir })`: a GGUF model from the Hugging Face hub into the models
 * folder, registered. The steps, each reported through onProgress:
 *
 *   manifest   repo info (the commit everything is pinned to; gated/private) and the recursive file listing,
 *              through @huggingface/hub (src/hub/api.ts);
 *   choose     the variant the tag names, or the default that fits this machine (src/hub/choose.ts);
 *   download   every shard, then the projector (mmproj) when the repo has one: resumable, verified against the
 *              hub's SHA-256, atomically renamed into `<modelsDir>/<user>/<repo>/<name>/` (src/hub/download.ts);
 *              files already there with the right checksum are kept;
 *   register   in the registry when one is passed (name = the file stem, aliases `<user>/<repo>:<quant>` and,
 *              when no tag was given, `<user>/<repo>`).
 *
 * Used by `gglib pull` (src/cli/commands/pull.ts) and by the proxy's Ollama `POST /api/pull`.
 */
import { readFile, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { GglibError, isGglibError } from "../core/errors.js";
import { formatBytes, MiB } from "../core/units.js";
import { budgetFromSnapshot, type EstimatorModel, type FitBudget } from "../models/estimator.js";
import type { Registry } from "../models/registry.js";
import { takeLock, type ReleaseLock } from "../process/lockfile.js";
import type { SystemProbe } from "../system/types.js";
import {
  hubError,
  listRepoFiles,
  readRemoteArchitecture,
  repoInfo,
  resolveUrl,
  hubFetch,
  type HubContext,
} from "./api.js";
import { architectureOf, chooseDefault } from "./choose.js";
import { digestFile, downloadToFile, partPaths, type DownloadOptions, type DownloadResult } from "./download.js";
import {
  assertPullName,
  availableHint,
  findMmproj,
  findVariant,
  localName,
  mmprojFor,
  planFiles,
  refAlias,
  repoModels,
  variantTag,
  type PlannedFile,
  type RepoFile,
  type Variant,
} from "./files.js";
import { hubUrlFrom, parsePullRef, tokenFrom } from "./ref.js";

export type PullPhase = "manifest" | "choose" | "download" | "verify" | "register" | "done";

export interface PullProgress {
  phase: PullPhase;
  /** Text for people, close to Ollama's: "pulling manifest", "downloading <file>", "verifying sha256 digest", "success". */
  status: string;
  /** Repo path of the file concerned. */
  file?: string;
  /** `sha256:<hex>` of that file (its LFS oid), when the hub lists one. */
  digest?: string;
  /** Bytes of this file in place / its size. */
  completed?: number;
  total?: number;
  /** Over every file of the pull. */
  overallCompleted?: number;
  overallTotal?: number;
  /** 1-based position of the file, and how many there are. */
  fileIndex?: number;
  fileCount?: number;
  /** Bytes per second over the last few seconds of this file (downloading only). */
  bytesPerSecond?: number;
}

export interface PullOptions {
  modelsDir: string;
  /** Default HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /** Default HF_TOKEN (or HUGGING_FACE_HUB_TOKEN). */
  token?: string;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  /** Register the model here. Without one, the files are placed (the models-folder scan finds them) but not registered. */
  registry?: Registry;
  /** Model name (default: the file stem); also its folder's name, so no / or :. */
  name?: string;
  /** false: leave the projector out; a string: which one (F16, a file name). Default: the best one, if any. */
  mmproj?: boolean | string;
  /** Branch, tag or commit, when the reference has no @revision. Default main. */
  revision?: string;
  /** Memory reading for the default choice. Default: the system probe. */
  probe?: SystemProbe;
  env?: NodeJS.ProcessEnv;
  /** Retry and stall knobs of each file's download. */
  download?: Pick<DownloadOptions, "maxAttempts" | "retryDelayMs" | "stallMs" | "progressIntervalMs">;
  /** Resolve and choose only: no download, no registration. */
  dryRun?: boolean;
}

export interface PulledFile {
  /** Path in the repo. */
  repoPath: string;
  /** Absolute local path. */
  path: string;
  size: number;
  sha256?: string;
  role: "model" | "mmproj";
  /** Already in place with the right checksum: not downloaded again. */
  reused: boolean;
  /** Bytes fetched for it in this pull. */
  transferred: number;
  /** A partial download from an earlier run was resumed at this byte. */
  resumedFrom: number;
}

export interface PullResult {
  /** The registry's name for it (the name to use with the proxy, chat, serve). */
  name: string;
  aliases: string[];
  repo: string;
  /** The commit the files come from (or the revision asked for when the hub gave none). */
  revision: string;
  quant?: string;
  /** Why this variant (the tag, or the default choice's reason). */
  reason: string;
  /** Folder holding the model's files. */
  dir: string;
  /** First shard / the file. */
  modelPath: string;
  mmproj?: string;
  files: PulledFile[];
  registered: boolean;
  totalBytes: number;
  transferredBytes: number;
  warnings: string[];
}

/** What the pull will fetch: resolved and chosen, nothing downloaded (also the dry run's answer). */
interface Plan {
  repo: string;
  revision: string;
  variant: Variant;
  reason: string;
  name: string;
  aliases: string[];
  dir: string;
  files: (PlannedFile & { dest: string })[];
  warnings: string[];
}

const MANIFEST = ".gglib-pull.json";

interface Manifest {
  repo: string;
  revision: string;
  files: { repoPath: string; local: string; size: number; sha256?: string; gitOid?: string; mtimeMs: number }[];
}

export async function pullModel(ref: string, opts: PullOptions): Promise<PullResult> {
  const env = opts.env ?? process.env;
  const ctx: HubContext = { hubUrl: hubUrlFrom(opts.hubUrl, env) };
  const token = tokenFrom(opts.token, env);
  if (token) ctx.token = token;
  if (opts.signal) ctx.signal = opts.signal;
  const emit = (p: PullProgress) => opts.onProgress?.(p);

  const plan = await makePlan(ref, opts, ctx, emit);
  const overallTotal = plan.files.reduce((s, f) => s + f.file.size, 0);
  const result: PullResult = {
    name: plan.name,
    aliases: plan.aliases,
    repo: plan.repo,
    revision: plan.revision,
    reason: plan.reason,
    dir: plan.dir,
    modelPath: plan.files.find((f) => f.role === "model")!.dest,
    files: [],
    registered: false,
    totalBytes: overallTotal,
    transferredBytes: 0,
    warnings: plan.warnings,
  };
  if (plan.variant.quant) result.quant = plan.variant.quant;
  const mm = plan.files.find((f) => f.role === "mmproj");
  if (mm) result.mmproj = mm.dest;
  if (opts.dryRun) {
    result.files = plan.files.map((f) => pulled(f, false, 0, 0));
    return result;
  }

  const unlock = await lock(plan.dir);
  try {
    const manifest = await readManifest(plan.dir);
    const reuse: boolean[] = [];
    for (const f of plan.files) {
      let last = 0;
      const checking = (n: number) => {
        const now = Date.now();
        if (now - last < 250) return;
        last = now;
        const e: PullProgress = { phase: "verify", status: `checking ${f.file.path}`, file: f.file.path };
        e.completed = n;
        e.total = f.file.size;
        emit(e);
      };
      reuse.push(await inPlace(f, manifest, checking));
    }
    await assertDiskSpace(
      plan.dir,
      plan.files.filter((_, i) => !reuse[i]),
    );
    let done = 0;
    for (const [i, f] of plan.files.entries()) {
      const base: PullProgress = {
        phase: "download",
        status: `downloading ${f.file.path}`,
        file: f.file.path,
        total: f.file.size,
        overallTotal,
        fileIndex: i + 1,
        fileCount: plan.files.length,
      };
      if (f.file.sha256) base.digest = `sha256:${f.file.sha256}`;
      if (reuse[i]) {
        result.files.push(pulled(f, true, 0, 0));
        done += f.file.size;
        emit({ ...base, status: `${f.file.path} is already here`, completed: f.file.size, overallCompleted: done });
        continue;
      }
      const speed = speedMeter();
      const r = await fetchOne(plan, f, ctx, opts, (p) => {
        const e: PullProgress = { ...base, completed: p.completed, overallCompleted: done + p.completed };
        if (p.phase === "hashing") e.status = `checking the partial download of ${f.file.path}`;
        else e.bytesPerSecond = speed(p.transferred);
        emit(e);
      });
      done += f.file.size;
      emit({
        ...base,
        phase: "verify",
        status: "verifying sha256 digest",
        completed: f.file.size,
        overallCompleted: done,
      });
      result.files.push(pulled(f, false, r.transferred, r.resumedFrom));
      result.transferredBytes += r.transferred;
      await writeManifest(plan, result.files);
    }
    if (reuse.some(Boolean)) await writeManifest(plan, result.files); // files re-hashed: next time, a stat
  } finally {
    await unlock();
  }

  if (opts.registry) {
    emit({ phase: "register", status: `registering ${plan.name}` });
    const reg = await register(opts.registry, plan, result);
    result.name = reg.name;
    result.aliases = reg.aliases;
    result.registered = true;
  }
  emit({ phase: "done", status: "success", overallCompleted: overallTotal, overallTotal });
  return result;
}

function pulled(f: Plan["files"][number], reused: boolean, transferred: number, resumedFrom: number): PulledFile {
  const p: PulledFile = {
    repoPath: f.file.path,
    path: f.dest,
    size: f.file.size,
    role: f.role,
    reused,
    transferred,
    resumedFrom,
  };
  if (f.file.sha256) p.sha256 = f.file.sha256;
  return p;
}

async function makePlan(
  ref: string,
  opts: PullOptions,
  ctx: HubContext,
  emit: (p: PullProgress) => void,
): Promise<Plan> {
  const r = parsePullRef(ref);
  if (opts.name !== undefined) assertPullName(opts.name);
  emit({ phase: "manifest", status: "pulling manifest" });
  const asked = r.revision ?? opts.revision ?? "main";
  const info = await repoInfo(ctx, r.repo, asked);
  if (info.gated && !ctx.token) {
    throw hubError(new Error("gated"), ctx, r.repo, { status: 401, code: "GatedRepo" });
  }
  const revision = info.sha ?? asked;
  const models = repoModels(await listRepoFiles(ctx, r.repo, revision));
  const warnings = [...models.warnings];
  if (models.variants.length === 0) {
    throw new GglibError("hub_not_found", `${r.repo} holds no GGUF model.`, { hint: availableHint(models, r.repo) });
  }
  emit({ phase: "choose", status: "choosing the quantization" });
  let variant: Variant;
  let reason: string;
  if (r.tag !== undefined) {
    variant = findVariant(models, r.tag, r.repo);
    reason = `${variantTag(variant)}: as asked`;
  } else if (models.variants.length === 1) {
    variant = models.variants[0]!;
    reason = `${variantTag(variant)}: the only model in the repo`;
  } else {
    const mm = opts.mmproj === false ? undefined : mmprojFor(models, models.variants[0]!);
    const [budget, arch] = await Promise.all([
      machineBudget(opts.probe),
      remoteArchitecture(ctx, r.repo, revision, models.variants[0]!.files[0]!),
    ]);
    const choice = chooseDefault(models.variants, arch, budget, mm?.size);
    variant = choice.variant;
    reason = choice.reason;
    if (choice.fits === false) warnings.push(`no quantization of ${r.repo} is expected to fit this machine's memory`);
  }
  let mmproj: RepoFile | undefined;
  if (typeof opts.mmproj === "string") mmproj = findMmproj(models, opts.mmproj, r.repo);
  else if (opts.mmproj !== false) mmproj = mmprojFor(models, variant);
  const name = opts.name ?? localName(variant.stem);
  assertPullName(name);
  const aliases = [refAlias(r.repo, variant)];
  if (r.tag === undefined) aliases.push(r.repo);
  const planned = planFiles(r.repo, name, variant, mmproj);
  const root = resolve(opts.modelsDir);
  const files = planned.map((f) => ({ ...f, dest: join(root, ...f.local.split("/")) }));
  const dir = dirname(files[0]!.dest);
  const plan: Plan = { repo: r.repo, revision, variant, reason, name, aliases, dir, files, warnings };
  if (opts.registry) assertNameFree(opts.registry, plan);
  return plan;
}

/** The budget the default choice is judged against; undefined when the machine cannot be read. */
async function machineBudget(probe: SystemProbe | undefined): Promise<FitBudget | undefined> {
  try {
    const p = probe ?? (await import("../system/probe.js")).defaultSystemProbe();
    return budgetFromSnapshot(await p.memory({ fresh: true }));
  } catch {
    return undefined;
  }
}

async function remoteArchitecture(
  ctx: HubContext,
  repo: string,
  revision: string,
  f: RepoFile,
): Promise<EstimatorModel | undefined> {
  try {
    const meta = await readRemoteArchitecture(ctx, resolveUrl(ctx.hubUrl, repo, revision, f.path), f.size);
    return meta ? architectureOf(meta) : undefined;
  } catch (e) {
    if (ctx.signal?.aborted) throw e;
    return undefined;
  }
}

function assertNameFree(reg: Registry, plan: Plan): void {
  const model = plan.files.find((f) => f.role === "model")!.dest;
  const taken = reg.get(plan.name);
  if (taken && resolve(taken.path) !== model) {
    throw new GglibError(
      "invalid_config",
      `"${plan.name}" is already the name of a registered model (${taken.path}).`,
      {
        hint: `Pick another name with --name, or remove the other one: gglib models remove ${plan.name}`,
      },
    );
  }
}

/** Room for what is left to fetch (each file's size less its partial download), plus 64 MiB to spare. */
async function assertDiskSpace(dir: string, files: readonly Plan["files"][number][]): Promise<void> {
  let need = 0;
  for (const f of files) {
    const part = await stat(partPaths(f.dest).part).then(
      (st) => st.size,
      () => 0,
    );
    need += Math.max(0, f.file.size - part);
  }
  if (need === 0) return;
  let free: number;
  try {
    const st = await statfs(dir);
    free = Number(st.bavail) * Number(st.bsize);
  } catch {
    return; // cannot tell: let the writes say
  }
  const spare = 64 * MiB;
  if (need + spare > free) {
    throw new GglibError(
      "download_failed",
      `Not enough disk space in ${dir}: the pull needs ${formatBytes(need)}, ${formatBytes(free)} is free.`,
      {
        hint: "Free some space, or pull into another disk with --models-dir (or pick a smaller quantization).",
      },
    );
  }
}

/** Speed over a sliding window of ~3 s. */
function speedMeter(): (transferred: number) => number {
  const samples: { t: number; n: number }[] = [];
  return (n) => {
    const t = Date.now();
    samples.push({ t, n });
    while (samples.length > 2 && t - samples[0]!.t > 3000) samples.shift();
    const first = samples[0]!;
    const dt = (t - first.t) / 1000;
    return dt > 0.2 ? Math.max(0, (n - first.n) / dt) : 0;
  };
}

/** Downloads one file; a checksum failure after resuming an old partial file is retried once from scratch. */
async function fetchOne(
  plan: Plan,
  f: Plan["files"][number],
  ctx: HubContext,
  opts: PullOptions,
  onProgress: NonNullable<DownloadOptions["onProgress"]>,
): Promise<DownloadResult> {
  const target = {
    url: resolveUrl(ctx.hubUrl, plan.repo, plan.revision, f.file.path),
    dest: f.dest,
    size: f.file.size,
    ...(f.file.sha256 ? { sha256: f.file.sha256 } : {}),
    ...(f.file.gitOid ? { gitOid: f.file.gitOid } : {}),
  };
  const o: DownloadOptions = {
    ...opts.download,
    fetch: hubFetch(ctx),
    onProgress,
    httpError: (status, code, message) =>
      hubError(new Error(message), ctx, plan.repo, {
        status,
        code,
        message,
        file: f.file.path,
        revision: plan.revision,
      }),
  };
  if (opts.signal) o.signal = opts.signal;
  await rm(f.dest, { force: true });
  try {
    return await downloadToFile(target, o);
  } catch (e) {
    if (!isGglibError(e, "checksum_mismatch")) throw e;
    const first = e;
    // the part file is gone now: the second try starts from zero; a second mismatch is final
    try {
      return await downloadToFile(target, o);
    } catch (e2) {
      throw isGglibError(e2, "checksum_mismatch") ? e2 : first;
    }
  }
}

/** The file is there with the right content: listed in the manifest with the same size/mtime, or re-hashed. */
async function inPlace(
  f: Plan["files"][number],
  manifest: Manifest | undefined,
  onBytes?: (n: number) => void,
): Promise<boolean> {
  let st;
  try {
    st = await stat(f.dest);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size !== f.file.size) return false;
  const m = manifest?.files.find((x) => x.local === f.dest);
  if (
    m &&
    m.size === st.size &&
    Math.floor(m.mtimeMs) === Math.floor(st.mtimeMs) &&
    m.sha256 === f.file.sha256 &&
    m.gitOid === f.file.gitOid
  ) {
    return true;
  }
  const expected = f.file.sha256 ?? f.file.gitOid;
  if (!expected) return false;
  return (await digestFile(f.dest, f.file, onBytes)) === expected;
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, MANIFEST), "utf8")) as Manifest;
  } catch {
    return undefined;
  }
}

async function writeManifest(plan: Plan, files: PulledFile[]): Promise<void> {
  const entries: Manifest["files"] = [];
  for (const p of files) {
    const f = plan.files.find((x) => x.dest === p.path)!;
    const st = await stat(p.path);
    const e: Manifest["files"][number] = { repoPath: p.repoPath, local: p.path, size: p.size, mtimeMs: st.mtimeMs };
    if (f.file.sha256) e.sha256 = f.file.sha256;
    if (f.file.gitOid) e.gitOid = f.file.gitOid;
    entries.push(e);
  }
  const old = await readManifest(plan.dir);
  const keep = (old?.files ?? []).filter((x) => !entries.some((e) => e.local === x.local));
  const m: Manifest = { repo: plan.repo, revision: plan.revision, files: [...keep, ...entries] };
  const tmp = join(plan.dir, `${MANIFEST}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(m, null, 2) + "\n");
  await rename(tmp, join(plan.dir, MANIFEST));
}

/** One pull per model folder at a time (a second one would write the same part files). */
function lock(dir: string): Promise<ReleaseLock> {
  return takeLock(join(dir, ".gglib-pull.lock"), {
    held: ({ pid, ours }) =>
      ours
        ? new GglibError("invalid_config", `A pull into ${dir} is already running in this process.`, {
            hint: "Wait for it to finish.",
          })
        : new GglibError("invalid_config", `Another pull into ${dir} is running (pid ${pid}).`, {
            hint: "Wait for it to finish (or stop it); the next pull picks up where it left off.",
          }),
  });
}

async function register(reg: Registry, plan: Plan, result: PullResult): Promise<{ name: string; aliases: string[] }> {
  const free = (a: string, ownId?: number) => {
    const hit = reg.get(a);
    return hit === undefined || hit.id === ownId;
  };
  const existing = reg.findByPath(result.modelPath);
  if (existing) {
    const aliases = [...new Set([...existing.aliases, ...plan.aliases.filter((a) => free(a, existing.id))])];
    reg.update(existing.name, { aliases, ...(result.mmproj ? { mmproj: result.mmproj } : {}) });
    const r = await reg.refresh(existing.name);
    return { name: r.model.name, aliases: r.model.aliases };
  }
  const m = await reg.add({
    path: result.modelPath,
    name: plan.name,
    aliases: plan.aliases.filter((a) => free(a)),
    ...(result.mmproj ? { mmproj: result.mmproj } : {}),
  });
  return { name: m.name, aliases: m.aliases };
}
