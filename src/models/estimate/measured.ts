/** Measured: llama-server's own buffer lines (what replaces an estimate once a server has started). */

const MIB = 1024 * 1024;

export interface MeasuredBuffers {
  modelBytes?: number;
  kvBytes?: number;
  computeBytes?: number;
  outputBytes?: number;
  /** Sum of what was seen. */
  totalBytes?: number;
  /** On GPUs (any buffer whose device is not CPU/host). */
  gpuBytes?: number;
  hostBytes?: number;
  /**
   * On RPC workers (other hosts): not part of the totals above, which count this host's memory only. Absent when
   * no RPC buffer was seen.
   */
  remoteBytes?: number;
  /** RPC buffers per worker (`host:port` → bytes, all its devices and kinds); absent without RPC buffers. */
  remote?: Record<string, number>;
  /** Per buffer, e.g. { "CUDA0 model": …, "CPU_Mapped model": …, "RPC0[10.0.0.2:50052] KV": … } in bytes. */
  buffers: Record<string, number>;
}

const BUFFER_RE =
  /\b([A-Za-z][\w-]*(?:\[[^\]\s]+\])?)\s+(model|KV|RS|compute|output)\s+buffer size\s*=\s*([\d.]+)\s*MiB/;
/** A device of an RPC worker: `RPC0[10.0.0.2:50052]` (llama.cpp's RPC buffer type names). */
const RPC_DEVICE_RE = /^RPC\d*\[([^\]]+)\]$/;
/** Before llama.cpp named the model buffer: `llm_load_tensors:        CPU buffer size =  7.97 MiB`. */
const OLD_MODEL_RE = /llm_load_tensors:\s+([A-Za-z][\w-]*)\s+buffer size\s*=\s*([\d.]+)\s*MiB/;

/** Buffer kinds printed once per cache or file, which add up within one load. */
const SUMMED = new Set(["model", "KV", "RS"]);

/** The CPU backend's buffers: CPU, CPU_Mapped, CPU_REPACK, *_Host, and the extra AMX / KleidiAI ones. */
function isHostBuffer(name: string): boolean {
  return /^CPU/i.test(name) || /host/i.test(name) || /^(AMX|KLEIDIAI)/i.test(name);
}

/**
 * Reads llama-server's buffer-size lines (printed at `-lv 4`; the proxy starts servers that way to measure):
 *   load_tensors:   CPU_Mapped model buffer size =     7.97 MiB
 *   llama_context:        CPU  output buffer size =     0.49 MiB
 *   llama_kv_cache:        CPU KV buffer size =     1.00 MiB
 *   sched_reserve:        CPU compute buffer size =     3.01 MiB
 * (and `CUDA0 …`, `CUDA_Host …`, `Metal …`, `RS` for recurrent state, `RPC0[host:port] …` on an RPC worker). Lines
 * of one kind on one device within a load add up (a sliding-window model prints two `KV` lines, its full and its
 * windowed cache); a model line after the others starts a reload, which replaces what came before. Fields are absent when no line of that kind was
 * seen. RPC workers' buffers are counted apart (`remote`, `remoteBytes`): the other fields are this host's.
 */
export function parseLlamaMemoryLog(lines: Iterable<string>): MeasuredBuffers {
  let buffers: Record<string, number> = {};
  /** The current load has printed a buffer other than the model's: a model line after that is a reload. */
  let pastModel = false;
  const add = (name: string, kind: string, mib: number) => {
    if (kind === "model" && pastModel) {
      buffers = {};
      pastModel = false;
    }
    if (kind !== "model") pastModel = true;
    const key = `${name} ${kind}`;
    // a sliding-window model has two KV caches (two `CPU KV` lines), a hybrid one KV and RS, a split model one
    // mapped buffer per file: those add up; compute and output are printed once per load (the last one counts)
    buffers[key] = (SUMMED.has(kind) ? (buffers[key] ?? 0) : 0) + mib * MIB;
  };
  for (const line of lines) {
    const m = BUFFER_RE.exec(line);
    if (m) {
      add(m[1]!, m[2]!, Number(m[3]));
      continue;
    }
    const o = OLD_MODEL_RE.exec(line);
    if (o) add(o[1]!, "model", Number(o[2]));
  }
  const out: MeasuredBuffers = { buffers };
  const local: Record<string, number> = {};
  const remote: Record<string, number> = {};
  let remoteTotal: number | undefined;
  for (const [k, v] of Object.entries(buffers)) {
    const rpc = RPC_DEVICE_RE.exec(k.slice(0, k.lastIndexOf(" ")));
    if (!rpc) {
      local[k] = v;
      continue;
    }
    remote[rpc[1]!] = (remote[rpc[1]!] ?? 0) + v;
    remoteTotal = (remoteTotal ?? 0) + v;
  }
  if (remoteTotal !== undefined) {
    for (const ep of Object.keys(remote)) remote[ep] = Math.round(remote[ep]!);
    out.remote = remote;
    out.remoteBytes = Math.round(remoteTotal);
  }
  const sum = (...kinds: string[]) => {
    let total: number | undefined;
    for (const [k, v] of Object.entries(local))
      if (kinds.some((kind) => k.endsWith(` ${kind}`))) total = (total ?? 0) + v;
    return total === undefined ? undefined : Math.round(total);
  };
  const model = sum("model");
  const kv = sum("KV", "RS");
  const compute = sum("compute");
  const output = sum("output");
  if (model !== undefined) out.modelBytes = model;
  if (kv !== undefined) out.kvBytes = kv;
  if (compute !== undefined) out.computeBytes = compute;
  if (output !== undefined) out.outputBytes = output;
  const keys = Object.keys(local);
  if (keys.length > 0) {
    let host = 0;
    let gpu = 0;
    for (const k of keys) {
      const name = k.slice(0, k.lastIndexOf(" "));
      if (isHostBuffer(name)) host += local[k]!;
      else gpu += local[k]!;
    }
    out.hostBytes = Math.round(host);
    out.gpuBytes = Math.round(gpu);
    out.totalBytes = Math.round(host + gpu);
  }
  return out;
}
