/**
 * llama-server's slot actions (`POST /slots/{id}?action=save|restore|erase`) belong to the proxy: its context cache
 * saves a model's slots into that model's `--slot-save-path` and restores them at the next load. A client that could
 * call them would write any file name into the cache folder (over `state.json` too), or plant a conversation that is
 * restored into the next load. So every path under `/slots/` is refused on the routes that pass requests through
 * (the catch-all and `/upstream/{model}/…`); the listing `GET /slots` stays.
 */
import { posix } from "node:path";
import { HttpError } from "../../core/errors.js";

/** Percent-decoding that never throws (a malformed escape stays as it is, as llama-server's decoder leaves it). */
function decode(s: string): string {
  return s.replace(/%[0-9a-fA-F]{2}/g, (e) => String.fromCharCode(parseInt(e.slice(1), 16)));
}

/**
 * Pure: whether a request path (as the client sent it, without the query) reaches a slot action of llama-server,
 * however it is spelled: percent-encoded, with doubled slashes or dot segments, in another case, in absolute form,
 * under an `--api-prefix`.
 */
export function isSlotActionPath(path: string): boolean {
  let p = path.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, "");
  // decoded until it no longer changes (a %252F is a %2F after one pass)
  for (let i = 0; i < 3; i++) {
    const d = decode(p);
    if (d === p) break;
    p = d;
  }
  p = posix.normalize(`/${p.replace(/\\/g, "/")}`).toLowerCase();
  // anywhere in the path: a model's extraArgs may set llama-server's --api-prefix (`/x/slots/0`)
  return p.includes("/slots/");
}

/** Throws the 403 for a slot action (see isSlotActionPath); anything else passes. */
export function refuseSlotAction(path: string): void {
  if (!isSlotActionPath(path)) return;
  throw new HttpError(
    403,
    "slot_actions_reserved",
    "Slot actions (POST /slots/{id}?action=save|restore|erase) are not available through the proxy: it saves and " +
      "restores each model's slots itself (the context cache), so a conversation survives a swap without them. " +
      "GET /slots?model=… still lists the slots; set contextCache: 0 and run llama-server yourself to manage slot files.",
  );
}
