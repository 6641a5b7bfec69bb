// The pure parts of the cluster: restart backoff, the IPC message stamp, and the worst-of merge of worker views.
import assert from "node:assert/strict";
import { test } from "node:test";
import { RestartBackoff } from "../../src/cluster/backoff.ts";
import {
  isPrimaryMessage,
  isWorkerMessage,
  message,
  PROTOCOL,
  type WorkerMessage,
} from "../../src/cluster/messages.ts";
import { mergeViews, worstBreaker, worstTier } from "../../src/cluster/state.ts";

test("restart backoff: 1 s doubling to 30 s, reset by a stable run, capped in a crash loop", () => {
  const b = new RestartBackoff({ initialMs: 1_000, maxMs: 30_000, stableMs: 30_000, maxCrashes: 7 });
  assert.deepEqual(
    Array.from({ length: 7 }, () => b.next(100)),
    [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
  );
  assert.equal(b.next(100), undefined, "the crash-loop cap");
  assert.equal(b.next(60_000), 1_000, "a worker that ran a while starts the curve over");
});

test("messages carry the protocol version; another version or shape is dropped", () => {
  const m = message<WorkerMessage>({ type: "gw:refused", key: "app\u0000http://x", reason: "refused" });
  assert.equal(m.v, PROTOCOL);
  assert.ok(isWorkerMessage(m));
  assert.ok(!isPrimaryMessage(m), "a worker message is not a primary message");
  assert.ok(!isWorkerMessage({ ...m, v: PROTOCOL + 1 }));
  assert.ok(!isWorkerMessage({ type: "NODE_CLUSTER", v: PROTOCOL }));
  assert.ok(!isWorkerMessage(null));
});

test("worst of the workers: open, then half_open, then closed; tier none, then backup, then primary", () => {
  assert.equal(worstBreaker([]), "closed");
  assert.equal(worstBreaker(["closed", "half_open", "closed"]), "half_open");
  assert.equal(worstBreaker(["half_open", "open", "closed"]), "open");
  assert.equal(worstTier([0, 0]), 0);
  assert.equal(worstTier([0, 1]), 1);
  assert.equal(worstTier([1, -1, 0]), -1);
});

test("the merged view keeps the primary's health and takes tiers and breakers from the workers", () => {
  const own = {
    pools: [
      {
        name: "app",
        tier: 0,
        upstreams: [
          { id: "a", up: true, breaker: "closed" as const },
          { id: "b", up: false, breaker: "closed" as const },
        ],
      },
    ],
  };
  assert.deepEqual(mergeViews(own, []), own, "no worker views yet: the primary's own");
  const merged = mergeViews(own, [
    [
      {
        name: "app",
        tier: 0,
        breakers: [
          { id: "a", state: "closed" },
          { id: "b", state: "half_open" },
        ],
      },
    ],
    [
      {
        name: "app",
        tier: 1,
        breakers: [
          { id: "a", state: "open" },
          { id: "b", state: "closed" },
        ],
      },
    ],
  ]);
  assert.deepEqual(merged.pools[0], {
    name: "app",
    tier: 1,
    upstreams: [
      { id: "a", up: true, breaker: "open" },
      { id: "b", up: false, breaker: "half_open" },
    ],
  });
});
