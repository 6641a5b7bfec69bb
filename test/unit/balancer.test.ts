// Selection policies and tiers on fake upstreams, with no sockets: weights, smoothness, backups, drain.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  IpHash,
  LeastConnections,
  SmoothWeightedRoundRobin,
  WeightedRandom,
} from "../../src/pool/balancer.ts";
import { Pool } from "../../src/pool/pool.ts";
import { Upstream, type BreakerView } from "../../src/pool/upstream.ts";
import { resolveConfig } from "../../src/config/resolve.ts";

const up = (id: string, weight = 1, backup = false) =>
  new Upstream({ id, url: `http://127.0.0.1:${1000 + id.charCodeAt(0)}`, weight, backup });
const all = () => true;

const settings = resolveConfig(
  { pools: { p: { upstreams: [{ url: "http://127.0.0.1:1" }] } }, routes: [{ prefix: "/", pool: "p" }] },
  { path: "x", hash: "x", loadedAt: new Date() },
).pools[0]!;

test("smooth weighted round robin: 3:1 gives a,a,b,a in every cycle and exactly 300/100 of 400", () => {
  const a = up("a", 3);
  const b = up("b", 1);
  const rr = new SmoothWeightedRoundRobin();
  const picks = Array.from({ length: 400 }, () => rr.pick([a, b], all)!.id);
  assert.deepEqual(picks.slice(0, 8), ["a", "a", "b", "a", "a", "a", "b", "a"]);
  assert.equal(picks.filter((p) => p === "a").length, 300);
  assert.equal(picks.filter((p) => p === "b").length, 100);
});

test("smooth weighted round robin: 5:1:1 interleaves like nginx (a,a,b,a,c,a,a)", () => {
  const rr = new SmoothWeightedRoundRobin();
  const list = [up("a", 5), up("b", 1), up("c", 1)];
  assert.deepEqual(
    Array.from({ length: 7 }, () => rr.pick(list, all)!.id),
    ["a", "a", "b", "a", "c", "a", "a"],
  );
});

test("smooth weighted round robin skips unusable members and returns undefined when none is usable", () => {
  const rr = new SmoothWeightedRoundRobin();
  const [a, b] = [up("a", 3), up("b", 1)];
  const picks = Array.from({ length: 4 }, () => rr.pick([a, b], (u) => u !== a)!.id);
  assert.deepEqual(picks, ["b", "b", "b", "b"]);
  assert.equal(
    rr.pick([a, b], () => false),
    undefined,
  );
});

test("least connections picks the lowest in-flight per weight and shares ties", () => {
  const lc = new LeastConnections();
  const [a, b] = [up("a"), up("b")];
  a.inFlight = 3;
  assert.equal(lc.pick([a, b], all)!.id, "b");
  a.inFlight = 0;
  const ids = new Set(Array.from({ length: 4 }, () => lc.pick([a, b], all)!.id));
  assert.deepEqual([...ids].sort(), ["a", "b"]);
});

test("weighted random follows weights", () => {
  let i = 0;
  const seq = [0.1, 0.5, 0.74, 0.76, 0.99];
  const r = new WeightedRandom(() => seq[i++ % seq.length]!);
  const [a, b] = [up("a", 3), up("b", 1)];
  assert.deepEqual(
    seq.map(() => r.pick([a, b], all)!.id),
    ["a", "a", "a", "b", "b"],
  );
});

test("ip-hash keeps a client on its upstream and moves only the clients of one that goes away", () => {
  const h = new IpHash();
  const list = [up("a"), up("b"), up("c")];
  const clients = Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  const before = clients.map((c) => h.pick(list, all, c)!.id);
  assert.deepEqual(
    clients.map((c) => h.pick(list, all, c)!.id),
    before,
    "stable",
  );
  assert.ok(new Set(before).size === 3, "spread over all three");
  const after = clients.map((c) => h.pick(list, (u) => u.id !== "b", c)!.id);
  clients.forEach((_, i) => {
    if (before[i] !== "b") assert.equal(after[i], before[i]);
  });
});

test("pool: the backup gets nothing while a primary is available", () => {
  const [a, b, backup] = [up("a", 2), up("b"), up("z", 1, true)];
  const pool = new Pool("p", settings, [a, b, backup]);
  const picks = Array.from({ length: 300 }, () => pool.pick(undefined, "")!.id);
  assert.equal(picks.filter((p) => p === "z").length, 0);
  assert.equal(pool.tier, 0);
});

test("pool: drained primaries send traffic to the backup, and enable brings it back, with one event each", () => {
  const [a, backup] = [up("a"), up("z", 1, true)];
  const pool = new Pool("p", settings, [a, backup]);
  const events: string[] = [];
  pool.on("failover", (e) => events.push(`${e.from}->${e.to}`));
  a.setDrained(true);
  assert.equal(pool.tier, 1);
  assert.equal(pool.pick(undefined, "")!.id, "z");
  a.setDrained(false);
  assert.equal(pool.tier, 0);
  assert.equal(pool.pick(undefined, "")!.id, "a");
  assert.deepEqual(events, ["0->1", "1->0"]);
});

test("pool: a retry that excludes the only primary reaches the backup without a tier switch", () => {
  const [a, backup] = [up("a"), up("z", 1, true)];
  const pool = new Pool("p", settings, [a, backup]);
  assert.equal(pool.pick(new Set([a]), "")!.id, "z");
  assert.equal(pool.tier, 0);
  assert.equal(pool.pick(new Set([a, backup]), ""), undefined);
});

test("pool: unhealthy everywhere means tier -1 and no pick", () => {
  const [a, backup] = [up("a"), up("z", 1, true)];
  const pool = new Pool("p", settings, [a, backup]);
  a.setStatus(false, "down");
  backup.setStatus(false, "down");
  assert.equal(pool.tier, -1);
  assert.equal(pool.pick(undefined, ""), undefined);
});

test("pool: failback waits failbackDelay and is cancelled when the primary fails again", () => {
  let now = 0;
  const [a, backup] = [up("a"), up("z", 1, true)];
  const pool = new Pool("p", { ...settings, failbackDelay: 1_000 }, [a, backup], () => now);
  a.setStatus(false, "down");
  assert.equal(pool.tier, 1);
  a.setStatus(true, "up");
  assert.equal(pool.tier, 1, "dwell: still on backups");
  assert.equal(pool.pick(undefined, "")!.id, "z", "traffic stays on the backup during the dwell");
  now = 500;
  a.setStatus(false, "flap");
  a.setStatus(true, "up again");
  now = 1_400;
  pool.update();
  assert.equal(pool.tier, 1, "the flap restarted the dwell");
  now = 1_600;
  pool.update();
  assert.equal(pool.tier, 0);
  pool.close();
});

/** A breaker whose state the test sets by hand. */
class FakeBreaker implements BreakerView {
  current: "closed" | "open" | "half_open" = "closed";
  trialTaken = false;
  state() {
    return this.current;
  }
  allowsRequest() {
    return this.current === "closed" || (this.current === "half_open" && !this.trialTaken);
  }
  reason() {
    return this.current === "open" ? "breaker open: 5/5 failed in 10s" : "";
  }
  run<T>(attempt: () => Promise<T>): Promise<T> {
    return attempt();
  }
  admit() {
    return this.allowsRequest() ? {} : undefined;
  }
  settle() {}
  set(state: "closed" | "open" | "half_open", u: Upstream) {
    this.current = state;
    this.trialTaken = false;
    u.changed();
  }
}

test("pool: on backups, a primary's half-open breaker gets its trial but does not switch tiers until it closes", () => {
  const breaker = new FakeBreaker();
  const a = new Upstream({ id: "a", url: "http://127.0.0.1:1001", weight: 1, backup: false }, breaker);
  const backup = up("z", 1, true);
  const pool = new Pool("p", settings, [a, backup]);
  const switches: string[] = [];
  pool.on("failover", (e) => switches.push(`${e.from}->${e.to}`));
  breaker.set("open", a);
  assert.equal(pool.tier, 1);
  breaker.set("half_open", a);
  assert.equal(pool.tier, 1, "half-open is not back yet");
  assert.equal(pool.pick(undefined, "")!.id, "a", "the trial goes to the primary");
  breaker.trialTaken = true;
  assert.equal(pool.pick(undefined, "")!.id, "z", "everything else stays on the backup");
  breaker.set("open", a);
  breaker.set("half_open", a);
  breaker.set("closed", a);
  assert.equal(pool.tier, 0);
  assert.deepEqual(switches, ["0->1", "1->0"], "one switch each way, however many trials");
});

test("pool: with nothing else in service, a half-open primary counts, so its trial can close the breaker", () => {
  const breaker = new FakeBreaker();
  const a = new Upstream({ id: "a", url: "http://127.0.0.1:1001", weight: 1, backup: false }, breaker);
  const backup = up("z", 1, true);
  const pool = new Pool("p", settings, [a, backup]);
  backup.setStatus(false, "down");
  breaker.set("open", a);
  assert.equal(pool.tier, -1);
  breaker.set("half_open", a);
  assert.equal(pool.tier, 0);
  assert.equal(pool.pick(undefined, "")!.id, "a");
});
