// The coarse deadline sweep: items are told once their deadline passed, re-arm or leave, and the timer stops.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DeadlineSweep, type Expiring } from "../../src/proxy/deadlines.ts";

class Item implements Expiring {
  expired: number[] = [];
  constructor(
    public nextDeadline: number,
    private readonly onExpire: (item: Item, now: number) => void = () => undefined,
  ) {}
  expire(now: number): void {
    this.expired.push(now);
    this.onExpire(this, now);
  }
}

test("a sweep tells exactly the items whose deadline has passed, each time until they act", (t) => {
  const sweep = new DeadlineSweep(20, () => 0);
  t.after(() => sweep.close());
  const early = new Item(100);
  const late = new Item(300);
  const none = new Item(Infinity);
  for (const i of [early, late, none]) sweep.add(i);
  sweep.sweep(99);
  assert.deepEqual([early.expired, late.expired, none.expired], [[], [], []]);
  sweep.sweep(100);
  sweep.sweep(150);
  assert.deepEqual(early.expired, [100, 150], "an item that neither re-arms nor leaves is told again");
  assert.deepEqual(late.expired, []);
  sweep.sweep(1e12);
  assert.deepEqual(late.expired, [1e12]);
  assert.deepEqual(none.expired, [], "Infinity never expires");
});

test("an item re-arms (an upload still moving) or leaves the sweep from expire", (t) => {
  const sweep = new DeadlineSweep(20, () => 0);
  t.after(() => sweep.close());
  const rearm = new Item(100, (item, now) => (item.nextDeadline = now + 100));
  const leave = new Item(100, (item) => sweep.delete(item));
  sweep.add(rearm);
  sweep.add(leave);
  sweep.sweep(120);
  sweep.sweep(150);
  sweep.sweep(220);
  assert.deepEqual(rearm.expired, [120, 220]);
  assert.deepEqual(leave.expired, [120]);
  assert.equal(sweep.size, 1);
});

test("the sweep timer runs only while something is registered, and fires deadlines within a tick", async (t) => {
  const sweep = new DeadlineSweep(5);
  // The sweep's timer is unref'd; this one keeps the test's event loop alive meanwhile.
  const keepAlive = setInterval(() => undefined, 1_000);
  t.after(() => {
    clearInterval(keepAlive);
    sweep.close();
  });
  assert.equal(sweep.running, false);
  const due = performance.now() + 30;
  const fired = new Promise<number>((resolve) => {
    const item: Expiring = {
      nextDeadline: due,
      expire: (now) => {
        sweep.delete(item);
        resolve(now);
      },
    };
    sweep.add(item);
  });
  assert.equal(sweep.running, true);
  assert.ok((await fired) >= due, "never early");
  // The next tick finds the sweep empty and stops its timer: an idle gateway has no timer ticking for it.
  await new Promise<void>((resolve) => {
    const poll = () => (sweep.running ? setTimeout(poll, 5) : resolve());
    poll();
  });
  assert.equal(sweep.size, 0);
});

test("an item that unregisters another during a sweep: each is told at most once, the removed one not at all", (t) => {
  const sweep = new DeadlineSweep(20, () => 0);
  t.after(() => sweep.close());
  const items: Item[] = [];
  // The first item removes the last one, which the array's removal moves into the hole it leaves.
  const first = new Item(100, () => sweep.delete(items[3]!));
  items.push(first, new Item(100), new Item(100), new Item(100));
  for (const i of items) sweep.add(i);
  sweep.add(first);
  assert.equal(sweep.size, 4, "adding a registered item again changes nothing");
  sweep.sweep(100);
  assert.deepEqual(
    items.map((i) => i.expired.length),
    [1, 1, 1, 0],
  );
  sweep.delete(items[3]!);
  sweep.delete(items[1]!);
  assert.equal(sweep.size, 2);
  sweep.sweep(200);
  assert.deepEqual(
    items.map((i) => i.expired.length),
    [2, 1, 2, 0],
  );
});
