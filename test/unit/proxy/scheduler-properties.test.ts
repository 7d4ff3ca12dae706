import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Scheduler, type SchedulerAction } from "../../../src/proxy/scheduler.js";

/**
 * Random interleavings of requests, completions, cancellations, load outcomes, stops, crashes and time against
 * the scheduler, with a simulated environment that answers its actions. Invariants checked after every event:
 * - processes (loading/ready/draining/stopping) never exceed --max-models, nor the memory budget (unless alone);
 * - a stop never cuts requests in flight (abort=false only when nothing is in flight);
 * - requests are only dispatched to a ready model;
 * - every request gets exactly one answer (dispatch or reject) once everything settles.
 */
const MODELS = ["a", "b", "c", "d"];
const SIZES: Record<string, number> = { a: 4, b: 3, c: 5, d: 2 };

type Step =
  | { k: "req"; m: number }
  | { k: "done"; i: number }
  | { k: "cancel"; i: number }
  | { k: "load"; i: number; ok: boolean }
  | { k: "stopped"; i: number }
  | { k: "crash"; m: number }
  | { k: "tick"; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ k: fc.constant("req" as const), m: fc.nat(3) }),
  fc.record({ k: fc.constant("done" as const), i: fc.nat(50) }),
  fc.record({ k: fc.constant("cancel" as const), i: fc.nat(50) }),
  fc.record({ k: fc.constant("load" as const), i: fc.nat(5), ok: fc.boolean() }),
  fc.record({ k: fc.constant("stopped" as const), i: fc.nat(5) }),
  fc.record({ k: fc.constant("crash" as const), m: fc.nat(3) }),
  fc.record({ k: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 4_000 }) }),
);

test("scheduler invariants hold under random interleavings", () => {
  fc.assert(
    fc.property(
      fc.array(step, { minLength: 1, maxLength: 120 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 5, max: 12 }),
      fc.boolean(),
      (steps, maxModels, budget, pinA) => {
        const s = new Scheduler(
          MODELS.map((name) => ({ name, estimateBytes: SIZES[name]!, pinned: pinA && name === "a", ttlMs: 3_000 })),
          { maxModels, budgetBytes: budget, queueTimeoutMs: 10_000, drainTimeoutMs: 5_000, maxQueuePerModel: 8 },
        );
        let now = 0;
        let seq = 0;
        const answers = new Map<string, number>();
        const inFlight: string[] = [];
        const waiting: string[] = [];
        const starts: { model: string; instance: number }[] = [];
        const stops: { model: string; instance: number }[] = [];

        const apply = (acts: SchedulerAction[]) => {
          for (const a of acts) {
            if (a.type === "dispatch" || a.type === "reject") {
              answers.set(a.id, (answers.get(a.id) ?? 0) + 1);
              const wi = waiting.indexOf(a.id);
              if (wi >= 0) waiting.splice(wi, 1);
            }
            if (a.type === "dispatch") {
              const st = s.model(a.model)?.status;
              assert.ok(st === "ready" || st === "draining", `dispatch to ${a.model} in state ${st}`);
              inFlight.push(a.id);
            }
            if (a.type === "start") starts.push({ model: a.model, instance: a.instance });
            if (a.type === "stop") {
              stops.push({ model: a.model, instance: a.instance });
              if (!a.abort) assert.equal(s.model(a.model)!.inFlight, 0, `stop of ${a.model} would cut requests`);
            }
          }
          // Capacity invariants over models that hold a process.
          const procs = MODELS.filter((m) => {
            const st = s.model(m)?.status;
            return st === "loading" || st === "ready" || st === "draining" || st === "stopping";
          });
          assert.ok(procs.length <= maxModels, `${procs.length} processes > max ${maxModels}`);
          const bytes = procs.reduce((n, m) => n + SIZES[m]!, 0);
          assert.ok(
            bytes <= budget || procs.length === 1,
            `memory ${bytes} > budget ${budget} with ${procs.join(",")}`,
          );
        };

        for (const st of steps) {
          switch (st.k) {
            case "req": {
              const id = `r${seq++}`;
              waiting.push(id);
              apply(s.handle({ type: "request", id, model: MODELS[st.m]!, now }));
              break;
            }
            case "done": {
              if (inFlight.length === 0) break;
              const [id] = inFlight.splice(st.i % inFlight.length, 1);
              apply(s.handle({ type: "requestDone", id: id!, now }));
              break;
            }
            case "cancel": {
              if (waiting.length === 0) break;
              const [id] = waiting.splice(st.i % waiting.length, 1);
              if (answers.has(id!)) break;
              answers.set(id!, 1);
              apply(s.handle({ type: "cancel", id: id!, now }));
              break;
            }
            case "load": {
              if (starts.length === 0) break;
              const [x] = starts.splice(st.i % starts.length, 1);
              apply(
                s.handle(
                  st.ok
                    ? { type: "loadSucceeded", model: x!.model, instance: x!.instance, now }
                    : { type: "loadFailed", model: x!.model, instance: x!.instance, reason: "x", now },
                ),
              );
              break;
            }
            case "stopped": {
              if (stops.length === 0) break;
              const [x] = stops.splice(st.i % stops.length, 1);
              apply(s.handle({ type: "stopped", model: x!.model, instance: x!.instance, now }));
              break;
            }
            case "crash": {
              const m = s.model(MODELS[st.m]!)!;
              if (m.status === "ready" || m.status === "draining") {
                // The crashed instance's requests end with errors: the environment reports them done.
                apply(s.handle({ type: "crashed", model: m.spec.name, instance: m.instance, reason: "x", now }));
              }
              break;
            }
            case "tick":
              now += st.ms;
              apply(s.handle({ type: "tick", now }));
              break;
          }
        }
        // Settle: finish requests, resolve loads and stops, let deadlines pass.
        for (
          let round = 0;
          round < 200 && (waiting.length > 0 || starts.length > 0 || stops.length > 0 || inFlight.length > 0);
          round++
        ) {
          while (inFlight.length > 0) apply(s.handle({ type: "requestDone", id: inFlight.pop()!, now }));
          while (starts.length > 0) {
            const x = starts.shift()!;
            apply(s.handle({ type: "loadSucceeded", model: x.model, instance: x.instance, now }));
          }
          while (stops.length > 0) {
            const x = stops.shift()!;
            apply(s.handle({ type: "stopped", model: x.model, instance: x.instance, now }));
          }
          now += 1_000;
          apply(s.handle({ type: "tick", now }));
        }
        assert.equal(waiting.length, 0, `requests never answered: ${waiting.join(",")}`);
        for (const [id, n] of answers) assert.equal(n, 1, `${id} answered ${n} times`);
      },
    ),
    { numRuns: 400 },
  );
});
