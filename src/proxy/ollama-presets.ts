/**
 * Presets over Ollama's API (the HTTP side of src/ollama/modelfile.ts): POST /api/create builds a preset (kept in
 * the registry), /api/show shows one as a Modelfile, DELETE /api/delete removes one, /api/tags lists them. Called
 * from routes/ollama/ (common.ts, models.ts, chat.ts, manage.ts); errors are HttpErrors, written in Ollama's shape
 * there.
 */
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import type { ServerResponse } from "node:http";
import { HttpError, isGglibError } from "../core/errors.js";
import { expandHome } from "../models/config-file.js";
import type { Preset, PresetDef } from "../models/presets.js";
import { validateModelName, type Registry } from "../models/registry.js";
import { findModel } from "../models/sources.js";
import { ModelfileError, presetFromCreate, presetModelfile, presetParametersText } from "../ollama/modelfile.js";
import { ollamaListName, resolveOllamaName, type NamedModel } from "../ollama/names.js";
import { goJson, NDJSON_HEADERS, ndjsonLine } from "../ollama/wire.js";
import type { ProxyModel } from "./catalog.js";
import { findPreset, presetsOf } from "./presets.js";

type Obj = Record<string, unknown>;

export interface PresetApiDeps {
  catalog: () => ProxyModel[];
  /** The registry (presets are kept there); absent: create and delete answer why they cannot. */
  registry?: Registry;
  /** Rebuilds the catalog (after a create or a delete). */
  reload?: () => Promise<unknown>;
  /** Where Ollama keeps its blobs (`FROM @sha256:…`); default OLLAMA_MODELS or ~/.ollama/models. */
  ollamaModels?: string;
}

/** The catalog's presets as names Ollama's resolver knows (their model's file as the path). */
export function presetNames(models: readonly ProxyModel[]): NamedModel[] {
  return presetsOf(models).map(({ preset, model }) => ({ name: preset.name, aliases: [], path: model.entry.path }));
}

/** The preset a resolved name is, if it is one. */
export function presetNamed(models: readonly ProxyModel[], name: string): Preset | undefined {
  return findPreset(models, name);
}

/** /api/tags entries for the presets: their model's facts, a digest of their own. */
export function presetTags(models: readonly ProxyModel[], listed: readonly Obj[]): Obj[] {
  const byName = new Map(listed.map((e) => [e.name, e]));
  return presetsOf(models).flatMap(({ preset, model }) => {
    const base = byName.get(ollamaListName(model.name));
    if (!base) return [];
    const name = ollamaListName(preset.name);
    return [{ ...base, name, model: name, digest: presetDigest(preset) }];
  });
}

function presetDigest(p: Preset): string {
  return createHash("sha256")
    .update(JSON.stringify({ ...p, source: undefined }))
    .digest("hex");
}

/** /api/show for a preset: its model's answer with the preset's Modelfile, parameters and system prompt. */
export function presetShow(preset: Preset, base: Obj): Obj {
  const out: Obj = {
    ...base,
    modelfile: presetModelfile(preset.name, preset),
    parameters: presetParametersText(preset),
  };
  if (preset.system !== undefined) out.system = preset.system;
  if (preset.messages) out.messages = preset.messages;
  return out;
}

/** DELETE /api/delete of a preset: the registry's are removed; the config file's are explained. */
export async function deletePreset(deps: PresetApiDeps, preset: Preset): Promise<void> {
  if (preset.source === "config")
    throw new HttpError(
      400,
      "preset_in_config",
      `"${preset.name}" is a preset of the config file: remove it from the file's presets section`,
    );
  needRegistry(deps, "delete").presets.remove(preset.name);
  await deps.reload?.();
}

/** POST /api/copy of a preset: a preset of the registry with the same changes under the new name. */
export async function copyPreset(deps: PresetApiDeps, preset: Preset, destination: string): Promise<void> {
  const name = checkedName(destination);
  refuseTakenName(deps.catalog(), name, destination);
  const def: Partial<Preset> = { ...preset };
  delete def.name;
  delete def.source;
  needRegistry(deps, "copy").presets.save(name, def as PresetDef);
  await deps.reload?.();
}

/** A preset's name as given (without `:latest`), checked like a model's; 400 when it cannot be one. */
function checkedName(requested: string): string {
  const name = requested.replace(/:latest$/i, "");
  try {
    validateModelName(name);
  } catch (e) {
    throw new HttpError(400, "bad_request", `${(e as Error).message} ${isGglibError(e) ? (e.details.hint ?? "") : ""}`);
  }
  return name;
}

/** POST /api/create: the request as a preset, saved in the registry; answered like Ollama (stream or not). */
export async function createPreset(deps: PresetApiDeps, body: Obj, res: ServerResponse): Promise<void> {
  const requested =
    typeof body.model === "string" && body.model ? body.model : typeof body.name === "string" ? body.name : "";
  if (!requested) throw new HttpError(400, "bad_request", "model is required (the name of the preset to create)");
  const name = checkedName(requested);
  let plan;
  try {
    plan = presetFromCreate(body);
  } catch (e) {
    if (e instanceof ModelfileError)
      throw new HttpError(400, "bad_request", `cannot create "${requested}": ${e.message}`);
    throw e;
  }
  const registry = needRegistry(deps, "create");
  const models = deps.catalog();
  refuseTakenName(models, name, requested);
  const stream = body.stream !== false;
  const steps: string[] = [];
  let def: PresetDef;
  const file = fromFile(plan.from, deps);
  if (file) {
    const changes = Object.keys(plan.def).length > 0;
    const have = models.find((m) => m.entry.path === file || m.entry.shards.includes(file));
    if (!changes || !have) {
      // a GGUF on this machine: registered (not copied); with changes, under its own name and the preset over it
      const added = await register(registry, file, changes ? undefined : name);
      steps.push(`registered ${file} as ${added}`);
      await deps.reload?.();
      if (!changes) return done(res, stream, steps);
      def = { model: added, ...plan.def };
    } else def = { model: have.name, ...plan.def };
  } else def = fromModel(models, plan.from, plan.def);
  registry.presets.save(name, def);
  steps.push(`preset ${name} over ${def.model}`);
  await deps.reload?.();
  done(res, stream, steps);
}

function done(res: ServerResponse, stream: boolean, steps: string[]): void {
  if (!stream) {
    const text = goJson({ status: "success" });
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
    return;
  }
  res.writeHead(200, NDJSON_HEADERS);
  for (const s of steps) res.write(ndjsonLine({ status: s }));
  res.end(ndjsonLine({ status: "success" }));
}

/** FROM a model or a preset (a preset's changes come first, the new ones over them). */
function fromModel(models: readonly ProxyModel[], from: string, changes: Omit<PresetDef, "model">): PresetDef {
  const named = [
    ...models.map((m) => ({ name: m.name, aliases: m.aliases, path: m.entry.path })),
    ...presetNames(models),
  ];
  const r = resolveOllamaName(named, from);
  if (!r.ok)
    throw new HttpError(
      r.reason === "ambiguous" ? 400 : 404,
      "model_not_found",
      `FROM "${from}": ${r.reason === "ambiguous" ? "matches several models; name one of" : "no such model; available"}: ${r.candidates.slice(0, 20).join(", ")}`,
    );
  const over = findPreset(models, r.name);
  if (!over) return { model: r.name, ...changes };
  const merged: PresetDef = { ...over, ...changes, model: over.model };
  if (over.set || changes.set) merged.set = { ...over.set, ...changes.set };
  if (over.messages || changes.messages) merged.messages = [...(over.messages ?? []), ...(changes.messages ?? [])];
  delete (merged as Partial<Preset>).name;
  delete (merged as Partial<Preset>).source;
  return merged;
}

/** A preset's name may not be a model's (that name runs the model) nor a config file's preset. */
function refuseTakenName(models: readonly ProxyModel[], name: string, requested: string): void {
  const model = findModel(models, name);
  if (model && model.name.toLowerCase() === name.toLowerCase())
    throw new HttpError(
      409,
      "name_taken",
      `"${requested}" is the name of a model (${model.entry.path}); give the preset another name`,
    );
  const alias = models.find((m) => m.aliases.some((a) => a.toLowerCase() === name.toLowerCase()));
  if (alias)
    throw new HttpError(
      409,
      "name_taken",
      `"${requested}" is an alias of the model "${alias.name}"; give the preset another name`,
    );
  const p = findPreset(models, name);
  if (p?.source === "config")
    throw new HttpError(
      409,
      "name_taken",
      `"${requested}" is a preset of the config file, which wins; change it there or give this one another name`,
    );
}

/** FROM a GGUF on this machine (an absolute path, ~/…, or an Ollama blob `@sha256:<hex>`): its path. */
function fromFile(from: string, deps: PresetApiDeps): string | undefined {
  const blob = /^@?sha256[:-]([0-9a-f]{64})$/i.exec(from);
  if (blob) {
    const dir = deps.ollamaModels ?? process.env.OLLAMA_MODELS ?? join(homedir(), ".ollama", "models");
    const p = join(dir, "blobs", `sha256-${blob[1]!.toLowerCase()}`);
    if (!existsSync(p))
      throw new HttpError(404, "model_not_found", `FROM ${from}: no such blob in ${join(dir, "blobs")}`);
    return p;
  }
  const looksLikePath = from.startsWith("/") || from.startsWith("~") || from.startsWith(".") || /\.gguf$/i.test(from);
  if (!looksLikePath) return undefined;
  const p = expandHome(from);
  if (!isAbsolute(p))
    throw new HttpError(
      400,
      "bad_request",
      `FROM ${from}: give the GGUF's absolute path (the proxy does not know the client's working folder)`,
    );
  const abs = resolve(p);
  if (!existsSync(abs) || !statSync(abs).isFile())
    throw new HttpError(404, "model_not_found", `FROM ${from}: no such file on the proxy's machine`);
  return abs;
}

async function register(registry: Registry, path: string, name: string | undefined): Promise<string> {
  try {
    return (await registry.add({ path, ...(name ? { name } : {}) })).name;
  } catch (e) {
    if (isGglibError(e))
      throw new HttpError(
        400,
        "bad_request",
        `cannot register ${path}: ${e.message}${e.details.hint ? ` ${e.details.hint}` : ""}`,
      );
    throw e;
  }
}

function needRegistry(deps: PresetApiDeps, what: string): Registry {
  if (!deps.registry)
    throw new HttpError(
      501,
      "no_registry",
      `${what} needs gglib's model registry, which this proxy has not opened (run \`gglib models add\` once to create it), or define the preset in the config file's presets section`,
    );
  return deps.registry;
}
