// Rate limits without sockets: the RateLimit header syntax, keys (IPv6 by /64, fallbacks), the bounded key space,
// and the budget of one window.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  RateLimit,
  addressKey,
  ipv6Prefix64,
  policyItem,
  rateLimitKeyOf,
  retryAfter,
  stateItem,
  storedKeys,
} from "../../src/policy/rate-limit.ts";
import type { RateLimitConfig } from "../../src/config/types.ts";
import { createLogger } from "../../src/log/log.ts";
import { Writable } from "node:stream";

const quiet = createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });
const cfg = (over: Partial<RateLimitConfig> = {}): RateLimitConfig => ({
  points: 5,
  window: 1000,
  burst: 0,
  key: { kind: "ip" },
  store: "memory",
  maxKeys: 100_000,
  ...over,
});

test("RateLimit-Policy and RateLimit items in the draft-08+ syntax", () => {
  assert.equal(policyItem("panel-api", 100, 1), '"panel-api";q=100;w=1');
  assert.equal(stateItem("panel-api", 42, 17_200), '"panel-api";r=42;t=18');
  assert.equal(stateItem("x", -3, -5), '"x";r=0;t=0');
});

test("Retry-After is whole seconds, at least 1", () => {
  assert.equal(retryAfter(0), "1");
  assert.equal(retryAfter(1), "1");
  assert.equal(retryAfter(1000), "1");
  assert.equal(retryAfter(1001), "2");
  assert.equal(retryAfter(59_500), "60");
});

test("IPv6 addresses are keyed by their /64", () => {
  assert.equal(ipv6Prefix64("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(ipv6Prefix64("2001:db8:1:2::7"), "2001:db8:1:2::/64");
  assert.equal(ipv6Prefix64("2001:0db8::1"), "2001:db8:0:0::/64");
  assert.equal(ipv6Prefix64("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("2001:db8:1:2:aaaa::1"), addressKey("2001:db8:1:2:bbbb::9"));
  assert.notEqual(addressKey("2001:db8:1:2::1"), addressKey("2001:db8:1:3::1"));
  assert.equal(addressKey("203.0.113.7"), "203.0.113.7");
});

test("keys: ip; subject and header:NAME, each falling back to ip when absent", () => {
  const h = { "x-tenant": "acme" };
  assert.equal(rateLimitKeyOf({ kind: "ip" }, "1.2.3.4", "alice", h), "a:1.2.3.4");
  assert.equal(rateLimitKeyOf({ kind: "subject" }, "1.2.3.4", "alice", h), "s:alice");
  assert.equal(rateLimitKeyOf({ kind: "subject" }, "1.2.3.4", undefined, h), "a:1.2.3.4");
  assert.equal(rateLimitKeyOf({ kind: "header", name: "x-tenant" }, "1.2.3.4", undefined, h), "h:acme");
  assert.equal(rateLimitKeyOf({ kind: "header", name: "x-other" }, "1.2.3.4", undefined, h), "a:1.2.3.4");
  const long = rateLimitKeyOf({ kind: "header", name: "x-tenant" }, "", undefined, {
    "x-tenant": "x".repeat(5000),
  });
  assert.ok(long.length < 64);
});

test("a window passes its points, then rejects with the time until it resets", async () => {
  const rl = new RateLimit("p", cfg(), { log: quiet });
  const results = [];
  for (let i = 0; i < 7; i++) results.push(await rl.consume("k"));
  assert.deepEqual(
    results.map((r) => r.allowed),
    [true, true, true, true, true, false, false],
  );
  assert.equal(results[4]!.remaining, 0);
  assert.equal(results[0]!.remaining, 4);
  assert.ok(results[6]!.resetMs > 0 && results[6]!.resetMs <= 1000);
  // Another key has its own budget.
  assert.equal((await rl.consume("other")).allowed, true);
});

test("burst adds requests on top of the window's", async () => {
  const rl = new RateLimit("p", cfg({ points: 2, burst: 3 }), { log: quiet });
  let passed = 0;
  for (let i = 0; i < 10; i++) if ((await rl.consume("k")).allowed) passed++;
  assert.equal(passed, 5);
});

test("a spray of distinct keys cannot grow the store past maxKeys, and overflowed keys are still limited", async () => {
  const rl = new RateLimit("p", cfg({ points: 1, window: 3_600_000, maxKeys: 1000 }), { log: quiet });
  for (let i = 0; i < 20_000; i++) await rl.consume(`spray-${i}`);
  const held = storedKeys(rl.memory!);
  assert.ok(held <= 1000 + 1024, `held ${held}`);
  // Keys that came in while full share overflow counters: a burst of new keys is refused, not waved through.
  let passed = 0;
  for (let i = 0; i < 5000; i++) if ((await rl.consume(`late-${i}`)).allowed) passed++;
  assert.ok(passed <= 1024, `passed ${passed}`);
  // A key held before the store filled keeps its own counter.
  assert.equal((await rl.consume("spray-1")).allowed, false);
});

test("a memory limit decides at once (no promise), exactly as the library's consume does", async () => {
  for (const over of [{}, { points: 3, burst: 2 }, { points: 2, maxKeys: 5 }]) {
    const now = new RateLimit("p", cfg(over), { log: quiet });
    const viaLibrary = new RateLimit("p", cfg(over), { log: quiet });
    for (let i = 0; i < 60; i++) {
      // A few keys again and again, then new ones: windows spent, burst used, the store full.
      const key = i < 30 ? `k${i % 3}` : `n${i}`;
      const a = now.consumeNow(key);
      assert.ok(a !== undefined, "a memory store decides synchronously");
      const b = await viaLibrary.consume(key);
      assert.equal(a.allowed, b.allowed, `${JSON.stringify(over)} #${i} allowed`);
      assert.equal(a.remaining, b.remaining, `${JSON.stringify(over)} #${i} remaining`);
      assert.ok(Math.abs(a.resetMs - b.resetMs) <= 50, `${JSON.stringify(over)} #${i} resetMs`);
    }
    assert.equal(storedKeys(now.memory!), storedKeys(viaLibrary.memory!));
  }
});

test("consumeNow and consume count against the same budget", async () => {
  const rl = new RateLimit("p", cfg({ points: 4 }), { log: quiet });
  assert.equal(rl.consumeNow("k")?.remaining, 3);
  assert.equal((await rl.consume("k")).remaining, 2);
  assert.equal(rl.consumeNow("k")?.remaining, 1);
  assert.equal((await rl.consume("k")).remaining, 0);
  assert.equal(rl.consumeNow("k")?.allowed, false);
  assert.equal(rl.stateItem(rl.consumeNow("k")!), `"p";r=0;t=1`);
});

test("a redis limit has no synchronous decision: it must ask its store", () => {
  const rl = new RateLimit("p", cfg({ store: "redis" }), { log: quiet, redis: {} });
  assert.equal(rl.consumeNow("k"), undefined);
});
