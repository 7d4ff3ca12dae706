import { Registry, type RegisteredModel } from "../../../models/registry.js";
import type { ModelSettings } from "../../../models/settings.js";
import { formatCount } from "../../../term/format.js";

/** How `gglib models` prints: JSON with --json, else text; the summary columns and the settings line. */
export function out(json: boolean | undefined, data: unknown, human: () => string): void {
  if (json) process.stdout.write(JSON.stringify(data, null, 2) + "\n");
  else process.stdout.write(human() + "\n");
}

/** Facts worth a column, from whatever keys the GGUF reader produced. */
export function metadataSummary(meta: Record<string, unknown> | undefined): {
  arch?: string;
  ctx?: number;
  params?: string;
  quant?: string;
} {
  if (!meta) return {};
  const flat = meta;
  const get = (...keys: string[]): unknown => {
    for (const k of keys) {
      if (flat[k] !== undefined && flat[k] !== null) return flat[k];
    }
    return undefined;
  };
  const arch = get("architecture", "general.architecture");
  const archStr = typeof arch === "string" ? arch : undefined;
  const ctx = get(
    "contextLength",
    "context_length",
    "trainedContext",
    ...(archStr ? [`${archStr}.context_length`] : []),
  );
  const params = get("parameterCount", "parameters", "general.size_label", "sizeLabel");
  const quant = get("quantization", "fileType", "file_type", "general.file_type");
  return {
    ...(archStr ? { arch: archStr } : {}),
    ...(typeof ctx === "number" ? { ctx } : {}),
    ...(typeof params === "number" ? { params: formatCount(params) } : typeof params === "string" ? { params } : {}),
    ...(typeof quant === "string" || typeof quant === "number" ? { quant: String(quant) } : {}),
  };
}

export function settingsText(s: ModelSettings): string {
  const parts: string[] = [];
  if (s.ctx !== undefined) parts.push(`ctx=${s.ctx}`);
  if (s.gpuLayers !== undefined) parts.push(`gpu-layers=${s.gpuLayers === -1 ? "all" : s.gpuLayers}`);
  if (s.jinja !== undefined) parts.push(`jinja=${s.jinja}`);
  if (s.reasoningFormat !== undefined) parts.push(`reasoning-format=${s.reasoningFormat}`);
  if (s.parallel !== undefined) parts.push(`parallel=${s.parallel}`);
  if (s.ttl !== undefined) parts.push(`ttl=${s.ttl}s`);
  if (s.pinned) parts.push("pinned");
  if (s.preload) parts.push("preload");
  if (s.swaFull !== undefined) parts.push(`swa-full=${s.swaFull}`);
  if (s.extraArgs?.length) parts.push(`extra-args=${JSON.stringify(s.extraArgs.join(" "))}`);
  if (s.rpc !== undefined) parts.push(`rpc=${Array.isArray(s.rpc) ? s.rpc.join(",") : s.rpc}`);
  return parts.join(" ");
}

export function registeredJson(m: RegisteredModel, reg: Registry): Record<string, unknown> {
  const st = reg.status(m);
  return { ...m, source: "registry", missing: st.missing };
}
