// @ts-check
// model file: GGUF header (best effort)
import fs from "node:fs";
import path from "node:path";
import { opt } from "./args.mjs";
import { K } from "./knobs.mjs";
import { log } from "./log.mjs";

export const FTYPES = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  32: "BF16",
};

export function readGguf(file, size) {
  const fd = fs.openSync(file, "r");
  try {
    const len = Math.min(size, 64 * 1024 * 1024);
    const b = Buffer.allocUnsafe(len);
    const n = fs.readSync(fd, b, 0, len, 0);
    let o = 0;
    const need = (k) => {
      if (o + k > n) throw new Error("truncated");
    };
    const u32 = () => (need(4), (o += 4), b.readUInt32LE(o - 4));
    const u64 = () => (need(8), (o += 8), Number(b.readBigUInt64LE(o - 8)));
    const str = () => {
      const l = u64();
      need(l);
      o += l;
      return b.toString("utf8", o - l, o);
    };
    const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    const value = (t) => {
      switch (t) {
        case 0:
          return (need(1), b.readUInt8(o++));
        case 1:
          return (need(1), b.readInt8(o++));
        case 2:
          return (need(2), (o += 2), b.readUInt16LE(o - 2));
        case 3:
          return (need(2), (o += 2), b.readInt16LE(o - 2));
        case 4:
          return u32();
        case 5:
          return (need(4), (o += 4), b.readInt32LE(o - 4));
        case 6:
          return (need(4), (o += 4), b.readFloatLE(o - 4));
        case 7:
          return (need(1), b.readUInt8(o++) !== 0);
        case 8:
          return str();
        case 9: {
          const et = u32();
          const cnt = u64();
          if (et === 8) {
            for (let i = 0; i < cnt; i++) str();
          } else {
            const w = SCALAR[et];
            if (w === undefined) throw new Error("bad array type");
            need(w * cnt);
            o += w * cnt;
          }
          return { arrayLength: cnt };
        }
        case 10:
          return u64();
        case 11:
          return (need(8), (o += 8), Number(b.readBigInt64LE(o - 8)));
        case 12:
          return (need(8), (o += 8), b.readDoubleLE(o - 8));
        default:
          throw new Error("bad type");
      }
    };
    o = 4;
    const ver = u32();
    if (ver < 2 || ver > 3) throw new Error("bad version");
    const nTensors = u64();
    const nKv = u64();
    const kv = {};
    for (let i = 0; i < nKv; i++) {
      const key = str();
      kv[key] = value(u32());
    }
    let nParams = 0;
    for (let i = 0; i < nTensors; i++) {
      str();
      const nd = u32();
      let p = 1;
      for (let d = 0; d < nd; d++) p *= u64();
      u32();
      u64();
      nParams += p;
    }
    const align = typeof kv["general.alignment"] === "number" ? kv["general.alignment"] : 32;
    const dataOffset = Math.ceil(o / align) * align;
    return { kv, nParams, nKv, nTensors, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

export function modelFailure(lines) {
  for (let pass = 0; pass < 2; pass++) {
    for (const l of lines) log("E", "", l[0], l[1]);
    log("E", "", "llama_model_load", `error loading model: llama_model_loader: failed to load model from ${opt.model}`);
    log("E", "", "llama_model_load_from_file_impl", "failed to load model");
    if (pass === 0)
      log(
        "E",
        "",
        "common_fit_params",
        "encountered an error while trying to fit params to free device memory: failed to load model",
      );
  }
  log("E", "cmn", "common_init_", `failed to load model '${opt.model}'`);
  log("E", "srv", "load_model", `failed to load model, '${opt.model}'`);
  log("I", "srv", "operator()", "operator(): cleaning up before exit...");
  log("E", "srv", "llama_server", "exiting due to model loading error");
  process.exit(1);
}

export function inspectModel() {
  let st;
  try {
    st = fs.statSync(opt.model);
    if (!st.isFile()) throw new Error("not a file");
  } catch {
    modelFailure([["gguf_init_from_file", `failed to open GGUF file '${opt.model}' (No such file or directory)`]]);
  }
  const fd = fs.openSync(opt.model, "r");
  const magic = Buffer.alloc(4);
  fs.readSync(fd, magic, 0, 4, 0);
  fs.closeSync(fd);
  if (magic.toString("latin1") !== "GGUF") {
    modelFailure([
      [
        "gguf_init_from_reader",
        `invalid magic characters: '${magic.toString("latin1").replace(/\0/g, "")}', expected 'GGUF'`,
      ],
    ]);
  }
  let g = null;
  try {
    g = readGguf(opt.model, st.size);
  } catch {
    if (K.strictGguf) modelFailure([["gguf_init_from_reader", "failed to read key-value pairs"]]);
  }
  const kv = g?.kv ?? {};
  const arch = typeof kv["general.architecture"] === "string" ? kv["general.architecture"] : "llama";
  const num = (k, d) => (typeof kv[k] === "number" ? kv[k] : d);
  const nEmbd = num(`${arch}.embedding_length`, 64);
  const nHead = num(`${arch}.attention.head_count`, 4);
  const nHeadKv = num(`${arch}.attention.head_count_kv`, nHead);
  const tmpl = typeof kv["tokenizer.chat_template"] === "string" ? kv["tokenizer.chat_template"] : null;
  const fileType = num("general.file_type", 1);
  const nParams = g && g.nParams > 0 ? g.nParams : Math.max(1, Math.round(st.size / 2));
  return {
    size: st.size,
    arch,
    name: typeof kv["general.name"] === "string" ? kv["general.name"] : path.basename(opt.model, ".gguf"),
    nCtxTrain: num(`${arch}.context_length`, K.nCtxTrain),
    nEmbd,
    nLayer: num(`${arch}.block_count`, 2),
    nEmbdKv: Math.round((nEmbd / Math.max(1, nHead)) * nHeadKv),
    nVocab: kv["tokenizer.ggml.tokens"]?.arrayLength ?? num(`${arch}.vocab_size`, 32000),
    ftype: FTYPES[fileType] ?? "F16",
    nParams,
    tensorBytes: g && g.dataOffset < st.size ? st.size - g.dataOffset : st.size,
    chatTemplate: tmpl,
    nKv: g?.nKv ?? 0,
    nTensors: g?.nTensors ?? 0,
  };
}
