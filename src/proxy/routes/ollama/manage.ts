/**
 * Ollama's endpoints that change the models: POST /api/pull (gglib pull into the models folder), /api/copy (the
 * files registered under another name), DELETE /api/delete (unregistered); and clear 501s for the ones that have
 * no meaning here (push, blobs).
 */
import type { ServerResponse } from "node:http";
import { HttpError, isGglibError } from "../../../core/errors.js";
import { parsePullRef } from "../../../hub/ref.js";
import type { RegisteredModel, Registry } from "../../../models/registry.js";
import { ollamaListName, resolveOllamaName } from "../../../ollama/names.js";
import { NDJSON_HEADERS, ndjsonLine } from "../../../ollama/wire.js";
import {
  namedModels,
  readOllamaBody,
  resolveModel,
  sendOllamaJson,
  type Obj,
  type OllamaDeps,
  type OllamaHandler,
  type PullFn,
} from "./common.js";
import { copyPreset, createPreset, deletePreset, type PresetApiDeps } from "../../ollama-presets.js";

/** An endpoint gglib does not offer: 501 with what to do instead. */
export function unsupported(message: string): OllamaHandler {
  return () => {
    throw new HttpError(501, "not_supported", message);
  };
}

/** POST /api/create: a preset (src/proxy/ollama-presets.ts). */
export const create: OllamaHandler = async (d, req, res) =>
  createPreset(presetDeps(d), await readOllamaBody(req, d.ctx.bodyLimit), res);

/** What the presets' create and delete need. */
function presetDeps(d: OllamaDeps): PresetApiDeps {
  return {
    catalog: () => d.ctx.controller.catalog(),
    ...(d.extras.registry ? { registry: d.extras.registry } : {}),
    ...(d.extras.reload ? { reload: d.extras.reload } : {}),
  };
}

export const UNSUPPORTED = {
  push: "pushing models to a registry is not supported by gglib",
  blobs: "blobs are an Ollama registry concept; gglib serves GGUF files from its models folder",
} as const;

function needRegistry(d: OllamaDeps, what: string): Registry {
  if (!d.extras.registry)
    throw new HttpError(
      501,
      "no_registry",
      `${what} needs gglib's model registry, which this proxy has not opened (run \`gglib models add\` once to create it)`,
    );
  return d.extras.registry;
}

/** POST /api/copy: the source's files registered under the destination name (the files are not duplicated). */
export const copy: OllamaHandler = async (d, req, res) => {
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const src = typeof body.source === "string" ? body.source : "";
  const dest = typeof body.destination === "string" ? body.destination : "";
  if (!src || !dest)
    throw new HttpError(400, "invalid_request", `send {"source": "<model>", "destination": "<new name>"}`);
  const registry = needRegistry(d, "copy");
  const { model, preset } = resolveModel(d, { model: src });
  if (preset) {
    // a preset's copy is a preset with the same changes (its model's files are not registered again)
    await copyPreset(presetDeps(d), preset, dest);
    return sendOllamaJson(res, 200, { status: "success" });
  }
  const name = dest.replace(/:latest$/i, "");
  // a name in use stays with its model unless the client says to replace it (a registry entry wins over a
  // folder's or config's model of the same name: copying onto it silently changes what that name runs)
  const key = name.toLowerCase();
  const taken = d.ctx.controller
    .catalog()
    .find((m) => m.name.toLowerCase() === key || m.aliases.some((a) => a.toLowerCase() === key));
  if (taken?.entry.source === "config") {
    throw new HttpError(
      409,
      "name_taken",
      `"${dest}" names the model "${ollamaListName(taken.name)}" of the config file, which wins over copies; ` +
        "copy to a new name, or change that entry in the config file",
    );
  }
  if (taken && body.overwrite !== true) {
    throw new HttpError(
      409,
      "name_taken",
      `"${dest}" already names the model "${ollamaListName(taken.name)}" (${taken.entry.path}); copy to a new ` +
        `name, or send "overwrite": true to make "${name}" run ${model.entry.path} instead`,
    );
  }
  const replaced = taken ? registry.get(name) : undefined;
  const previous = replaced?.name.toLowerCase() === key ? replaced : undefined;
  if (previous) registry.remove(previous.name);
  try {
    await registry.add({
      path: model.entry.path,
      name,
      ...(model.entry.mmproj ? { mmproj: model.entry.mmproj } : {}),
      settings: model.entry.settings,
    });
  } catch (e) {
    if (previous) await restore(d, registry, previous);
    throw new HttpError(
      isGglibError(e) ? 400 : 500,
      "copy_failed",
      `cannot copy to "${dest}": ${(e as Error).message}`,
    );
  }
  await d.extras.reload?.();
  sendOllamaJson(res, 200, { status: "success" });
};

/** Puts back a registry entry an overwriting copy removed before its add failed (best effort). */
async function restore(d: OllamaDeps, registry: Registry, m: RegisteredModel): Promise<void> {
  try {
    await registry.add({
      path: m.path,
      name: m.name,
      aliases: m.aliases,
      ...(m.mmproj ? { mmproj: m.mmproj } : {}),
      settings: m.settings,
    });
  } catch (e) {
    d.extras.log?.(`ollama api: could not restore the registry entry ${m.name} (${m.path}): ${(e as Error).message}`);
  }
}

/** DELETE /api/delete: unregisters a registered model (its files stay: gglib does not delete model files). */
export const remove: OllamaHandler = async (d, req, res) => {
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const { requested, model, preset } = resolveModel(d, body);
  if (preset) {
    await deletePreset(presetDeps(d), preset);
    return sendOllamaJson(res, 200, { status: "success" });
  }
  if (model.entry.source !== "registry")
    throw new HttpError(
      400,
      "not_registered",
      `"${requested}" comes from the ${model.entry.source === "config" ? "config file (remove its entry there)" : `models folder: remove ${model.entry.path} to delete it`}; gglib deletes no model files`,
    );
  const registry = needRegistry(d, "delete");
  const c = d.ctx.controller;
  const st = c.state(model.name)?.status;
  if (st && st !== "unloaded" && st !== "failed") {
    // stop it first (its requests finish), so the reload drops it from the lists at once
    c.unload(model.name);
    await c.whenSettled(model.name, 15_000);
  }
  registry.remove(model.name);
  await d.extras.reload?.();
  sendOllamaJson(res, 200, { status: "success" });
};

/** POST /api/pull: a model already here answers as up to date; otherwise gglib pull, its progress as NDJSON. */
export const pull: OllamaHandler = async (d, req, res) => {
  const body = await readOllamaBody(req, d.ctx.bodyLimit);
  const ref =
    typeof body.model === "string" && body.model ? body.model : typeof body.name === "string" ? body.name : "";
  if (!ref) throw new HttpError(400, "invalid_request", "model is required");
  const stream = body.stream !== false;
  const have = resolveOllamaName(namedModels(d), ref);
  if (have.ok) return pulled(d, res, have.name, stream);
  const pullFn = d.extras.pull;
  if (!pullFn)
    throw new HttpError(
      501,
      "no_models_dir",
      "pulling needs a models folder to put the model in: start the proxy with --models-dir (or modelsDir in the config)",
    );
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const hfRef = ref.replace(/^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i, "");
  // a reference that cannot name a model is the client's error, told before any download or stream starts
  try {
    parsePullRef(hfRef);
  } catch (e) {
    if (isGglibError(e))
      throw new HttpError(400, "invalid_request", e.details.hint ? `${e.message} ${e.details.hint}` : e.message);
    throw e;
  }
  if (stream) {
    res.writeHead(200, NDJSON_HEADERS);
    res.write(ndjsonLine({ status: "pulling manifest" }));
  }
  let last = "";
  await pullOrStatus(pullFn, hfRef, {
    signal: abort.signal,
    onProgress: (p) => {
      if (!stream || res.destroyed || p.status === "success") return;
      const line: Obj = { status: p.status };
      if (p.digest ?? p.file) line.digest = p.digest ?? p.file;
      if (p.total) line.total = p.total;
      if (p.completed) line.completed = p.completed;
      const text = ndjsonLine(line);
      if (text !== last) res.write(text);
      last = text;
    },
  });
  await d.extras.reload?.();
  if (stream) res.end(ndjsonLine({ status: "success" }));
  else sendOllamaJson(res, 200, { status: "success" });
};

/**
 * A pull of a model that is already here answers as Ollama does for an up-to-date model (clients such as Codex
 * pull whatever they do not see under the exact name they asked for): the manifest, the model's file as a layer
 * already complete, verify, write, success. No download, no network.
 */
async function pulled(d: OllamaDeps, res: ServerResponse, name: string, stream: boolean): Promise<void> {
  const model = d.ctx.controller.getModel(name);
  if (!stream || !model) return sendOllamaJson(res, 200, { status: "success" });
  const f = await d.facts.get(model);
  const digest = f.digest.startsWith("sha256:") ? f.digest : `sha256:${f.digest}`;
  res.writeHead(200, NDJSON_HEADERS);
  res.write(ndjsonLine({ status: "pulling manifest" }));
  res.write(ndjsonLine({ status: `pulling ${digest.slice(7, 19)}`, digest, total: f.size, completed: f.size }));
  res.write(ndjsonLine({ status: "verifying sha256 digest" }));
  res.write(ndjsonLine({ status: "writing manifest" }));
  res.end(ndjsonLine({ status: "success" }));
}

/** The pull, its errors with the status they deserve (the hub has no such repo or file: 404). */
async function pullOrStatus(pullFn: PullFn, ref: string, opts: Parameters<PullFn>[1]): Promise<{ name: string }> {
  try {
    return await pullFn(ref, opts);
  } catch (e) {
    if (isGglibError(e, "hub_not_found")) throw new HttpError(404, "not_found", e.message);
    if (isGglibError(e, "invalid_config")) throw new HttpError(400, "invalid_request", e.message);
    throw e;
  }
}
