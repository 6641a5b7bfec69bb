// Lease arithmetic and the reap guard on a fake clock, and the memory store's leases: expiry, deregistration,
// heartbeat races, revive and the stall guard.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  expiresAt,
  reapInterval,
  reapVerdict,
  ReapGuard,
  removeAt,
  renew,
  statusAt,
} from "../../src/registry/lease.ts";
import { MemoryStore } from "../../src/registry/store-memory.ts";
import type { AllocateInput } from "../../src/registry/store.ts";

test("a lease expires exactly ttl after its last heartbeat, not twice that (Eureka's bug)", () => {
  const lease = renew(1_000, 15_000);
  assert.equal(expiresAt(lease), 16_000);
  assert.equal(statusAt(lease, 15_999), "active");
  assert.equal(statusAt(lease, 16_000), "expired");
  // Renewing stores the heartbeat time only: a renewal at 10 s expires at 25 s, not 40 s.
  const renewed = renew(10_000, 15_000);
  assert.equal(expiresAt(renewed), 25_000);
  assert.equal(removeAt(renewed, 60_000), 85_000);
});

test("reap verdicts: keep while active, expire once past ttl, remove deregisterAfter later", () => {
  const lease = renew(0, 1_000);
  assert.equal(reapVerdict(lease, "active", 999, 5_000), "keep");
  assert.equal(reapVerdict(lease, "active", 1_000, 5_000), "expire");
  assert.equal(reapVerdict(lease, "expired", 3_000, 5_000), "keep", "an expired lease is expired once");
  assert.equal(reapVerdict(lease, "expired", 6_000, 5_000), "remove");
  // A reap that missed the expiry (a long stall) removes in one step.
  assert.equal(reapVerdict(lease, "active", 6_000, 5_000), "remove");
  assert.equal(reapInterval(15_000), 5_000);
  assert.equal(reapInterval(90), 50, "never a busy loop");
});

test("the reap guard holds a reap after a stall longer than ttl/3 until the queued heartbeats were read", () => {
  let now = 0;
  const guard = new ReapGuard(900, 300, () => now);
  now = 300;
  assert.deepEqual(guard.tick(), { reap: true });
  // The tick came 250 ms late: under ttl/3 (300 ms), no stall.
  now = 850;
  assert.deepEqual(guard.tick(), { reap: true });
  // 700 ms late: a stall.
  now = 1_850;
  const held = guard.tick();
  assert.deepEqual(held, { reap: false, reason: "stall", stallMs: 700 });
  assert.equal(guard.stalled, true);
  now = 2_150;
  assert.equal(guard.tick().reap, false, "still held until the shell read the queue");
  guard.queueRead();
  now = 2_450;
  assert.deepEqual(guard.tick(), { reap: true });
});

test("the reap guard expires nothing while the store is down, then gives the leases one ttl", () => {
  let now = 0;
  const guard = new ReapGuard(3_000, 1_000, () => now);
  guard.storeDown();
  for (let i = 1; i <= 10; i++) {
    now = i * 1_000;
    assert.deepEqual(guard.tick(), { reap: false, reason: "store_down" });
  }
  guard.storeBack(); // at 10 s: the grace runs until 13 s
  now = 11_000;
  assert.deepEqual(guard.tick(), { reap: false, reason: "store_back", untilMs: 13_000 });
  now = 12_000;
  assert.equal(guard.tick().reap, false);
  now = 13_000;
  assert.deepEqual(guard.tick(), { reap: true });
  // A second storeBack without a down in between changes nothing.
  guard.storeBack();
  now = 14_000;
  assert.deepEqual(guard.tick(), { reap: true });
});

const types = new Map([
  ["web", { range: { first: 100, last: 101 } }],
  ["fb", { range: { first: 200, last: 200 } }],
]);
function input(name: string, over: Partial<AllocateInput["request"]> = {}, host = "10.0.0.1"): AllocateInput {
  return {
    record: { serviceName: name, serviceType: "web", host, weight: 1, pid: null, metadata: {}, ttl: 1_000 },
    request: { type: "web", ...over },
    types,
    exclude: [],
  };
}

test("memory store: expiry, revive by heartbeat, removal after deregisterAfter, and the port freed", async () => {
  let now = 10_000;
  const store = new MemoryStore(() => now);
  const a = await store.allocate(input("a"));
  assert.ok(a.ok);
  const id = a.record.id;
  assert.equal(a.record.lastHeartbeat, 10_000);
  now = 10_999;
  assert.deepEqual(await store.reap(5_000), { expired: [], removed: [] });
  now = 11_000;
  const r1 = await store.reap(5_000);
  assert.deepEqual(
    r1.expired.map((r) => r.id),
    [id],
  );
  assert.equal(store.snapshot().get(id)!.status, "expired");
  assert.deepEqual(await store.reap(5_000), { expired: [], removed: [] }, "expired once, not at every reap");
  // A heartbeat to an expired, not yet removed allocation revives it with a full ttl from now.
  now = 13_000;
  const hb = await store.heartbeat(id, 1_000);
  assert.equal(hb!.status, "active");
  assert.equal(expiresAt(hb!), 14_000);
  now = 14_000;
  assert.equal((await store.reap(5_000)).expired.length, 1);
  now = 19_000;
  const r2 = await store.reap(5_000);
  assert.deepEqual(
    r2.removed.map((r) => r.id),
    [id],
  );
  assert.equal(await store.heartbeat(id, 1_000), undefined, "a removed allocation is a 404: allocate again");
  const b = await store.allocate(input("b"));
  assert.ok(b.ok);
  assert.equal(b.record.port, 100, "the removed allocation's port is free again");
});

test("memory store: a heartbeat and a reap racing at the removal boundary end consistently either way", async () => {
  for (const heartbeatFirst of [true, false]) {
    let now = 0;
    const store = new MemoryStore(() => now);
    const a = await store.allocate(input("a"));
    assert.ok(a.ok);
    now = 1_000;
    assert.equal((await store.reap(500)).expired.length, 1);
    now = 1_500; // removal is due now
    const [hb, reaped] = heartbeatFirst
      ? await Promise.all([store.heartbeat(a.record.id, 1_000), store.reap(500)])
      : await Promise.all([store.reap(500), store.heartbeat(a.record.id, 1_000)]).then(
          ([r, h]) => [h, r] as const,
        );
    if (heartbeatFirst) {
      assert.equal(hb!.status, "active");
      assert.equal(reaped.removed.length, 0, "the revived lease is not removed");
      assert.equal(store.snapshot().get(a.record.id)!.status, "active");
    } else {
      assert.equal(hb, undefined, "the heartbeat after the removal is a 404");
      assert.equal(reaped.removed.length, 1);
      assert.equal(store.snapshot().size, 0);
    }
  }
});

test("memory store: cleanup removes the expired ones (also those past ttl not yet reaped) and only those", async () => {
  let now = 0;
  const store = new MemoryStore(() => now);
  const a = await store.allocate(input("a"));
  const b = await store.allocate(input("b"));
  assert.ok(a.ok && b.ok);
  now = 500;
  await store.heartbeat(b.record.id, 1_000);
  now = 1_000;
  const removed = await store.cleanup();
  assert.deepEqual(
    removed.map((r) => r.id),
    [a.record.id],
  );
  assert.deepEqual([...store.snapshot().keys()], [b.record.id]);
});
