// Mutable pool membership without sockets: members join and leave while tiers, dwell and balancer state stay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Pool, type FailoverEvent } from "../../src/pool/pool.ts";
import { Upstream } from "../../src/pool/upstream.ts";
import { resolveConfig } from "../../src/config/resolve.ts";

const settings = resolveConfig(
  { pools: { p: { upstreams: [{ url: "http://127.0.0.1:1" }] } }, routes: [{ prefix: "/", pool: "p" }] },
  { path: "x", hash: "x", loadedAt: new Date() },
).pools[0]!;

let port = 2000;
const up = (id: string, weight = 1, backup = false) =>
  new Upstream({ id, url: `http://127.0.0.1:${port++}`, weight, backup });
const member = (id: string, weight = 1) =>
  new Upstream({ id, url: `http://127.0.0.1:${port++}`, weight, backup: false }, undefined, {
    discovered: true,
    warmUp: true,
  });

test("a discovered member is out until its first passing check; a static one with unknown health is in", () => {
  const d = member("d@127.0.0.1:9000");
  const s = up("s");
  assert.equal(s.available(), true);
  assert.equal(d.available(), false);
  assert.equal(d.inService(), false);
  assert.match(d.reason(), /first passing health check/);
  d.setStatus(false, "refused");
  assert.equal(d.available(), false);
  d.setStatus(true, "1 passed check");
  assert.equal(d.available(), true);
});

test("a member joins a running pool: the others' smooth WRR weights carry on, no reset", () => {
  const a = up("a", 3);
  const b = up("b", 1);
  const pool = new Pool("p", settings, [a, b]);
  const picks = [pool.pick(undefined, "")!.id, pool.pick(undefined, "")!.id];
  assert.deepEqual(picks, ["a", "a"]);
  // The balancer now remembers a: -2, b: 2; the join must not zero that.
  const c = member("c@h:1", 1);
  pool.add(c);
  // c is warming: the sequence goes on exactly as without it (a,a,b,a), which a reset would have broken (a,a).
  assert.deepEqual([pool.pick(undefined, "")!.id, pool.pick(undefined, "")!.id], ["b", "a"]);
  c.setStatus(true, "ok");
  // Now with c (weight 1), over a full cycle of 5 the shares are 3:1:1.
  const cycle = Array.from({ length: 5 }, () => pool.pick(undefined, "")!.id);
  assert.equal(cycle.filter((x) => x === "a").length, 3);
  assert.equal(cycle.filter((x) => x === "b").length, 1);
  assert.equal(cycle.filter((x) => x === "c@h:1").length, 1);
  pool.close();
});

test("a removed member gets no new picks, and removing it leaves the others' state alone", () => {
  const a = up("a", 1);
  const b = up("b", 1);
  const pool = new Pool("p", settings, [a, b]);
  a.setStatus(true, "ok");
  assert.equal(pool.remove(b), true);
  assert.equal(pool.remove(b), false);
  for (let i = 0; i < 10; i++) assert.equal(pool.pick(undefined, "")!.id, "a");
  assert.deepEqual(
    pool.upstreams.map((u) => u.id),
    ["a"],
  );
  assert.equal(a.health, "healthy");
  // A leaver's later changes no longer reach the pool.
  let updates = 0;
  const orig = pool.update.bind(pool);
  pool.update = () => {
    updates++;
    orig();
  };
  b.setStatus(false, "gone");
  assert.equal(updates, 0);
  pool.close();
});

test("removing the last available primary moves traffic to the backups; a join brings it back", () => {
  const p1 = member("p1@h:1");
  const bk = up("bk", 1, true);
  p1.setStatus(true, "ok");
  const events: FailoverEvent[] = [];
  const pool = new Pool("p", settings, [p1, bk]);
  pool.on("failover", (e) => events.push(e));
  assert.equal(pool.tier, 0);
  pool.remove(p1);
  assert.equal(pool.tier, 1);
  const p2 = member("p2@h:2");
  pool.add(p2);
  assert.equal(pool.tier, 1, "a warming member does not count as a primary back");
  p2.setStatus(true, "ok");
  assert.equal(pool.tier, 0);
  assert.deepEqual(
    events.map((e) => [e.from, e.to]),
    [
      [0, 1],
      [1, 0],
    ],
  );
  pool.close();
});

test("a join or a leave during the failback dwell does not restart the dwell", () => {
  let now = 1_000;
  const primary = up("primary");
  const backup = up("backup", 1, true);
  const other = member("o@h:1");
  const pool = new Pool("p", { ...settings, failbackDelay: 1_000 }, [primary, backup, other], () => now);
  primary.setStatus(false, "down");
  assert.equal(pool.tier, 1);
  primary.setStatus(true, "back"); // the dwell starts at 1000, ends at 2000
  assert.equal(pool.tier, 1);
  now = 1_600;
  pool.add(member("late@h:2"));
  pool.remove(other);
  assert.equal(pool.tier, 1);
  now = 2_001;
  pool.update();
  assert.equal(pool.tier, 0, "the dwell ended when it would have without the join and the leave");
  pool.close();
});

test("a pool built with no members serves nothing until a discovered member passes its check", () => {
  const pool = new Pool("p", settings, []);
  assert.equal(pool.tier, -1);
  assert.equal(pool.pick(undefined, ""), undefined);
  const d = member("d@h:1");
  pool.add(d);
  assert.equal(pool.pick(undefined, ""), undefined);
  d.setStatus(true, "ok");
  assert.equal(pool.tier, 0);
  assert.equal(pool.pick(undefined, "")!.id, "d@h:1");
  pool.close();
});
