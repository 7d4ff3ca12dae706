/**
 * What the launch needs to know about the proxy's models, read from the proxy itself (`GET /v1/models`: names,
 * files, configured context, state; `GET /api/status`: the memory budget) and from each model's GGUF header when
 * its file is on this machine (trained context; the memory a context needs, by the proxy's own estimator).
 */
import { statSync } from "node:fs";
import { GglibError } from "../../../core/errors.js";
import { readModelMetadata, type ModelMetadata } from "../../../gguf/reader.js";
import { detectCapabilities } from "../../../models/capabilities.js";
import { estimateMemory } from "../../../models/estimator.js";
import { largestFitting } from "../../../agents/context.js";

export interface ModelFacts {
  name: string;
  aliases: string[];
  path?: string | undefined;
  /**
   * The context one conversation gets: the proxy's ctx for the model (the configured one, else the trained one),
   * divided among its slots when `parallel` is set (each slot then has a KV cache of its own).
   */
  configured?: number | undefined;
  /** `parallel` when set in the model's settings (else llama-server's slots share one KV cache). */
  parallel?: number | undefined;
  /** The context it was trained on (GGUF). */
  trained?: number | undefined;
  loaded: boolean;
  /** Its chat template takes tools (undefined: the GGUF was not read). */
  tools?: boolean | undefined;
  metadata?: ModelMetadata | undefined;
}

interface ListedModel {
  id: string;
  aliases?: string[];
  location?: string;
  status?: { value?: string };
  meta?: { path?: string; ctx?: number; parallel?: number | null };
}

async function getJson(url: string, apiKey: string | undefined): Promise<unknown> {
  const r = await fetch(url, {
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    signal: AbortSignal.timeout(10_000),
  });
  if (!r.ok) {
    throw new GglibError("not_running", `${url} answered ${r.status}: ${(await r.text()).slice(0, 300)}`);
  }
  return r.json();
}

export async function modelFacts(url: string, apiKey: string | undefined): Promise<ModelFacts[]> {
  const list = (await getJson(`${url}/v1/models`, apiKey)) as { data?: ListedModel[] };
  const local = (list.data ?? []).filter((m) => (m.location ?? "local") === "local");
  return Promise.all(
    local.map(async (m) => {
      const path = m.meta?.path;
      const metadata = path ? await readModelMetadata(path).catch(() => undefined) : undefined;
      const value = m.status?.value;
      const parallel = m.meta?.parallel ?? undefined;
      return {
        name: m.id,
        aliases: m.aliases ?? [],
        path,
        configured: m.meta?.ctx !== undefined ? Math.floor(m.meta.ctx / (parallel ?? 1)) : undefined,
        parallel,
        trained: metadata?.contextLength,
        loaded: value === "loaded" || value === "loading",
        tools: metadata ? detectCapabilities(metadata).tools.present : undefined,
        metadata,
      };
    }),
  );
}

/** The proxy's memory budget in bytes (null: unlimited). */
export async function budgetBytes(url: string, apiKey: string | undefined): Promise<number | null> {
  const s = (await getJson(`${url}/api/status`, apiKey)) as { budget?: { bytes?: number | null } };
  return s.budget?.bytes ?? null;
}

/** The largest context (≤ its trained one) at which the model alone fits the budget; undefined when unknown. */
export function fitsContext(m: ModelFacts, budget: number | null): number | undefined {
  if (budget === null || !m.metadata || !m.path || !m.trained) return undefined;
  let fileBytes: number | undefined;
  try {
    fileBytes = statSync(m.path).size;
  } catch {
    return undefined;
  }
  const metadata = m.metadata;
  // per conversation: with `parallel` set, each of its slots needs that much
  const p = m.parallel ?? 1;
  const bytesAt = (ctx: number) =>
    estimateMemory({ metadata, fileBytes, ctx: ctx * p, ...(m.parallel ? { parallel: p } : {}) }).totalBytes;
  return largestFitting(bytesAt, budget, Math.min(256, m.trained), m.trained) ?? 1;
}
