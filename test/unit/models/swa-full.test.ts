import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chooseSwaFull } from "../../../src/models/swa-full.js";
import { buildServerArgs } from "../../../src/llama/args.js";
import { serverConfigOf } from "../../../src/models/settings.js";

const MIB = 1024 * 1024;
/** The rig's gemma3 at 8192 tokens: 12.3 MiB, --swa-full adds 4.4 MiB (5 layers × 7168 cells × 128 bytes). */
const estimate = {
  totalBytes: 12.3 * MIB,
  swa: { window: 128, layers: 5, cells: 1024, full: false, fullExtraBytes: 5 * 7168 * 128 },
};

void describe("--swa-full: the user's choice, else the memory budget when the context cache is on", () => {
  void test("on when the model still fits the budget with it; off, with the numbers, when it does not", () => {
    const on = chooseSwaFull({ estimate, budgetBytes: 20 * MIB, contextCache: true });
    assert.deepEqual(
      { on: on?.on, by: on?.by, extra: on?.extraBytes },
      { on: true, by: "budget", extra: estimate.swa.fullExtraBytes },
    );
    assert.match(on?.reason ?? "", /fits the memory budget: 16\.7 MiB of 20\.0 MiB \(\+4\.4 MiB\)/);
    const off = chooseSwaFull({ estimate, budgetBytes: 16 * MIB, contextCache: true });
    assert.equal(off?.on, false);
    assert.match(off?.reason ?? "", /does not allow it: 16\.7 MiB with it, 16\.0 MiB budget/);
    assert.equal(chooseSwaFull({ estimate, contextCache: true })?.on, true, "no budget: on");
  });

  void test("the context cache off: llama-server's default (off); nothing to add: on for free", () => {
    assert.equal(chooseSwaFull({ estimate, budgetBytes: 1e12, contextCache: false })?.on, false);
    const free = chooseSwaFull({
      estimate: { ...estimate, swa: { ...estimate.swa, fullExtraBytes: 0, full: true } },
      budgetBytes: 1,
      contextCache: true,
    });
    assert.deepEqual([free?.on, free?.by], [true, "default"]);
  });

  void test("a llama-server keeping context checkpoints in slot files: off, the memory not spent; the user still wins", () => {
    const ck = chooseSwaFull({ estimate, budgetBytes: 1e12, contextCache: true, slotCheckpoints: true });
    assert.deepEqual([ck?.on, ck?.by], [false, "default"]);
    assert.match(ck?.reason ?? "", /keeps context checkpoints.*\(\+4\.4 MiB saved\)/);
    assert.equal(chooseSwaFull({ estimate, contextCache: true, slotCheckpoints: true, setting: true })?.on, true);
    assert.equal(
      chooseSwaFull({ estimate, contextCache: true, slotCheckpoints: true, extraArgs: ["--swa-full"] })?.on,
      true,
    );
  });

  void test("the user's settings win over the budget both ways; no sliding window: no choice", () => {
    const tight = { estimate, budgetBytes: 1, contextCache: true };
    assert.deepEqual(
      [chooseSwaFull({ ...tight, extraArgs: ["--swa-full"] })?.on, chooseSwaFull({ ...tight, setting: true })?.on],
      [true, true],
    );
    const roomy = { estimate, budgetBytes: 1e12, contextCache: true };
    assert.equal(chooseSwaFull({ ...roomy, setting: false })?.on, false);
    assert.equal(chooseSwaFull({ ...roomy, env: { LLAMA_ARG_SWA_FULL: "false" } })?.on, false);
    assert.equal(chooseSwaFull({ ...roomy, env: { LLAMA_ARG_SWA_FULL: "1" } })?.by, "budget");
    assert.equal(chooseSwaFull({ ...roomy, estimate: { totalBytes: 1 } }), undefined);
  });

  void test("swaFull: true in the settings → --swa-full on the command line; false or unset → not passed", () => {
    const args = (swaFull?: boolean) =>
      buildServerArgs(
        serverConfigOf({ name: "g", path: "/m/g.gguf", settings: swaFull === undefined ? {} : { swaFull } }),
        8080,
      );
    assert.ok(args(true).includes("--swa-full"));
    assert.ok(!args(false).includes("--swa-full"));
    assert.ok(!args().includes("--swa-full"));
  });
});
