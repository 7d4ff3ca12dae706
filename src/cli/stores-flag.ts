/** `--skip-store <name>` of `gglib proxy` and `gglib models list/show/rm`: stores not to read (comma lists; `all`). */
import { GglibError } from "../core/errors.js";
import { parseStoreList, STORE_NAMES, type StoreName } from "../models/stores/index.js";

export const SKIP_STORE_FLAG = "--skip-store <name>";
export const SKIP_STORE_HELP = `do not read this tool's model store: ${STORE_NAMES.join(", ")}, or all (repeatable; config: stores)`;

/** The collected flag values → the stores to skip; a word that is no store is a clear error. */
export function skippedStores(values: readonly string[] | undefined): StoreName[] | "all" | undefined {
  if (!values || values.length === 0) return undefined;
  try {
    return parseStoreList(values);
  } catch (e) {
    throw new GglibError("invalid_config", `--skip-store: ${(e as Error).message}.`, {
      hint: `Pass one of ${STORE_NAMES.join(", ")} or all, e.g. --skip-store ollama,lmstudio`,
    });
  }
}

/** commander's collector for a repeatable option. */
export function collectValues(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}
