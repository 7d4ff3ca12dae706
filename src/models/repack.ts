/**
 * Which weights llama.cpp's CPU backend copies into an extra buffer on this CPU, and how big those buffers are.
 *
 * A CPU build of llama.cpp offers "extra" buffer types before the plain CPU one (ggml-cpu.cpp: AMX first, then
 * KleidiAI, then CPU_REPACK). A matrix-multiplication weight goes to the first one whose kernels take its type and
 * shape (llama-model-loader.cpp select_weight_buft); there it is converted (AMX: VNNI tiles; REPACK: rows
 * interleaved 4 or 8 at a time). With mmap (the default) the mapped file stays mapped from its first to its last
 * plain tensor, so those copies sit beside the mapping, not instead of it: only copies of tensors at either end of
 * the file shorten the mapped span. GPU builds never use them (the host buffer type comes first there).
 *
 * The rules below are llama.cpp's, read from the source the test rig builds (commit 80fb11a):
 *   ggml/src/ggml-cpu/amx/amx.cpp       extra_buffer_type::supports_op, ggml_backend_amx_get_alloc_size (mmq.cpp)
 *   ggml/src/ggml-cpu/repack.cpp        ggml_repack_get_optimal_repack_type, extra_buffer_type::supports_op
 * KleidiAI (an ARM build option, off by default) is not modelled; where a rule misses, the first load's measured
 * buffers correct the estimate (src/models/measured.ts).
 */
import type { MatmulLayout, MatmulWeightGroup } from "../gguf/matmul.js";
import { GGML_BLOCK_LAYOUT, GgmlType, isGgmlType } from "../gguf/types.js";

export type { MatmulLayout, MatmulWeightGroup };

/** Names as llama-server prints them (`load_tensors: AMX model buffer size = …`). */
export type ExtraBufferType = "AMX" | "CPU_REPACK";

/**
 * The CPU features that decide it, named as llama.cpp's system_info names them (src/system/types.ts SimdFlag):
 * AVX2, AVX512, AVX512_VNNI, AMX_INT8, NEON, DOTPROD, MATMUL_INT8.
 */
export type CpuFeatures = ReadonlySet<string> | readonly string[];

function has(cpu: CpuFeatures, flag: string): boolean {
  return Array.isArray(cpu) ? cpu.includes(flag) : (cpu as ReadonlySet<string>).has(flag);
}

/** Input-feature alignment AMX's kernels need per type (amx.cpp supports_op); undefined: no AMX kernel. */
const AMX_ALIGNMENT: Partial<Record<number, number>> = {
  [GgmlType.Q4_0]: 32,
  [GgmlType.Q4_1]: 32,
  [GgmlType.Q8_0]: 32,
  [GgmlType.Q4_K]: 256,
  [GgmlType.Q5_K]: 256,
  [GgmlType.Q6_K]: 256,
  [GgmlType.IQ4_XS]: 256,
  [GgmlType.F16]: 16,
};

function nbytes(type: number, shape: readonly number[]): number {
  if (!isGgmlType(type)) return 0;
  const { blockSize, typeSize } = GGML_BLOCK_LAYOUT[type];
  let n = 1;
  for (const d of shape) n *= d;
  return Math.ceil(n / blockSize) * typeSize;
}

/**
 * AMX's packed size (mmq.cpp get_row_size × rows): the blocks, plus a 4-byte compensation per block for Q8_0,
 * 4 bytes per block of unpacked scales for Q4_K and Q5_K, 2 for IQ4_XS. F16 is not packed.
 */
function amxBytes(type: number, shape: readonly number[]): number {
  if (type === GgmlType.F16 || !isGgmlType(type)) return nbytes(type, shape);
  const { blockSize, typeSize } = GGML_BLOCK_LAYOUT[type];
  const k = shape[0] ?? 0;
  const n = shape[1] ?? 1;
  const kb = Math.floor(k / blockSize);
  let row = kb * typeSize;
  if (type === GgmlType.Q8_0) row += kb * 4;
  if (type === GgmlType.Q4_K || type === GgmlType.Q5_K) row += kb * 4;
  if (type === GgmlType.IQ4_XS) row += kb * 2;
  return n * row;
}

function amxTakes(g: MatmulWeightGroup, cpu: CpuFeatures): boolean {
  // built only with AMX_INT8 and AVX512_VNNI (amx.cpp's #if), and only for plain matrix products
  if (!has(cpu, "AMX_INT8") || !has(cpu, "AVX512_VNNI") || g.expert) return false;
  const align = AMX_ALIGNMENT[g.type];
  const k = g.shape[0] ?? 0;
  const n = g.shape[1] ?? 0;
  return align !== undefined && n % 32 === 0 && k % align === 0;
}

/** repack.cpp ggml_repack_get_optimal_repack_type: the rows a type's interleaved layout needs on this CPU, or 0. */
function repackRows(type: number, cpu: CpuFeatures): number {
  const avx2 = has(cpu, "AVX2");
  const neon = has(cpu, "NEON");
  const i8mm = neon && has(cpu, "MATMUL_INT8");
  const dot = neon && has(cpu, "DOTPROD");
  switch (type) {
    case GgmlType.Q4_0:
      return avx2 ? 8 : i8mm || dot ? 4 : 0;
    case GgmlType.Q4_K:
      return avx2 || i8mm || dot ? 8 : 0;
    case GgmlType.Q2_K:
      return has(cpu, "AVX512") ? 8 : 0;
    case GgmlType.Q5_K:
    case GgmlType.Q6_K:
      return i8mm || dot ? 8 : 0;
    case GgmlType.IQ4_NL:
    case GgmlType.MXFP4:
      return avx2 ? 8 : dot ? 4 : 0;
    case GgmlType.Q8_0:
      return i8mm || dot ? 4 : 0;
    default:
      return 0;
  }
}

function repackTakes(g: MatmulWeightGroup, cpu: CpuFeatures): boolean {
  // MUL_MAT takes 2-D weights, MUL_MAT_ID 3-D experts (repack.cpp supports_op)
  if (g.shape.length !== (g.expert ? 3 : 2)) return false;
  const rows = repackRows(g.type, cpu);
  return rows > 0 && (g.shape[1] ?? 0) % rows === 0;
}

/** The extra buffer one weight of this group goes to on this CPU, with its size there; undefined: the plain CPU one. */
export function extraBufferOf(
  g: MatmulWeightGroup,
  cpu: CpuFeatures,
): { buffer: ExtraBufferType; bytes: number } | undefined {
  if (amxTakes(g, cpu)) return { buffer: "AMX", bytes: amxBytes(g.type, g.shape) };
  if (repackTakes(g, cpu)) return { buffer: "CPU_REPACK", bytes: nbytes(g.type, g.shape) };
  return undefined;
}

export interface RepackPlan {
  /** Bytes per extra buffer type (only those used). */
  buffers: Partial<Record<ExtraBufferType, number>>;
  /** Their sum. */
  extraBytes: number;
  /** File bytes of the weights that moved (their copies are `extraBytes`). */
  movedBytes: number;
  /** File bytes that the mapped span loses: moved weights at either end of the file. */
  spanTrimBytes: number;
  /**
   * How the host's weight bytes change: with mmap, + the copies − the trimmed ends; without it, the moved weights
   * are not loaded into the CPU buffer at all.
   */
  deltaBytes: number;
}

/** Where a CPU-only llama-server puts a model's matrix weights on this CPU. */
export function planRepack(layout: MatmulLayout, cpu: CpuFeatures, options: { mmap?: boolean } = {}): RepackPlan {
  const buffers: Partial<Record<ExtraBufferType, number>> = {};
  let extraBytes = 0;
  let movedBytes = 0;
  const moves = layout.groups.map((g) => extraBufferOf(g, cpu));
  layout.groups.forEach((g, i) => {
    const to = moves[i];
    if (!to) return;
    buffers[to.buffer] = (buffers[to.buffer] ?? 0) + to.bytes * g.count;
    extraBytes += to.bytes * g.count;
    if (!g.duplicate) movedBytes += nbytes(g.type, g.shape) * g.count;
  });
  let spanTrimBytes = 0;
  const trim = (run: readonly number[]) => {
    for (const i of run) {
      const g = layout.groups[i];
      if (!g || !moves[i] || g.duplicate) break;
      spanTrimBytes += nbytes(g.type, g.shape);
    }
  };
  trim(layout.leading);
  trim(layout.trailing);
  const mmap = options.mmap ?? true;
  return {
    buffers,
    extraBytes,
    movedBytes,
    spanTrimBytes,
    deltaBytes: extraBytes - (mmap ? spanTrimBytes : movedBytes),
  };
}

/** `AMX 9.06 MiB + CPU_REPACK 1.2 MiB` style summary for humans; empty when nothing is repacked. */
export function describeRepack(
  buffers: Partial<Record<ExtraBufferType, number>>,
  format: (n: number) => string,
): string {
  return Object.entries(buffers)
    .filter(([, b]) => (b ?? 0) > 0)
    .map(([name, b]) => `${name} ${format(b ?? 0)}`)
    .join(" + ");
}
