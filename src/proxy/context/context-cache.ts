/**
 * The context cache: a conversation's KV cache survives a model swap. Three steps, each bounded in time and never
 * failing what it is part of:
 *   - prepare (before a start): decide whether the model takes part (GGUF metadata, binary flags), discard a saved
 *     state whose identity changed, and add `--slot-save-path` (and `--no-cache-idle-slots`, see below);
 *   - afterReady (after the load, before the first request is dispatched): restore the saved slots;
 *   - beforeStop (before any graceful stop: eviction, TTL, unload, reload, shutdown): save every slot holding tokens.
 * Then observe() checks the first requests after a restore (llama-server's `timings.cache_n`) and turns the feature
 * off for a model whose restore is not reused.
 *
 * `--no-cache-idle-slots`: with llama-server's default (`--cache-idle-slots`, unified KV cache) a new task moves
 * every other idle slot to the RAM prompt cache and clears it, so a save before a stop finds only the last-used slot
 * (measured on 80fb11a: `n_saved: 0` for the others). The proxy passes `--no-cache-idle-slots` when the binary
 * knows it and the model's extraArgs do not choose either way.
 */
import type { ContextAction, ContextEvent, ContextStatus } from "../api-types.js";
import { statSync, statfsSync } from "node:fs";
import type { ServerConfig } from "../../core/config.js";
import type { ServerHandle } from "../../core/handle.js";
import { readModelMetadata } from "../../gguf/reader.js";
import type { LlamaCapabilities } from "../../llama/capabilities.js";
import { fitsOnDisk, planEviction } from "./budget.js";
import { restoreBoundMs, restoreSlot, saveSlot, slotCount, slotUsage } from "./client.js";
import { contextEligibility, type Eligibility } from "./eligibility.js";
import { cacheSettingsOf, identityDifferences, identityKey, type ContextIdentity } from "./identity.js";
import type { ContextMetrics } from "./metrics.js";
import { SlotStore, type Manifest, type SavedSlot } from "./store.js";
import { judgeReuse } from "./verify.js";
import { planSave, skipWholeSave } from "./save-plan.js";
import { runningEstimate, timedAction, type SlotCosts } from "./worth.js";

/** What the cache needs to know about a model (a slice of the proxy's catalog entry). */
export interface ContextModel {
  name: string;
  server: ServerConfig;
  /** Every file of the model (shards in order). */
  files: readonly string[];
  mmproj?: string | undefined;
  /** A sliding-window model's `--swa-full` choice (the catalog's, src/models/swa-full.ts): its reason when off. */
  swaFull?: { on: boolean; reason: string } | undefined;
}

export interface ContextCacheOptions {
  /** Folder of the saved states (`<cacheDir>/kv-context`). */
  root: string;
  /** Disk budget of all saved states, bytes (> 0). */
  budgetBytes: number;
  /** The llama-server binary and its capability probe. */
  binaryInfo: () => Promise<{ path: string; caps: LlamaCapabilities }>;
  /** Time for all the saves of one stop, ms (default 30 000). */
  saveTimeoutMs?: number;
  /** Time for all the restores of one load, ms (default 30 000). */
  restoreTimeoutMs?: number;
  /**
   * Save every slot that ran a task, even one that prefilling again would take less time than saving it now and
   * restoring it on the next load (default false: such slots are not saved; see worth.ts).
   */
  saveAll?: boolean;
  metrics?: ContextMetrics;
  log?: (line: string) => void;
  now?: () => number;
}

/** What the cache did, as an event: one definition, shared with the dashboard (api-types.ts). */
export type { ContextAction, ContextEvent };

/** Per model, in /api/status: one definition, shared with the dashboard (src/proxy/api-types.ts). */
export type { ContextStatus };

interface Runtime {
  enabled: boolean;
  reason?: string;
  /** What limits reuse while it is on (hybrid/recurrent models: eligibility.ts). */
  caveat?: string;
  dir?: string;
  key?: string;
  identity?: ContextIdentity;
  /** Restore misses in a row (two turn the feature off for the model). */
  misses: number;
  pending?: { restoredTokens: number; left: number };
  lastSave?: ContextStatus["lastSave"];
  lastRestore?: ContextStatus["lastRestore"];
  lastDiscard?: ContextStatus["lastDiscard"];
  /** Set once off for the proxy's lifetime (restore not reused). */
  disabled?: string;
  /** The model's prompt speed and what its slot saves and restores cost: running estimates (worth.ts). */
  costs: SlotCosts;
  /** The current process: the requests whose usage was seen, and the most tokens one of them held. */
  seen: { requests: number; maxTokens: number };
  /** The slot files' checks, started by prepare() so they run while the model loads (by `<id>:<sha256>`). */
  checks?: Map<string, Promise<string | undefined>>;
}

/** What afterReady() found: `restart` when llama-server must not serve (a restore that never finished). */
export interface AfterRestore {
  restart?: string;
}

/** What observe() reads of a finished request (llama-server's usage and timings). */
export interface ObservedUsage {
  cachedTokens?: number | undefined;
  promptTokens?: number | undefined;
  completionTokens?: number | undefined;
  promptPerSecond?: number | undefined;
}

/** The server runs with `--swa-full` (the catalog's choice or the user's extraArgs). */
function swaFullOn(m: ContextModel): boolean {
  return m.server.swaFull === true || (m.server.extraArgs ?? []).includes("--swa-full");
}

/** Flags the user may set in extraArgs that decide the idle-slot behaviour themselves. */
const IDLE_FLAGS = new Set(["--cache-idle-slots", "--no-cache-idle-slots"]);

export class ContextCache {
  readonly store: SlotStore;
  private readonly models = new Map<string, Runtime>();
  private readonly listeners = new Set<(e: ContextEvent) => void>();
  private readonly saveTimeoutMs: number;
  private readonly restoreTimeoutMs: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly running = new Set<string>();
  /** Eligibility by model file version (see eligibility()). */
  private readonly eligibilityOf = new Map<string, Eligibility>();
  private metrics: ContextMetrics | undefined;

  constructor(private readonly o: ContextCacheOptions) {
    this.store = new SlotStore(o.root);
    this.saveTimeoutMs = o.saveTimeoutMs ?? 30_000;
    this.restoreTimeoutMs = o.restoreTimeoutMs ?? 30_000;
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
    this.metrics = o.metrics;
  }

  /** The Prometheus counters (registered once the proxy's registry exists). */
  setMetrics(m: ContextMetrics): void {
    this.metrics = m;
  }

  get budgetBytes(): number {
    return this.o.budgetBytes;
  }

  on(listener: (e: ContextEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Bytes of all saved states on disk. */
  diskBytes(): number {
    return this.store.files().reduce((a, f) => a + f.bytes, 0);
  }

  /** Removes states whose model file is gone, temp files and unlisted files (at start and after a reload). */
  sweep(): void {
    try {
      const exists = (p: string) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      };
      const busy = new Set([...this.models.entries()].filter(([n]) => this.running.has(n)).map(([, r]) => r.dir!));
      const { removed } = this.store.sweep(exists, busy);
      if (removed.length > 0) this.log(`context cache: removed ${removed.length} stale file(s)`);
    } catch (e) {
      this.log(`context cache: cleanup failed: ${(e as Error).message}`);
    }
  }

  /**
   * Before a start: the launch config to use (with --slot-save-path when the model takes part). Never throws:
   * any problem leaves the config as it was and the reason in the status.
   */
  async prepare(m: ContextModel): Promise<ServerConfig> {
    const rt = this.runtime(m.name);
    try {
      if (rt.disabled) return this.off(rt, m.server, rt.disabled);
      const extra = m.server.extraArgs ?? [];
      if (extra.includes("--slot-save-path"))
        return this.off(rt, m.server, "--slot-save-path is set in the model's extraArgs");
      const first = m.files[0] ?? m.server.modelPath;
      const { path: binary, caps } = await this.o.binaryInfo();
      const el = await this.eligibility(first, m, caps.slotCheckpoints === true);
      if (!el.eligible) return this.off(rt, m.server, el.reason);
      if (el.caveat) rt.caveat = el.caveat;
      else delete rt.caveat;
      if (!caps.flags.has("--slot-save-path"))
        return this.off(rt, m.server, "this llama-server has no --slot-save-path");
      if (m.server.swaFull === true && !caps.flags.has("--swa-full"))
        return this.off(rt, m.server, "sliding-window attention and this llama-server has no --swa-full");
      const identity: ContextIdentity = {
        files: (m.files.length > 0 ? m.files : [m.server.modelPath]).map((p) => {
          const st = statSync(p);
          return { path: p, size: st.size, mtimeMs: st.mtimeMs };
        }),
        build: {
          ...(caps.version !== undefined ? { version: caps.version } : {}),
          ...(caps.commit !== undefined ? { commit: caps.commit } : {}),
          backend: caps.backend,
          binarySize: statSync(binary).size,
        },
        settings: cacheSettingsOf(m.server),
      };
      const key = identityKey(identity);
      const dir = this.store.modelDir(m.name, first);
      this.store.ensureDir(dir);
      const { manifest: saved, rejected } = this.store.readChecked(dir);
      if (saved && saved.key !== key) {
        const why = identityDifferences(saved.identity, identity).join("; ") || "its identity changed";
        this.store.discard(dir);
        rt.lastDiscard = { at: new Date(this.now()).toISOString(), reason: why };
        this.metrics?.discards.inc({ model: m.name });
        this.emit(m.name, "discarded", `saved context discarded: ${why}`);
      }
      if (!saved || saved.key !== key) {
        this.store.write(dir, { version: 1, model: m.name, modelPath: first, key, identity, slots: {} });
        delete rt.checks;
      } else {
        if (rejected.length > 0) {
          // entries the store never writes (a foreign file name, no hash): dropped; their files are never opened
          this.store.write(dir, saved);
          for (const why of rejected) this.discarded(rt, m.name, `saved slot dropped: ${why}`);
        }
        rt.checks = this.startChecks(dir, key, saved);
      }
      rt.enabled = true;
      delete rt.reason;
      rt.dir = dir;
      rt.key = key;
      rt.identity = identity;
      const config: ServerConfig = { ...m.server, slotSavePath: dir };
      if (caps.flags.has("--no-cache-idle-slots") && !extra.some((a) => IDLE_FLAGS.has(a)))
        config.cacheIdleSlots = false;
      return config;
    } catch (e) {
      return this.off(rt, m.server, `could not prepare its folder: ${(e as Error).message}`);
    }
  }

  /**
   * After the load, before the first request: restore the saved slots whose files are the ones saved (checked:
   * regular file, size, hash; a mismatch drops the file, and the conversation is prefilled as usual). Bounded; never
   * throws. A restore cut at its deadline leaves llama-server's main loop busy or blocked: its file is dropped and
   * `restart` asks the controller for a fresh process.
   */
  async afterReady(model: string, handle: ServerHandle): Promise<AfterRestore | undefined> {
    const rt = this.models.get(model);
    this.running.add(model);
    if (rt) rt.seen = { requests: 0, maxTokens: 0 };
    const checks = rt?.checks;
    if (rt) delete rt.checks;
    if (!rt?.enabled || !rt.dir || !rt.key) return undefined;
    const dir = rt.dir;
    const key = rt.key;
    let restart: string | undefined;
    try {
      const m = this.store.read(dir);
      if (!m || m.key !== key) return undefined;
      const ids = Object.keys(m.slots)
        .map(Number)
        .sort((a, b) => a - b);
      if (ids.length === 0) return undefined;
      const deadline = performance.now() + this.restoreTimeoutMs;
      const left = () => deadline - performance.now();
      const n = await slotCount(handle.url, Math.min(2_000, left()));
      let slots = 0;
      let tokens = 0;
      let maxTokens = 0;
      let checkpoints: number | undefined;
      let ms = 0;
      for (const id of ids) {
        const s = m.slots[String(id)]!;
        if (n !== undefined && id >= n) continue;
        if (left() <= 0) break;
        const check = checks?.get(`${id}:${s.sha256}`) ?? this.checkSlot(dir, key, id, s, deadline);
        const problem = await within(check, left());
        if (problem === TIMED_OUT) {
          this.metrics?.restores.inc({ model, result: "timeout" });
          this.emit(model, "restore_failed", `slot ${id}: its file could not be checked in time; not restored`);
          continue;
        }
        if (problem !== undefined) {
          this.store.removeFile(dir, s.file);
          delete m.slots[String(id)];
          this.metrics?.restores.inc({ model, result: "failed" });
          this.discarded(rt, model, `saved slot ${id} dropped, not restored: ${problem}`);
          continue;
        }
        const bound = restoreBoundMs(s.bytes, left());
        const r = await restoreSlot(handle.url, id, s.file, bound);
        if (!r.ok) {
          this.metrics?.restores.inc({ model, result: r.timedOut ? "timeout" : "failed" });
          // refused (it will not get better) or wedged (never again): the file goes
          this.store.removeFile(dir, s.file);
          delete m.slots[String(id)];
          if (r.timedOut) {
            restart = `the restore of slot ${id} (${s.bytes} bytes) did not finish in ${Math.round(bound)} ms`;
            this.emit(
              model,
              "restore_failed",
              `slot ${id}: ${restart}; its file is dropped and llama-server restarted`,
            );
            break;
          }
          this.emit(model, "restore_failed", `slot ${id}: ${r.error}`);
          continue;
        }
        rt.costs = timedAction(rt.costs, r.tokens, r.ms);
        this.metrics?.restores.inc({ model, result: "ok" });
        this.metrics?.restoredTokens.inc({ model }, r.tokens);
        s.lastUsedAt = this.now();
        slots++;
        tokens += r.tokens;
        if (r.checkpoints !== undefined) checkpoints = (checkpoints ?? 0) + r.checkpoints;
        maxTokens = Math.max(maxTokens, r.tokens);
        ms += r.ms;
      }
      this.store.write(dir, m);
      if (slots > 0 && !restart) {
        rt.lastRestore = {
          at: new Date(this.now()).toISOString(),
          slots,
          tokens,
          ms: round(ms),
          ...(checkpoints !== undefined ? { checkpoints } : {}),
        };
        rt.pending = { restoredTokens: maxTokens, left: 3 };
        const withCkpt = checkpoints ? ` with ${checkpoints} context checkpoint(s)` : "";
        this.emit(model, "restored", `restored ${tokens} tokens in ${slots} slot(s)${withCkpt}`, {
          tokens,
          ms: round(ms),
        });
      }
    } catch (e) {
      this.emit(model, "restore_failed", (e as Error).message);
    }
    return restart ? { restart } : undefined;
  }

  /** Checks of every saved slot's file, one after another, started now (while the model loads). Never rejects. */
  private startChecks(dir: string, key: string, m: Manifest): Map<string, Promise<string | undefined>> {
    const out = new Map<string, Promise<string | undefined>>();
    let prev: Promise<unknown> = Promise.resolve();
    for (const [k, s] of Object.entries(m.slots)) {
      const p = prev.then(() => this.checkSlot(dir, key, Number(k), s));
      out.set(`${k}:${s.sha256}`, p);
      prev = p;
    }
    return out;
  }

  /** Why slot `id`'s file must not be restored, or undefined when it is the one saved. Never rejects. */
  private async checkSlot(
    dir: string,
    key: string,
    id: number,
    s: SavedSlot,
    deadline = Infinity,
  ): Promise<string | undefined> {
    try {
      return await this.store.check(dir, key, id, s, deadline);
    } catch (e) {
      return `the file could not be read: ${(e as Error).message}`;
    }
  }

  /** A saved state (or a part of it) thrown away: shown in the status, counted, an event. */
  private discarded(rt: Runtime, model: string, why: string): void {
    rt.lastDiscard = { at: new Date(this.now()).toISOString(), reason: why };
    this.metrics?.discards.inc({ model });
    this.log(`context cache: ${model}: ${why}`);
    this.emit(model, "discarded", why);
  }

  /**
   * Before a graceful stop: save every slot holding tokens worth saving. Bounded; never throws. `served`: the
   * requests the process was given; when the usage of every one was seen, none held enough tokens to be worth
   * saving and nothing is saved for the model, the slots are not even read (no request on the swap's path).
   */
  async beforeStop(model: string, handle: ServerHandle, served?: number): Promise<void> {
    const rt = this.models.get(model);
    this.running.delete(model);
    if (!rt?.enabled || !rt.dir || !rt.key) return;
    const dir = rt.dir;
    try {
      const saved = this.store.read(dir);
      const saveAll = this.o.saveAll === true;
      if (skipWholeSave({ saveAll, served, seen: rt.seen, saved, key: rt.key, costs: rt.costs })) {
        const at = new Date(this.now()).toISOString();
        rt.lastSave = { at, slots: 0, tokens: 0, bytes: 0, ms: 0, failures: 0, cheap: true };
        if ((served ?? 0) > 0) this.metrics?.saves.inc({ model, result: "not_worth" });
        return;
      }
      const m: Manifest = saved ?? {
        version: 1,
        model,
        modelPath: rt.identity!.files[0]!.path,
        key: rt.key,
        identity: rt.identity!,
        slots: {},
      };
      if (m.key !== rt.key) return;
      const deadline = performance.now() + this.saveTimeoutMs;
      const left = () => deadline - performance.now();
      // one GET /slots names the slots that ran a task; without it (--no-slots) every slot of /props is tried
      const usage = await slotUsage(handle.url, Math.min(2_000, left()));
      const n = usage?.count ?? (await slotCount(handle.url, Math.min(2_000, left())));
      if (n === undefined) {
        this.metrics?.saves.inc({ model, result: "failed" });
        this.emit(model, "save_failed", "could not read the slot count (GET /props)");
        return;
      }
      let slots = 0;
      let tokens = 0;
      let bytes = 0;
      let failures = 0;
      let ms = 0;
      let skipped = 0;
      for (const step of planSave({ count: n, usage, costs: rt.costs, saveAll })) {
        if (step.action === "drop") {
          // prefilled again faster than saved and restored; what was saved for it before describes it no more
          skipped++;
          this.forgetSlot(dir, m, step.id);
          this.metrics?.saves.inc({ model, result: "not_worth" });
          continue;
        }
        const r = await this.saveOne(model, rt, handle.url, m, step.id, deadline);
        if (r === "disk_full") {
          failures++;
          break;
        }
        if (r === "failed") failures++;
        else if (r !== "empty") {
          slots++;
          tokens += r.tokens;
          bytes += r.bytes;
          ms += r.ms;
        }
      }
      this.store.write(dir, m);
      rt.lastSave = { at: new Date(this.now()).toISOString(), slots, tokens, bytes, ms: round(ms), failures };
      if (skipped > 0) rt.lastSave.skipped = skipped;
      if (slots > 0)
        this.emit(model, "saved", `saved ${tokens} tokens in ${slots} slot(s)`, { tokens, bytes, ms: round(ms) });
      this.enforceBudget();
    } catch (e) {
      this.emit(model, "save_failed", (e as Error).message);
    }
  }

  /**
   * Saves slot `id` into `m` (one step of a plan): the request, the file sealed into place, the manifest entry,
   * the measured cost, the metrics. "empty": it held nothing (what was saved for it before goes); "disk_full": no
   * room, so no later slot is tried either.
   */
  private async saveOne(
    model: string,
    rt: Runtime,
    url: string,
    m: Manifest,
    id: number,
    deadline: number,
  ): Promise<{ tokens: number; bytes: number; ms: number } | "empty" | "failed" | "disk_full"> {
    const dir = rt.dir!;
    const left = () => deadline - performance.now();
    if (left() <= 0) {
      this.metrics?.saves.inc({ model, result: "timeout" });
      return "failed";
    }
    const free = freeBytes(dir);
    const previous = m.slots[String(id)];
    if (free !== undefined && !fitsOnDisk(free, previous?.bytes ?? 0)) {
      this.emit(model, "save_failed", `slot ${id}: less than 1 GiB free on the cache's disk`);
      return "disk_full";
    }
    const tmp = this.store.tempName(id);
    const r = await saveSlot(url, id, tmp, left());
    if (!r.ok) {
      this.store.removeFile(dir, tmp);
      this.metrics?.saves.inc({ model, result: r.timedOut ? "timeout" : "failed" });
      this.emit(model, "save_failed", `slot ${id}: ${r.error}`);
      return "failed";
    }
    if (r.tokens === 0) {
      // nothing in this slot now: what was saved for it before no longer describes this process
      this.store.removeFile(dir, tmp);
      this.forgetSlot(dir, m, id);
      this.metrics?.saves.inc({ model, result: "empty" });
      return "empty";
    }
    let sealed: { bytes: number; sha256: string };
    try {
      // hashed (bound to this identity and slot) and renamed into place
      sealed = await this.store.seal(dir, tmp, id, rt.key!, r.bytes, deadline);
    } catch (e) {
      this.store.removeFile(dir, tmp);
      this.metrics?.saves.inc({ model, result: "failed" });
      this.emit(model, "save_failed", `slot ${id}: ${(e as Error).message}`);
      return "failed";
    }
    const at = this.now();
    m.slots[String(id)] = {
      file: this.store.finalName(id),
      tokens: r.tokens,
      bytes: sealed.bytes,
      sha256: sealed.sha256,
      savedAt: at,
      lastUsedAt: at,
    };
    rt.costs = timedAction(rt.costs, r.tokens, r.ms);
    this.metrics?.saves.inc({ model, result: "ok" });
    this.metrics?.savedTokens.inc({ model }, r.tokens);
    this.metrics?.writtenBytes.inc({ model }, sealed.bytes);
    return { tokens: r.tokens, bytes: sealed.bytes, ms: r.ms };
  }

  /** What was saved for slot `id` (its file and its manifest entry) goes. */
  private forgetSlot(dir: string, m: Manifest, id: number): void {
    const previous = m.slots[String(id)];
    if (!previous) return;
    this.store.removeFile(dir, previous.file);
    delete m.slots[String(id)];
  }

  /**
   * Whether the model takes part, from its GGUF header: read once per file version (path, size, mtime), not at
   * every start (a large vocabulary makes the header megabytes, and a start is on a swap's path).
   */
  private async eligibility(first: string, m: ContextModel, slotCheckpoints: boolean): Promise<Eligibility> {
    let version: string;
    try {
      const st = statSync(first);
      version = `${first}\0${st.size}\0${st.mtimeMs}\0${m.mmproj ?? ""}\0${m.server.embeddings === true}\0${swaFullOn(m)}\0${m.swaFull?.reason ?? ""}\0${slotCheckpoints}`;
    } catch {
      return { eligible: false, reason: "the model's GGUF header could not be read" };
    }
    const known = this.eligibilityOf.get(version);
    if (known) return known;
    const meta = await readModelMetadata(first, { chatTemplate: false }).catch(() => undefined);
    const el: Eligibility = meta
      ? contextEligibility(meta, {
          mmproj: m.mmproj,
          embeddings: m.server.embeddings,
          swaFull: swaFullOn(m),
          swaFullReason: m.swaFull?.reason,
          slotCheckpoints,
        })
      : { eligible: false, reason: "the model's GGUF header could not be read" };
    if (meta) this.eligibilityOf.set(version, el);
    return el;
  }

  /** A process that died (crash, hang): nothing to save. */
  exited(model: string): void {
    this.running.delete(model);
  }

  /**
   * A finished request's usage (llama-server's timings): checks reuse after a restore, and keeps the model's prompt
   * speed (`promptPerSecond`) for the decision whether a slot is worth saving.
   */
  observe(model: string, usage: ObservedUsage): void {
    const { cachedTokens: cacheN, promptTokens, promptPerSecond } = usage;
    const rt = this.models.get(model);
    if (rt) {
      rt.seen.requests++;
      // an estimate on the high side: prompt_tokens may already count the cached ones
      const held = (promptTokens ?? 0) + (cacheN ?? 0) + (usage.completionTokens ?? 0);
      rt.seen.maxTokens = Math.max(rt.seen.maxTokens, held);
      if (promptPerSecond !== undefined && promptPerSecond > 0 && Number.isFinite(promptPerSecond))
        rt.costs = { ...rt.costs, promptTokensPerS: runningEstimate(rt.costs.promptTokensPerS, promptPerSecond) };
    }
    if (!rt?.pending || !rt.enabled) return;
    const v = judgeReuse(rt.pending.restoredTokens, cacheN, promptTokens);
    if (v.kind === "reused") {
      rt.misses = 0;
      delete rt.pending;
      if (rt.lastRestore) {
        rt.lastRestore.reusedTokens = v.tokens;
        rt.lastRestore.verified = true;
      }
      this.metrics?.reusedTokens.inc({ model }, v.tokens);
      this.emit(model, "reused", `the first request after the restore reused ${v.tokens} cached tokens`, {
        tokens: v.tokens,
      });
      return;
    }
    if (v.kind === "missed") {
      delete rt.pending;
      rt.misses++;
      if (rt.lastRestore) {
        rt.lastRestore.reusedTokens = 0;
        rt.lastRestore.verified = false;
      }
      if (rt.misses >= 2) {
        const why = `a restored cache was not reused twice in a row (cache_n 0 on a ${v.promptTokens}-token prompt); turned off for this model until the proxy restarts`;
        rt.disabled = why;
        rt.enabled = false;
        rt.reason = why;
        if (rt.dir) this.store.discard(rt.dir);
        this.log(`context cache: ${model}: ${why}`);
        this.emit(model, "disabled", why);
      }
      return;
    }
    if (--rt.pending.left <= 0) delete rt.pending;
  }

  status(model: string): ContextStatus | undefined {
    const rt = this.models.get(model);
    if (!rt) return undefined;
    const m = rt.dir ? this.store.read(rt.dir) : undefined;
    const slots = m && m.key === rt.key ? Object.values(m.slots) : [];
    const s: ContextStatus = {
      enabled: rt.enabled,
      savedSlots: slots.length,
      savedTokens: slots.reduce((a, x) => a + x.tokens, 0),
      bytesOnDisk: slots.reduce((a, x) => a + x.bytes, 0),
    };
    if (rt.reason) s.reason = rt.reason;
    if (rt.caveat && rt.enabled) s.caveat = rt.caveat;
    if (rt.lastSave) s.lastSave = rt.lastSave;
    if (rt.lastRestore) s.lastRestore = rt.lastRestore;
    if (rt.lastDiscard) s.lastDiscard = rt.lastDiscard;
    return s;
  }

  private enforceBudget(): void {
    const files = this.store.files();
    const remove = planEviction(files, this.o.budgetBytes);
    if (remove.length === 0) return;
    const freed = this.store.removeKeys(remove);
    this.metrics?.evictedFiles.inc(remove.length);
    for (const k of remove) {
      const dir = k.split("\n")[0]!;
      const model = [...this.models.entries()].find(([, r]) => r.dir === dir)?.[0] ?? dir;
      this.emit(model, "evicted", `removed a saved slot to stay within the ${this.o.budgetBytes}-byte disk budget`);
    }
    this.log(`context cache: removed ${remove.length} least recently used slot file(s), ${freed} bytes`);
  }

  private runtime(name: string): Runtime {
    let rt = this.models.get(name);
    if (!rt)
      this.models.set(name, (rt = { enabled: false, misses: 0, costs: {}, seen: { requests: 0, maxTokens: 0 } }));
    return rt;
  }

  private off(rt: Runtime, server: ServerConfig, reason: string): ServerConfig {
    if (rt.reason !== reason) this.emitSkip(rt, reason);
    rt.enabled = false;
    rt.reason = reason;
    return server;
  }

  private emitSkip(rt: Runtime, reason: string): void {
    const name = [...this.models.entries()].find(([, r]) => r === rt)?.[0];
    if (name) this.emit(name, "skipped", reason);
  }

  private emit(model: string, action: ContextAction, detail: string, extra: Partial<ContextEvent> = {}): void {
    const e: ContextEvent = { type: "context", model, action, detail, ...extra, at: this.now() };
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;

const TIMED_OUT = Symbol("timed out");

/** `p`, or TIMED_OUT when it has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms));
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function freeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** Free bytes on the disk that holds `dir` (for the default budget). */
export function diskFreeBytes(dir: string): number | undefined {
  return freeBytes(dir);
}
