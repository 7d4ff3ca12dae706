// @ts-check
// logging, in llama.cpp's format: `0.00.019.823 I srv    load_model: message`

/** -lv N (set once the command line is read). */
export let verbosity = 3;
/** @param {number} v */
export function setVerbosity(v) {
  verbosity = v;
}
export const LEVEL_VERBOSITY = { E: 1, W: 2, I: 3, D: 4 };
export const pad = (n, w) => String(n).padStart(w, "0");
export function stamp() {
  const us = Math.floor(performance.now() * 1000);
  return `${Math.floor(us / 60e6)}.${pad(Math.floor(us / 1e6) % 60, 2)}.${pad(Math.floor(us / 1000) % 1000, 3)}.${pad(us % 1000, 3)}`;
}
/** log("I", "srv", "load_model", "message"); module "" = library line (`I load_tensors: ...`). `lv` = minimum -lv. */
export function log(level, mod, fn, msg, lv = LEVEL_VERBOSITY[level] ?? 3) {
  if (verbosity < lv) return;
  const prefix = mod ? `${mod.padEnd(5)}${fn.slice(0, 12).padStart(12)}: ` : fn ? `${fn}: ` : "";
  process.stderr.write(`${stamp()} ${level} ${prefix}${msg}\n`);
}
export const trace = (fn, msg) => log("I", "", fn, msg, 4);
export function slotLog(level, fn, slotId, taskId, msg) {
  log(level, "slot", fn, `id ${String(slotId).padStart(2)} | task ${taskId} | ${msg}`);
}
/** The -lv 4 `memory breakdown` lines (at load, and again at exit). */
export function breakdown(self, model, ctx, compute) {
  trace(
    "common_memory_breakdown_print",
    "| memory breakdown [MiB] | total   free    self   model   context   compute    unaccounted |",
  );
  trace(
    "common_memory_breakdown_print",
    `|   - Host               |                 ${String(self).padStart(4)} = ${String(model).padStart(5)} + ${String(ctx).padStart(7)} + ${String(compute).padStart(7)}                |`,
  );
}
