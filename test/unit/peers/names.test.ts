/** Names across hosts: qualified, unqualified when unique, the same model on several hosts, clashes. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nameClashes, resolveAcross, type HostModels } from "../../../src/peers/names.js";

const m = (name: string, aliases: string[] = [], file?: string) => ({ name, aliases, file });
const local = (...models: ReturnType<typeof m>[]): HostModels => ({ host: "local", local: true, models });
const peer = (host: string, ...models: ReturnType<typeof m>[]): HostModels => ({ host, local: false, models });

const hosts = [
  local(m("qwen", ["q"], "qwen3-4b.gguf"), m("only-local")),
  peer("b", m("qwen"), m("llama", ["fast"]), m("mistral", [], "mistral.gguf")),
  peer("c", m("qwen3-4b", [], "qwen3-4b.gguf"), m("gemma", ["fast"]), m("mistral")),
];

const found = (requested: string) => {
  const r = resolveAcross(hosts, requested);
  assert.equal(r.kind, "found", `${requested}: ${JSON.stringify(r)}`);
  return r.kind === "found" ? r.targets.map((t) => `${t.host}:${t.model}`) : [];
};

test("a local name reaches every host with the same name or the same file", () => {
  assert.deepEqual(found("qwen"), ["local:qwen", "b:qwen", "c:qwen3-4b"]);
  assert.deepEqual(found("q"), ["local:qwen", "b:qwen", "c:qwen3-4b"]);
  assert.deepEqual(found("QWEN"), ["local:qwen", "b:qwen", "c:qwen3-4b"]);
  assert.deepEqual(found("only-local"), ["local:only-local"]);
});

test("a qualified name reaches that host only", () => {
  assert.deepEqual(found("b/qwen"), ["b:qwen"]);
  assert.deepEqual(found("c/qwen3-4b"), ["c:qwen3-4b"]);
  assert.deepEqual(found("b/fast"), ["b:llama"]);
  assert.equal(resolveAcross(hosts, "b/gemma").kind, "none");
  assert.equal(resolveAcross(hosts, "x/qwen").kind, "none");
});

test("an unqualified peer name: unique → that host; on several hosts → all of them", () => {
  assert.deepEqual(found("llama"), ["b:llama"]);
  assert.deepEqual(found("gemma"), ["c:gemma"]);
  assert.deepEqual(found("mistral"), ["b:mistral", "c:mistral"]);
  assert.equal(resolveAcross(hosts, "nothing").kind, "none");
});

test("a name two different peer models claim is ambiguous, with the qualified choices", () => {
  const r = resolveAcross(hosts, "fast");
  assert.deepEqual(r, { kind: "ambiguous", choices: ["b/llama", "c/gemma"] });
});

test("clashes are reported: an ambiguous alias, a peer name hidden by a local one", () => {
  const c = nameClashes([...hosts, peer("d", m("q"))]);
  assert.ok(
    c.some((x) => /'fast' names different models: b\/llama, c\/gemma/.test(x)),
    c.join("\n"),
  );
  assert.ok(
    c.some((x) => /'q' is the local model 'qwen'; ask for d\/q/.test(x)),
    c.join("\n"),
  );
  // the same model on several hosts is not a clash
  assert.ok(!c.some((x) => x.startsWith("'mistral'") || x.startsWith("'qwen'")), c.join("\n"));
  const hidden = nameClashes([local(m("b/llama")), peer("b", m("llama"))]);
  assert.equal(hidden.length, 1);
  assert.match(hidden[0]!, /local model 'b\/llama' is also named 'b\/llama'/);
  // the local name wins
  assert.deepEqual(resolveAcross([local(m("b/llama")), peer("b", m("llama"))], "b/llama"), {
    kind: "found",
    targets: [{ host: "local", local: true, model: "b/llama" }],
  });
});
