/**
 * The matrix weights of a model file, grouped by type and shape: the weights llama.cpp's CPU backend may copy
 * into an extra buffer (AMX, CPU_REPACK), decided per CPU by src/models/repack.ts. Kept in ModelMetadata, so the
 * registry holds a few groups, not every tensor.
 */
/** Matrix weights of one type and shape, `count` of them (the candidates for an extra buffer). */
export interface MatmulWeightGroup {
  /** GGML type id. */
  type: number;
  /** ggml order: shape[0] is the row length (in features), shape[1] the rows (out features). */
  shape: number[];
  count: number;
  /** A 3-D expert tensor (`*_exps`, used by MUL_MAT_ID). */
  expert?: boolean;
  /**
   * Loaded a second time for another use (a tied output head reuses `token_embd`): its copy adds to the mapped
   * file, which still holds the original.
   */
  duplicate?: boolean;
}

/** The matrix weights of a model file, grouped, and which of them sit at the ends of the file. */
export interface MatmulLayout {
  groups: MatmulWeightGroup[];
  /** Group index of each tensor from the start of the data, in file order, up to the first non-candidate. */
  leading: number[];
  /** Group index of each tensor from the end of the data, last first, up to the last non-candidate. */
  trailing: number[];
}

/**
 * Tensors llama.cpp reads by row (GET_ROWS: embeddings), not by matrix product; never repacked
 * (llama-arch.cpp LLM_TENSOR_INFOS).
 */
const ROW_LOOKUP =
  /^(token_embd|position_embd|token_types|per_layer_token_embd)\.|\.(rel_b|attn_rel_b|compressor_ape)\b/;

interface TensorLike {
  readonly name: string;
  readonly type: number;
  readonly shape: readonly number[];
  readonly offset: number;
}

/** Keeps the end runs short: a real file's runs are a block's worth of tensors at most. */
const MAX_RUN = 32;

/**
 * Pure: the matrix-weight layout of a model file from its tensor infos (`ends: false` for a split model: the
 * offsets of shards do not compare, so no end runs). A matrix weight is a tensor of 2+ dimensions that is not a row lookup; a file without `output.weight`
 * whose llama.cpp ties the head to `token_embd` gets that as a duplicate.
 */
export function matmulLayout(tensors: readonly TensorLike[], options: { ends?: boolean } = {}): MatmulLayout {
  const groups: MatmulWeightGroup[] = [];
  const index = new Map<string, number>();
  const groupOf = (g: Omit<MatmulWeightGroup, "count">): number => {
    const key = `${g.type}:${g.shape.join("x")}:${g.expert ? 1 : 0}:${g.duplicate ? 1 : 0}`;
    let i = index.get(key);
    if (i === undefined) {
      i = groups.length;
      groups.push({ ...g, shape: [...g.shape], count: 0 });
      index.set(key, i);
    }
    groups[i]!.count++;
    return i;
  };
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  const slot: (number | undefined)[] = sorted.map((t) => {
    if (t.shape.length < 2 || ROW_LOOKUP.test(t.name) || !t.name.endsWith(".weight")) return undefined;
    const expert = t.shape.length === 3 && /_exps\./.test(t.name);
    return groupOf({ type: t.type, shape: [...t.shape], ...(expert ? { expert } : {}) });
  });
  const hasOutput = tensors.some((t) => t.name === "output.weight");
  const embd = tensors.find((t) => t.name === "token_embd.weight");
  if (!hasOutput && embd && embd.shape.length === 2)
    groupOf({ type: embd.type, shape: [...embd.shape], duplicate: true });
  const run = (order: (number | undefined)[]): number[] => {
    const out: number[] = [];
    for (const i of order) {
      if (i === undefined || out.length >= MAX_RUN) break;
      out.push(i);
    }
    return out;
  };
  if (options.ends === false) return { groups, leading: [], trailing: [] };
  return { groups, leading: run(slot), trailing: run([...slot].reverse()) };
}
