/** Model names as the routes read them: resolved against the catalog, or decoded from a path segment. */
import { HttpError } from "../../core/errors.js";
import { resolveModelName } from "../catalog.js";
import type { ModelController } from "../controller.js";

/** The catalog's names for an error message (with its presets, src/models/presets.ts). */
export function availableNames(controller: ModelController): string {
  const n = controller.catalog().flatMap((m) => [m.name, ...(m.presets ?? []).map((p) => p.name)]);
  return n.length > 0 ? n.join(", ") : "(none: add models to --models-dir or the config)";
}

/** The catalog name of `requested` (name, alias, unique case-insensitive match); 404 when there is none. */
export function resolveName(controller: ModelController, requested: string): string {
  const name = resolveModelName(controller.catalog(), requested);
  if (!name || !controller.state(name)) {
    throw new HttpError(
      404,
      "model_not_found",
      `The model '${requested}' does not exist. Available models: ${availableNames(controller)}.`,
    );
  }
  return name;
}

/** A model name from a URL path segment; malformed percent-encoding → 400. */
export function decodeName(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(
      400,
      "invalid_model_name",
      `The model name in the path is not valid percent-encoding: ${JSON.stringify(segment.slice(0, 200))}.`,
    );
  }
}
