// @ts-check
// POST /slots/{id}?action=save|restore|erase, as the real llama-server (80fb11a) answers them (checked against the
// real binary; see test/fixtures/llama-server/slot-actions.md):
//   - without --slot-save-path: 501 `This server does not support slots action. Start it with --slot-save-path`
//   - an id that is not a number: 400 `Invalid slot ID`; a number out of range acts on slot (id as size_t) % n_slots
//     (that is what the real binary does: -1 and 7 both reach slot 1 of 2)
//   - an unknown action: 400 `Invalid action`
//   - save/restore read a JSON body: empty → 500 nlohmann parse error; no `filename` → 500
//     `[json.exception.out_of_range.403] key 'filename' not found`; a filename with a path separator or another
//     forbidden character → 400 `Invalid filename`
//   - a slot that is processing: the action waits until it is free (llama-server defers the task)
//   - save: {"id_slot","filename","n_saved","n_written","timings":{"save_ms"}}; an empty slot saves 0 tokens into a
//     small file. A file that cannot be written: 500 `Unable to save slot`.
//   - restore: {"id_slot","filename","n_restored","n_read","timings":{"restore_ms"}}; a missing file or one saved by
//     another model shape or cache type: 400 `Unable to restore slot: No available space in KV cache or invalid slot
//     save file`; more tokens than the slot's context: 400 `Unable to restore slot: Restored prompt does not fit in
//     the slot context`.
//   - erase (no body needed): {"id_slot","n_erased"}.
// Each action takes a task id, like the real server. No log lines (the real one prints none at the default -lv).
// The file format is the fake's own: "ggsq", version, token count, a JSON line (model shape + the cached text),
// then zero padding to the size a real state file would have (K and V of every layer for every token).
import fs from "node:fs";
import path from "node:path";
import { opt } from "./args.mjs";
import { sendError, sendJson } from "./http.mjs";
import { K } from "./knobs.mjs";
import { S } from "./state.mjs";
import { countTokens } from "./text.mjs";
import { sleep } from "./util.mjs";

const MAGIC = "ggsq";
const VERSION = 2;
/** Bytes per KV element of each cache type (what a real state file stores per token and layer). */
const KV_ELEM_BYTES = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32, q4_1: 20 / 32, iq4_nl: 18 / 32 };

/** What a state file must match to be restored: the model's KV shape and the cache types. */
function shapeKey() {
  const m = S.meta;
  return `${m.nLayer}x${m.nEmbdKv}:${opt.cacheTypeK}/${opt.cacheTypeV}`;
}
function bytesPerToken() {
  const m = S.meta;
  const k = KV_ELEM_BYTES[opt.cacheTypeK] ?? 2;
  const v = KV_ELEM_BYTES[opt.cacheTypeV] ?? 2;
  return Math.ceil(m.nLayer * m.nEmbdKv * (k + v));
}

/** llama.cpp's fs_validate_filename, the parts a test can reach. */
function validFilename(name) {
  if (typeof name !== "string" || name.length === 0 || Buffer.byteLength(name) > 255) return false;
  if (/[\u0000-\u001f\u007f-\u009f/\\:*?"<>|\ufffd\ufeff\uff0e\u2215\u2216]/.test(name)) return false;
  if (name === "." || name === ".." || name.startsWith(" ") || name.endsWith(" ") || name.endsWith(".")) return false;
  return true;
}

/** Until the slot is free or the client has gone. */
async function whenFree(c, slot) {
  while (slot.busy && !c.closed) await sleep(5);
}
/** Never answers; ends when the client goes away. */
function hang(c) {
  return new Promise((r) => (c.closed ? r(undefined) : c.onClose.add(r)));
}

export function handleSlotAction(c, req) {
  if (!opt.slotSavePath)
    return sendError(
      c,
      req,
      501,
      "This server does not support slots action. Start it with `--slot-save-path`",
      "not_supported_error",
    );
  const idText = req.path.slice("/slots/".length);
  const m = /^\s*[+-]?\d+/.exec(idText);
  if (!m) return sendError(c, req, 400, "Invalid slot ID", "invalid_request_error");
  const action = req.query.get("action") ?? "";
  if (action !== "save" && action !== "restore" && action !== "erase")
    return sendError(c, req, 400, "Invalid action", "invalid_request_error");
  const id = Number(m[0]);
  const slot = S.slots[Number(BigInt.asUintN(64, BigInt(id)) % BigInt(S.slots.length))];
  /** @type {any} */
  let body = null;
  try {
    body = JSON.parse(req.body.toString("utf8"));
  } catch {
    /* answered below for the actions that read a body */
  }
  if (action !== "erase") {
    if (body === null || typeof body !== "object") {
      const text = req.body.toString("utf8");
      const msg =
        text.trim() === ""
          ? "[json.exception.parse_error.101] parse error at line 1, column 1: attempting to parse an empty input; check that your input string or stream contains the expected JSON"
          : "[json.exception.parse_error.101] parse error";
      return sendError(c, req, 500, msg, "server_error");
    }
    if (!("filename" in body))
      return sendError(c, req, 500, "[json.exception.out_of_range.403] key 'filename' not found", "server_error");
    if (typeof body.filename !== "string")
      return sendError(
        c,
        req,
        500,
        `[json.exception.type_error.302] type must be string, but is ${body.filename === null ? "null" : typeof body.filename}`,
        "server_error",
      );
    if (!validFilename(body.filename)) return sendError(c, req, 400, "Invalid filename", "invalid_request_error");
  }
  S.nextTask++;
  const run = action === "save" ? save : action === "restore" ? restore : erase;
  run(c, req, id, slot, body).catch((e) => {
    if (!c.closed) sendError(c, req, 500, String(e?.message ?? e), "server_error");
  });
}

async function save(c, req, id, slot, body) {
  await whenFree(c, slot);
  if (K.slotActionMs > 0) await sleep(K.slotActionMs);
  if (K.saveHang) return hang(c);
  if (c.closed) return;
  const t0 = performance.now();
  const file = path.join(opt.slotSavePath, body.filename);
  if (K.saveFail) return sendError(c, req, 500, "Unable to save slot", "server_error");
  const nTokens = slot.cached ? countTokens(slot.cached, true) : 0;
  const meta = Buffer.from(JSON.stringify({ shape: shapeKey(), text: slot.cached }) + "\n");
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, "latin1");
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(nTokens, 8);
  const pad = Buffer.alloc(Math.max(0, nTokens * bytesPerToken() - meta.length));
  const data = Buffer.concat([head, meta, pad]);
  try {
    fs.writeFileSync(file, data);
  } catch {
    return sendError(c, req, 500, "Unable to save slot", "server_error");
  }
  const ms = performance.now() - t0;
  sendJson(c, req, 200, {
    id_slot: id,
    filename: body.filename,
    n_saved: nTokens,
    n_written: data.length,
    timings: { save_ms: Math.round(ms * 1000) / 1000 },
  });
}

async function restore(c, req, id, slot, body) {
  await whenFree(c, slot);
  if (K.slotActionMs > 0) await sleep(K.slotActionMs);
  if (K.restoreHang) return hang(c);
  if (c.closed) return;
  const t0 = performance.now();
  const invalid = "Unable to restore slot: No available space in KV cache or invalid slot save file";
  const fail = (msg) => {
    slot.cached = "";
    return sendError(c, req, 400, msg, "invalid_request_error");
  };
  if (K.restoreFail) return fail(invalid);
  let data;
  try {
    data = fs.readFileSync(path.join(opt.slotSavePath, body.filename));
  } catch {
    return fail(invalid);
  }
  let meta = null;
  if (data.length >= 12 && data.toString("latin1", 0, 4) === MAGIC && data.readUInt32LE(4) === VERSION) {
    const nl = data.indexOf(10, 12);
    try {
      meta = nl > 0 ? JSON.parse(data.toString("utf8", 12, nl)) : null;
    } catch {
      meta = null;
    }
  }
  if (!meta || meta.shape !== shapeKey() || typeof meta.text !== "string") return fail(invalid);
  const nTokens = data.readUInt32LE(8);
  if (nTokens > S.nCtxSlot) return fail("Unable to restore slot: Restored prompt does not fit in the slot context");
  // FAKE_LLAMA_RESTORE_UNUSED: the restore succeeds but the next prompt cannot reuse it (what llama.cpp does for
  // sliding-window and hybrid models, #25913 #28194)
  slot.cached = K.restoreUnused ? "" : meta.text;
  const ms = performance.now() - t0;
  sendJson(c, req, 200, {
    id_slot: id,
    filename: body.filename,
    n_restored: nTokens,
    n_read: data.length,
    timings: { restore_ms: Math.round(ms * 1000) / 1000 },
  });
}

async function erase(c, req, id, slot) {
  await whenFree(c, slot);
  if (c.closed) return;
  const n = slot.cached ? countTokens(slot.cached, true) : 0;
  slot.cached = "";
  sendJson(c, req, 200, { id_slot: id, n_erased: n });
}
