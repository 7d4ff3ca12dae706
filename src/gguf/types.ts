/**
 * GGUF constants shared by the reader (src/gguf/reader.ts) and the tests' writer (test/support/gguf-writer.ts):
 * the GGML tensor type ids with their block layout, the GGUF metadata value type ids and the tokenizer token
 * type ids. Numbers follow ggml.h / gguf.h / llama-vocab.h of llama.cpp; they are part of the file format.
 */

/** "GGUF" read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
/** Alignment of the tensor data section and of each tensor in it when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml allows at most 4 dimensions and 63 bytes of tensor name. */
export const GGML_MAX_DIMS = 4;
export const GGML_MAX_NAME_BYTES = 63;

/** GGML tensor types (`enum ggml_type`). Ids missing here (4, 5, 31–33, 36–38) were removed from ggml. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;
export type GgmlTypeName = keyof typeof GgmlType;
export type GgmlType = (typeof GgmlType)[GgmlTypeName];

/** Elements per block and bytes per block of each GGML type (`ggml_blck_size`, `ggml_type_size`). */
export const GGML_BLOCK_LAYOUT: Readonly<Record<GgmlType, { readonly blockSize: number; readonly typeSize: number }>> =
  {
    [GgmlType.F32]: { blockSize: 1, typeSize: 4 },
    [GgmlType.F16]: { blockSize: 1, typeSize: 2 },
    [GgmlType.Q4_0]: { blockSize: 32, typeSize: 18 },
    [GgmlType.Q4_1]: { blockSize: 32, typeSize: 20 },
    [GgmlType.Q5_0]: { blockSize: 32, typeSize: 22 },
    [GgmlType.Q5_1]: { blockSize: 32, typeSize: 24 },
    [GgmlType.Q8_0]: { blockSize: 32, typeSize: 34 },
    [GgmlType.Q8_1]: { blockSize: 32, typeSize: 36 },
    [GgmlType.Q2_K]: { blockSize: 256, typeSize: 84 },
    [GgmlType.Q3_K]: { blockSize: 256, typeSize: 110 },
    [GgmlType.Q4_K]: { blockSize: 256, typeSize: 144 },
    [GgmlType.Q5_K]: { blockSize: 256, typeSize: 176 },
    [GgmlType.Q6_K]: { blockSize: 256, typeSize: 210 },
    [GgmlType.Q8_K]: { blockSize: 256, typeSize: 292 },
    [GgmlType.IQ2_XXS]: { blockSize: 256, typeSize: 66 },
    [GgmlType.IQ2_XS]: { blockSize: 256, typeSize: 74 },
    [GgmlType.IQ3_XXS]: { blockSize: 256, typeSize: 98 },
    [GgmlType.IQ1_S]: { blockSize: 256, typeSize: 50 },
    [GgmlType.IQ4_NL]: { blockSize: 32, typeSize: 18 },
    [GgmlType.IQ3_S]: { blockSize: 256, typeSize: 110 },
    [GgmlType.IQ2_S]: { blockSize: 256, typeSize: 82 },
    [GgmlType.IQ4_XS]: { blockSize: 256, typeSize: 136 },
    [GgmlType.I8]: { blockSize: 1, typeSize: 1 },
    [GgmlType.I16]: { blockSize: 1, typeSize: 2 },
    [GgmlType.I32]: { blockSize: 1, typeSize: 4 },
    [GgmlType.I64]: { blockSize: 1, typeSize: 8 },
    [GgmlType.F64]: { blockSize: 1, typeSize: 8 },
    [GgmlType.IQ1_M]: { blockSize: 256, typeSize: 56 },
    [GgmlType.BF16]: { blockSize: 1, typeSize: 2 },
    [GgmlType.TQ1_0]: { blockSize: 256, typeSize: 54 },
    [GgmlType.TQ2_0]: { blockSize: 256, typeSize: 66 },
    [GgmlType.MXFP4]: { blockSize: 32, typeSize: 17 },
  };

const GGML_TYPE_NAMES = new Map<number, GgmlTypeName>(
  (Object.entries(GgmlType) as [GgmlTypeName, GgmlType][]).map(([name, id]) => [id, name]),
);

export function isGgmlType(id: number): id is GgmlType {
  return GGML_TYPE_NAMES.has(id);
}

/** "Q4_K" for 12; undefined for an id this table does not know. */
export function ggmlTypeName(id: number): GgmlTypeName | undefined {
  return GGML_TYPE_NAMES.get(id);
}

/**
 * Bytes of a tensor of `elements` elements stored as `type` (`ggml_row_size` summed over rows). Throws when the
 * element count is not a whole number of blocks.
 */
export function ggmlTensorBytes(type: GgmlType, elements: bigint | number): bigint {
  const { blockSize, typeSize } = GGML_BLOCK_LAYOUT[type];
  const n = BigInt(elements);
  if (n % BigInt(blockSize) !== 0n) {
    throw new RangeError(
      `${ggmlTypeName(type) ?? type}: ${n} elements is not a multiple of the block size ${blockSize}`,
    );
  }
  return (n / BigInt(blockSize)) * BigInt(typeSize);
}

/** Types of GGUF metadata values (`enum gguf_type`). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueTypeName = keyof typeof GgufValueType;
export type GgufValueType = (typeof GgufValueType)[GgufValueTypeName];

/** Byte width of the fixed-size GGUF value types; strings and arrays have none. */
export const GGUF_SCALAR_BYTES: Readonly<Partial<Record<GgufValueType, number>>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

/** Vocabulary token types stored in `tokenizer.ggml.token_type` (`enum llama_token_type`). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type TokenTypeName = keyof typeof TokenType;
export type TokenType = (typeof TokenType)[TokenTypeName];
