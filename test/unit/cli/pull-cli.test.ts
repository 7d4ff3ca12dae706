/**
 * `gglib pull`: the progress detail (bytes, speed, time left) and the command's registration and help.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { commandsFor, buildProgram } from "../../../src/cli/main.js";
import { progressDetail } from "../../../src/cli/commands/pull.js";

const MIB = 2 ** 20;

describe("gglib pull", () => {
  test("progress detail: done / total, speed, time left; nothing invented before the speed is known", () => {
    assert.equal(
      progressDetail({ phase: "download", status: "", completed: 12 * MIB, total: 80 * MIB, bytesPerSecond: 4 * MIB }),
      "12.0 MiB / 80.0 MiB · 4.0 MiB/s · 17.0 s left",
    );
    assert.equal(progressDetail({ phase: "download", status: "", completed: 0, total: 80 * MIB }), "0 B / 80.0 MiB");
    assert.equal(
      progressDetail({ phase: "download", status: "", completed: 80 * MIB, total: 80 * MIB, bytesPerSecond: MIB }),
      "80.0 MiB / 80.0 MiB · 1.0 MiB/s",
    );
    assert.equal(progressDetail({ phase: "manifest", status: "pulling manifest" }), "");
  });

  test("registered as a command, loaded alone, with examples in its help", async () => {
    assert.deepEqual(commandsFor(["pull", "a/b"]), ["pull"]);
    const program = await buildProgram(["pull"]);
    const pull = program.commands.find((c) => c.name() === "pull");
    assert.ok(pull, "the pull command exists");
    let help = "";
    pull.configureOutput({ writeOut: (s) => (help += s) });
    pull.outputHelp();
    for (const want of ["--no-mmproj", "--dry-run", "--json", "HF_TOKEN", "HF_ENDPOINT", "Examples:", "Q4_K_M"]) {
      assert.ok(help.includes(want), `help mentions ${want}`);
    }
  });
});
