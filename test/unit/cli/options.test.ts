/** The CLI's options as data (src/cli/options.ts) and the one numeric parser (src/core/units.ts). */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { isGglibError } from "../../../src/core/errors.js";
import { PORT, expected, readNumber } from "../../../src/core/units.js";
import {
  addOptions,
  numberOption,
  numberOrWordOption,
  parseNumberOption,
  readOptions,
  switchOption,
  type OptionTable,
} from "../../../src/cli/options.js";

void describe("one numeric parser", () => {
  void test("counts, ports, sizes and seconds", () => {
    assert.equal(readNumber("4096", { kind: "integer", min: 0 }), 4096);
    assert.equal(readNumber("-1", { kind: "integer", min: -1 }), -1);
    assert.equal(readNumber("1.5", { kind: "integer" }), undefined);
    assert.equal(readNumber("0x10", { kind: "integer" }), undefined);
    assert.equal(readNumber("", { kind: "integer" }), undefined);
    assert.equal(readNumber("65536", PORT), undefined);
    assert.equal(readNumber("0.7", { kind: "number", min: 0 }), 0.7);
    assert.equal(readNumber("20GiB", { kind: "size" }), 20 * 1024 ** 3);
    assert.equal(readNumber("512 MB", { kind: "size" }), 512 * 1024 ** 2);
    assert.equal(readNumber("lots", { kind: "size" }), undefined);
    assert.equal(readNumber("5m", { kind: "seconds" }), 300);
    assert.equal(readNumber("1h", { kind: "seconds" }), 3600);
    assert.equal(readNumber("0.5", { kind: "seconds" }), 0.5);
    assert.equal(readNumber("0", { kind: "seconds", min: 1 }), undefined);
    assert.equal(expected({ kind: "integer", min: 1 }), "an integer >= 1");
    assert.equal(expected(PORT), "an integer from 0 to 65535");
  });

  void test("a bad value names the flag, what it takes and an example", () => {
    assert.throws(
      () => parseNumberOption("--ctx", "big", { kind: "integer", min: 0, example: "4096" }),
      (e: unknown) =>
        isGglibError(e, "invalid_config") &&
        e.message === '--ctx must be an integer >= 0 (got "big").' &&
        e.details.hint === "Example: --ctx 4096",
    );
    assert.throws(() => parseNumberOption("--port", "99999", PORT), /--port must be an integer from 0 to 65535/);
  });
});

void describe("options as data", () => {
  interface Settings {
    contextSize?: number;
    gpuLayers?: number | "auto" | "all";
    pinned?: boolean;
    jinja?: boolean;
  }
  const table: OptionTable<Settings> = {
    contextSize: numberOption("-c, --ctx <n>", "context", { kind: "integer", min: 0 }),
    gpuLayers: numberOrWordOption("--ngl <n>", "layers", { kind: "integer", min: -1 }, ["auto", "all"] as const),
    pinned: switchOption("--pin", "pin"),
    jinja: switchOption("--jinja", "jinja on", "jinja off"),
  };
  const parse = (args: string[]): Partial<Settings> => {
    const cmd = addOptions(new Command().exitOverride(), table);
    cmd.parse(args, { from: "user" });
    return readOptions(table, cmd.opts());
  };

  void test("flags land on the settings' keys, parsed by the field's rule", () => {
    assert.deepEqual(parse(["-c", "4096", "--ngl", "all", "--pin", "--no-jinja"]), {
      contextSize: 4096,
      gpuLayers: "all",
      pinned: true,
      jinja: false,
    });
    assert.deepEqual(parse(["--ngl", "12"]), { gpuLayers: 12 });
    assert.deepEqual(parse([]), {});
    assert.throws(() => parse(["--ngl", "many"]), /--ngl must be an integer >= -1 or auto or all/);
  });
});
