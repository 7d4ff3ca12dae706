/**
 * The hang rule (src/process/hang-rule.ts) and the health monitor that applies it: a busy server whose /health is
 * slow is not hung; several failed checks in a row with no progress on its requests are.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { HealthStatus } from "../../../src/core/handle.js";
import { HealthMonitor } from "../../../src/process/health-monitor.js";
import { initialHangState, judgeHang, type HangProbe, type HangVerdict } from "../../../src/process/hang-rule.js";

/** The verdicts for a sequence of probes from a fresh state. */
function verdicts(probes: HangProbe[], n = 3): HangVerdict[] {
  let state = initialHangState(0);
  return probes.map((p) => {
    const r = judgeHang(state, p, n);
    state = r.state;
    return r.verdict;
  });
}

const fail = (progress = 0): HangProbe => ({ answered: false, progress });
const ok = (progress = 0): HangProbe => ({ answered: true, progress });

describe("hang rule", () => {
  test("one failed probe is not a hang; three in a row without progress are", () => {
    assert.deepEqual(verdicts([fail(), fail(), fail()]), ["suspect", "suspect", "hung"]);
  });

  test("busy is not hung: failed probes while its requests receive bytes never declare a hang", () => {
    // a burst: /health times out for a minute while every slot streams tokens
    const probes = Array.from({ length: 20 }, (_, i) => fail(1000 * (i + 1)));
    assert.ok(verdicts(probes).every((v) => v === "busy"));
  });

  test("progress starts the count again: a hang needs N failures in a row with no progress between them", () => {
    assert.deepEqual(verdicts([fail(), fail(), fail(10), fail(10), fail(10), fail(10)]), [
      "suspect",
      "suspect",
      "busy",
      "suspect",
      "suspect",
      "hung",
    ]);
  });

  test("a probe that answers clears the failures", () => {
    assert.deepEqual(verdicts([fail(), fail(), ok(), fail(), fail(), fail()]), [
      "suspect",
      "suspect",
      "healthy",
      "suspect",
      "suspect",
      "hung",
    ]);
  });

  test("a server that stops progressing midway (SIGSTOP during a stream) is hung N probes after its last byte", () => {
    assert.deepEqual(verdicts([ok(5), fail(40), fail(40), fail(40), fail(40)]), [
      "healthy",
      "busy",
      "suspect",
      "suspect",
      "hung",
    ]);
  });

  test("the count is a setting (at least 1)", () => {
    assert.deepEqual(verdicts([fail()], 1), ["hung"]);
    assert.deepEqual(verdicts([fail()], 0), ["hung"]);
    assert.deepEqual(verdicts([fail(), fail()], 2), ["suspect", "hung"]);
  });
});

describe("health monitor", () => {
  /** A monitor on scripted checks; resolves with what it reported once the script is used up. */
  async function run(script: HealthStatus[], progress: () => number, probes = 3): Promise<string[]> {
    const reported: string[] = [];
    let i = 0;
    let monitor: HealthMonitor | undefined;
    const alive = setInterval(() => {}, 1_000); // the monitor's timers are unref'd
    await new Promise<void>((done) => {
      monitor = new HealthMonitor(
        () => {
          const s = script[i++];
          if (s === undefined) {
            done();
            return new Promise<HealthStatus>(() => {});
          }
          return Promise.resolve(s);
        },
        (s) => reported.push(s.status === "unhealthy" ? `unhealthy: ${s.reason}` : s.status),
        2,
        { status: "healthy" },
        { progress, probes, retryMs: 1 },
      );
      monitor.start();
    });
    clearInterval(alive);
    monitor!.stop();
    return reported;
  }
  const down: HealthStatus = { status: "unhealthy", reason: "no answer within 2000 ms" };
  const up: HealthStatus = { status: "healthy" };

  test("reports a hang only after three failed checks without progress, with why", async () => {
    const r = await run([down, down, down, up], () => 0);
    assert.deepEqual(r, [
      "unhealthy: no answer within 2000 ms; 3 checks in a row, no progress on its requests",
      "healthy",
    ]);
  });

  test("never reports a busy server (its requests progress) as unhealthy", async () => {
    let bytes = 0;
    const r = await run(
      Array.from({ length: 10 }, () => down),
      () => (bytes += 100),
    );
    assert.deepEqual(r, []);
  });

  test("two failures then an answer report nothing", async () => {
    assert.deepEqual(await run([down, down, up, down, down, up], () => 0), []);
  });
});
