// The retry budget on a fake clock: a share of the window's requests, a concurrency floor, and the window moving.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RetryBudget, RollingCount } from "../../src/pool/retry-budget.ts";

test("rolling count forgets what is older than 10 s", () => {
  let now = 0;
  const c = new RollingCount(() => now);
  c.add(5);
  now = 4_000;
  c.add(2);
  assert.equal(c.sum(), 7);
  now = 10_500;
  assert.equal(c.sum(), 2, "the first bucket has left the window");
  now = 14_500;
  assert.equal(c.sum(), 0);
});

test("retries may add at most percent of the window's requests once the floor is in use", () => {
  let now = 0;
  const b = new RetryBudget(20, 3, () => now);
  for (let i = 0; i < 100; i++) b.requestStarted();
  let granted = 0;
  while (b.tryRetry()) granted++;
  // 20 by rate; the floor of 3 concurrent is already taken by then, so no more.
  assert.equal(granted, 20);
  for (let i = 0; i < granted; i++) b.retryEnded();
  assert.equal(b.tryRetry(), true, "the floor still allows a retry when none is in flight");
  b.retryEnded();
  now = 11_000;
  assert.equal(b.tryRetry(), true);
});

test("a dead pool: with few requests, only minConcurrent retries run at once", () => {
  const b = new RetryBudget(20, 3, () => 0);
  b.requestStarted();
  const grants = [b.tryRetry(), b.tryRetry(), b.tryRetry(), b.tryRetry()];
  assert.deepEqual(grants, [true, true, true, false]);
  b.retryEnded();
  assert.equal(b.tryRetry(), true, "a slot freed is a slot for the next");
});
