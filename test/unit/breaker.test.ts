// The breaker's callback path (admit/settle), which the HTTP data plane uses instead of opossum's promise chain:
// counts in opossum's window, opens on its threshold, lets exactly one half-open trial through, and closes or
// reopens on that trial's verdict.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { UpstreamBreaker, type BreakerChange } from "../../src/breaker/breaker.ts";

const settings = {
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  rollingWindow: 10_000,
  resetTimeout: 30,
  failureStatuses: [500, 502, 503, 504],
};

/** Admits and settles `n` attempts with `verdict`. */
function run(b: UpstreamBreaker, n: number, verdict: "success" | "failure" | "ignore"): void {
  for (let i = 0; i < n; i++) {
    const ticket = b.admit();
    assert.ok(ticket, `attempt ${i} admitted`);
    b.settle(ticket, verdict);
  }
}

/** opossum's reset timer is unref'd: something must hold the event loop while a test waits for half-open. */
function holdLoop(t: { after(fn: () => void): void }): void {
  const timer = setInterval(() => undefined, 1_000);
  t.after(() => clearInterval(timer));
}

/** opossum decides on a failure inside `fire`, a promise chain: lets it run. */
const settled = () => new Promise((r) => setImmediate(r));

test("breaker: closed attempts count in opossum's window; it opens above the threshold, not at it", async (t) => {
  const b = new UpstreamBreaker(settings);
  t.after(() => b.shutdown());
  run(b, 10, "success");
  run(b, 10, "failure");
  await settled();
  // 10 of 20 failed: 50 %, not above it.
  assert.equal(b.state(), "closed");
  run(b, 1, "failure");
  await settled();
  assert.equal(b.state(), "open");
  assert.equal(b.admit(), undefined, "an open breaker admits nothing");
  assert.match(b.reason(), /^breaker open: 11\/21 failed in 10s$/);
});

test("breaker: ignored outcomes (a client that left) never open it", async (t) => {
  const b = new UpstreamBreaker(settings);
  t.after(() => b.shutdown());
  run(b, 50, "ignore");
  run(b, 9, "failure");
  await settled();
  assert.equal(b.state(), "closed");
});

test("breaker: half-open admits one trial; its success closes the breaker", async (t) => {
  holdLoop(t);
  const b = new UpstreamBreaker(settings);
  t.after(() => b.shutdown());
  run(b, 10, "failure");
  await settled();
  assert.equal(b.state(), "open");
  const [toHalf] = (await once(b, "change")) as [BreakerChange];
  assert.equal(toHalf.to, "half_open");
  const trial = b.admit();
  assert.ok(trial, "the trial is admitted");
  assert.equal(b.admit(), undefined, "a second attempt during the trial is refused");
  assert.equal(b.allowsRequest(), false);
  const closed = once(b, "change");
  b.settle(trial, "success");
  const [change] = (await closed) as [BreakerChange];
  assert.deepEqual(change, { from: "half_open", to: "closed", reason: "trial request succeeded" });
  assert.ok(b.admit(), "closed again");
});

test("breaker: a half-open trial that failed, or proved nothing, opens it again", async (t) => {
  holdLoop(t);
  for (const verdict of ["failure", "ignore"] as const) {
    const b = new UpstreamBreaker(settings);
    t.after(() => b.shutdown());
    run(b, 10, "failure");
    await once(b, "change");
    await once(b, "change");
    assert.equal(b.state(), "half_open");
    const reopened = once(b, "change");
    b.settle(b.admit()!, verdict);
    const [change] = (await reopened) as [BreakerChange];
    assert.equal(change.to, "open", verdict);
    assert.equal(change.reason, "breaker open: trial request failed");
  }
});
