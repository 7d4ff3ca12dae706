/** Placement: loaded there first, then loading, then the most free memory budget (unknown last); down skipped. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { placeOrder, type HostCandidate } from "../../../src/peers/placement.js";
import { nextCheckMs } from "../../../src/peers/client.js";

const c = (host: string, o: Partial<HostCandidate> = {}): HostCandidate => ({
  host,
  model: "m",
  local: host === "local",
  up: true,
  state: "idle",
  freeBytes: undefined,
  ...o,
});
const order = (cs: HostCandidate[]) => placeOrder(cs).map((x) => x.host);

test("the host where the model is loaded wins over free memory", () => {
  assert.deepEqual(
    order([c("local", { freeBytes: 100e9 }), c("b", { state: "ready", freeBytes: 1 }), c("c", { freeBytes: 50e9 })]),
    ["b", "local", "c"],
  );
});

test("loading comes after loaded, before idle", () => {
  assert.deepEqual(order([c("a"), c("b", { state: "loading" }), c("c", { state: "ready" })]), ["c", "b", "a"]);
});

test("otherwise the most free memory budget; unknown after known; local first on a tie", () => {
  assert.deepEqual(
    order([c("b", { freeBytes: 8e9 }), c("local", { freeBytes: 4e9 }), c("c"), c("d", { freeBytes: 16e9 })]),
    ["d", "b", "local", "c"],
  );
  assert.deepEqual(order([c("b", { freeBytes: 8e9 }), c("local", { freeBytes: 8e9 })]), ["local", "b"]);
  assert.deepEqual(order([c("b"), c("c"), c("local")]), ["local", "b", "c"]);
});

test("down hosts are skipped; failed models go last", () => {
  assert.deepEqual(order([c("b", { state: "ready", up: false }), c("c", { state: "failed" }), c("d")]), ["d", "c"]);
  assert.deepEqual(order([c("b", { up: false })]), []);
});

test("a down peer is checked again with a backoff: the poll interval, doubled from ≥ 1 s, at most 30 s", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((f) => nextCheckMs(2_000, f)),
    [2_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000],
  );
  assert.deepEqual(
    [0, 1, 2].map((f) => nextCheckMs(200, f)),
    [200, 1_000, 2_000],
  );
});
