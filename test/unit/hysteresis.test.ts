// Consecutive pass/fail hysteresis of health checks, as a pure function.
import { test } from "node:test";
import assert from "node:assert/strict";
import { INITIAL, observe, type HysteresisState } from "../../src/health/hysteresis.ts";

const t = { healthyThreshold: 2, unhealthyThreshold: 3 };

function run(results: boolean[], from: HysteresisState = INITIAL) {
  let state = from;
  return results.map((ok) => {
    const r = observe(state, ok, t);
    state = r.state;
    return `${state.healthy ? "up" : "down"}${r.changed ? "!" : ""}`;
  });
}

test("the first result decides at once", () => {
  assert.deepEqual(run([false]), ["down!"]);
  assert.deepEqual(run([true]), ["up!"]);
});

test("a healthy upstream goes down only after unhealthyThreshold consecutive failures", () => {
  assert.deepEqual(run([true, false, false, true, false, false, false]), [
    "up!",
    "up",
    "up",
    "up",
    "up",
    "up",
    "down!",
  ]);
});

test("an unhealthy upstream comes back only after healthyThreshold consecutive passes", () => {
  assert.deepEqual(run([false, true, false, true, true, true]), [
    "down!",
    "down",
    "down",
    "down",
    "up!",
    "up",
  ]);
});

test("counters track the current run", () => {
  const a = observe(INITIAL, false, t).state;
  const b = observe(a, false, t).state;
  assert.deepEqual(b, { healthy: false, passes: 0, fails: 2 });
  assert.deepEqual(observe(b, true, t).state, { healthy: false, passes: 1, fails: 0 });
});
