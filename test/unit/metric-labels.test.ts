// The label helpers of the request metrics: bounded methods, and status codes as label text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { methodLabel, statusLabel } from "../../src/metrics/metrics.ts";

test("a status label is the code's digits, for any code", () => {
  assert.equal(statusLabel(200), "200");
  assert.equal(statusLabel(499), "499");
  assert.equal(statusLabel(0), "0");
  assert.equal(statusLabel(1000), "1000");
  assert.equal(statusLabel(-1), "-1");
});

test("an unknown method is counted as OTHER", () => {
  assert.equal(methodLabel("GET"), "GET");
  assert.equal(methodLabel("BREW"), "OTHER");
  assert.equal(methodLabel(undefined), "OTHER");
});
