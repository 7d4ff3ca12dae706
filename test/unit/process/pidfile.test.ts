// The orphan sweep's identity check (src/process/pidfile.ts).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { cmdlineMatches } from "../../../src/process/pidfile.js";
import { RUNS } from "../../support/fuzz.js";

describe("pidfile (properties)", () => {
  test("cmdlineMatches (the orphan sweep's identity check): true only for the binary in the first 3 argv entries, and then only on its own --port", () => {
    const bin = "/opt/llama/bin/llama-server";
    const arg = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("--port", "8080", "9000", "node", bin, "-m"));
    fc.assert(
      fc.property(
        fc.array(arg, { maxLength: 10 }),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        (argv, port) => {
          const r = cmdlineMatches(argv, [bin], port);
          const runsIt = argv.slice(0, 3).includes(bin);
          if (!runsIt) assert.equal(r, false, "another program is never ours");
          else if (port === undefined) assert.equal(r, true);
          else {
            const i = argv.indexOf("--port");
            assert.equal(r, i >= 0 && argv[i + 1] === String(port));
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
