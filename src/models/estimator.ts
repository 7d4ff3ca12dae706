/**
 * The memory estimator's public path: what a llama-server needs for a model before starting it
 * (estimate/estimate.ts), the budget (estimate/budget.ts), fit advice (estimate/fit.ts) and llama-server's own
 * buffer lines (estimate/measured.ts). Which layers slide or recur: estimate/layers.ts; the compute buffer of a model
 * without memory (BERT…): estimate/encoder.ts.
 */
export * from "./estimate/estimate.js";
export * from "./estimate/budget.js";
export * from "./estimate/fit.js";
export * from "./estimate/measured.js";
export * from "./estimate/layers.js";
export * from "./estimate/encoder.js";
