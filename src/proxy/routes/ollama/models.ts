/**
 * Ollama's read-only endpoints: `GET /` ("Ollama is running"), /api/version, /api/tags (the catalog), /api/ps (the
 * loaded models and when they expire), /api/show (a model's GGUF facts).
 */
import type { ServerResponse } from "node:http";
import { HttpError } from "../../../core/errors.js";
import { readGgufHeader } from "../../../gguf/reader.js";
import { expiresAt } from "../../../ollama/keep-alive.js";
import { modelfile, modelInfo, parametersText } from "../../../ollama/model-info.js";
import { ollamaListName } from "../../../ollama/names.js";
import { goTime } from "../../../ollama/wire.js";
import type { ProxyModel } from "../../catalog.js";
import { presetShow, presetTags } from "../../ollama-presets.js";
import {
  readOllamaBody,
  resolveModel,
  sendOllamaJson,
  type OllamaDeps,
  type OllamaHandler,
  type Obj,
} from "./common.js";

/**
 * The Ollama API level these endpoints follow (reported by /api/version; clients gate features on it). 0.13.4 is
 * the release from which clients count on Ollama's OpenAI-compatible `/v1/responses` (Codex's `--oss` refuses
 * anything older, "Codex requires Ollama 0.13.4 or newer"); here it is llama-server's own `/v1/responses`, reached
 * through the proxy's OpenAI routes under the names `/api/tags` lists (`agent:latest`). The native routes of that
 * level are the ones in the module's table (routes/ollama/index.ts); what differs is listed in the README's
 * Ollama table.
 */
export const OLLAMA_COMPAT_VERSION = "0.13.4";

/** `GET /` and `HEAD /`: what Ollama answers, which clients probe for. */
export const running: OllamaHandler = (_d, req, res) => {
  res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": 17 });
  res.end(req.method === "HEAD" ? undefined : "Ollama is running");
};

export const version: OllamaHandler = (_d, _req, res: ServerResponse) =>
  sendOllamaJson(res, 200, { version: OLLAMA_COMPAT_VERSION });

export const tags: OllamaHandler = async (d, _req, res) => {
  const models = await Promise.all(
    d.ctx.controller.catalog().map(async (m) => {
      const f = await d.facts.get(m);
      const name = ollamaListName(m.name);
      return {
        name,
        model: name,
        modified_at: goTime(f.modifiedMs),
        size: f.size,
        digest: f.digest,
        details: f.details,
      };
    }),
  );
  sendOllamaJson(res, 200, { models: [...models, ...presetTags(d.ctx.controller.catalog(), models)] });
};

export const ps: OllamaHandler = async (d, _req, res) => {
  const now = Date.now();
  const c = d.ctx.controller;
  const running = c.status().filter((s) => s.state === "ready" || s.state === "draining");
  const models = await Promise.all(
    running.map(async (s) => {
      const m = c.getModel(s.name);
      const f = m ? await d.facts.get(m) : undefined;
      const size = s.measuredBytes ?? s.estimatedBytes;
      const st = c.state(s.name);
      const expires = expiresAt({
        nowMs: now,
        ...c.ttlInfo(s.name),
        inFlight: st?.inFlight ?? 0,
        lastUsedMs: st?.lastUsed,
      });
      const name = ollamaListName(s.name);
      return {
        name,
        model: name,
        size,
        digest: f?.digest ?? "",
        details: f?.details ?? {},
        expires_at: goTime(expires),
        size_vram: d.extras.onGpu?.() ? size : 0,
        context_length: m?.estimate.ctx ?? 0,
      };
    }),
  );
  sendOllamaJson(res, 200, { models });
};

export const show: OllamaHandler = async (d, req, res) => {
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const { model, preset } = resolveModel(d, body);
  const out = await showModel(d, model, body.verbose === true);
  // a preset: its model's facts with its own Modelfile, parameters and system prompt
  sendOllamaJson(res, 200, preset ? presetShow(preset, out) : out);
};

/** /api/show's answer for a model: its Modelfile, parameters, template and GGUF facts. */
async function showModel(d: OllamaDeps, model: ProxyModel, verbose: boolean): Promise<Obj> {
  const f = await d.facts.get(model);
  if (!f.metadata || !f.kv)
    throw new HttpError(500, "unreadable_model", `cannot read ${model.entry.path}: ${f.error ?? "unknown"}`);
  let kv = f.kv;
  if (verbose) {
    kv = (await readGgufHeader(model.entry.path, { maxArrayItems: Number.MAX_SAFE_INTEGER, tensors: false })).kv;
  }
  const template = f.metadata.chatTemplate ?? "";
  const out: Obj = {
    modelfile: modelfile({
      listName: ollamaListName(model.name),
      path: model.entry.path,
      ...(model.entry.mmproj ? { mmproj: model.entry.mmproj } : {}),
      template,
      ctx: model.estimate.ctx,
    }),
    parameters: parametersText({ ctx: model.estimate.ctx }),
    template,
    details: f.details,
    model_info: modelInfo(kv, f.metadata, verbose),
    capabilities: f.capabilities,
    modified_at: goTime(f.modifiedMs),
  };
  const license = kv.get("general.license");
  if (typeof license === "string") out.license = license;
  return out;
}
