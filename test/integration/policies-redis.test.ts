// Rate limits on a real redis-server: two gateways share one limit, and a gateway whose Redis died falls back to
// its own memory limit (never to no limit). Also the registry API's own policies (CORS and a rate limit).
import assert from "node:assert/strict";
import { after, before, test, type TestContext } from "node:test";
import { get, startGateway } from "../helpers/gateway.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop());

async function gateways(t: TestContext, count: number, prefix: string) {
  const up = await FakeUpstream.start();
  t.after(() => up.close());
  const yaml = `listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
redis: { url: "${redis.url}", keyPrefix: ${prefix} }
policies:
  shared:
    rateLimit: { rate: 7/m, store: redis }
pools:
  app: { upstreams: [{ url: ${up.url} }] }
routes:
  - { prefix: /, pool: app, policies: [shared] }
`;
  const gws = [];
  for (let i = 0; i < count; i++) {
    const gw = await startGateway(yaml);
    t.after(() => gw.stop());
    gws.push(gw);
  }
  return { up, gws };
}

test("two gateways on one Redis share one limit: the sum of successes stays within it", async (t) => {
  const { up, gws } = await gateways(t, 2, "share");
  let passed = 0;
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await get(`${gws[i % 2]!.url}/x`);
    statuses.push(res.status);
    if (res.status === 200) passed++;
    else assert.equal(res.status, 429);
  }
  assert.equal(passed, 7, statuses.join(","));
  assert.equal(up.hits, 7);
  // Both gateways refused some: the budget is one, not one each.
  assert.ok(statuses.slice(7).every((s) => s === 429));
});

test("while Redis is down each gateway falls back to its memory limit (logged once), never to no limit", async (t) => {
  const { gws } = await gateways(t, 1, "down");
  const gw = gws[0]!;
  assert.equal((await get(`${gw.url}/x`)).status, 200);
  await redis.kill();
  t.after(() => redis.restart());
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) statuses.push((await get(`${gw.url}/x`)).status);
  assert.deepEqual(statuses, [...Array<number>(7).fill(200), ...Array<number>(5).fill(429)]);
  assert.equal(gw.logs.events("rate_limit_store_down").length, 1);
});

test("the registry API takes cors and rateLimit policies: preflight answered, 429 with RateLimit headers", async (t) => {
  const gw = await startGateway(`listen: 127.0.0.1:0
shutdownGrace: 2s
policies:
  registry-api:
    cors: { origins: [https://ops.example.com] }
    rateLimit: { rate: 3/m }
registry:
  policies: [registry-api]
  types: { web: 20000-20010 }
pools:
  app: { upstreams: [{ url: "http://127.0.0.1:9" }] }
routes:
  - { prefix: /, pool: app }
`);
  t.after(() => gw.stop());
  const pre = await fetch(`${gw.url}/registry/stats`, {
    method: "OPTIONS",
    headers: { origin: "https://ops.example.com", "access-control-request-method": "GET" },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://ops.example.com");
  const statuses: number[] = [];
  let last: Awaited<ReturnType<typeof get>> | undefined;
  for (let i = 0; i < 4; i++) {
    last = await get(`${gw.url}/registry/stats`, { headers: { origin: "https://ops.example.com" } });
    statuses.push(last.status);
    assert.equal(last.headers.get("access-control-allow-origin"), "https://ops.example.com");
    assert.equal(last.headers.get("ratelimit-policy"), '"registry-api";q=3;w=60');
  }
  assert.deepEqual(statuses, [200, 200, 200, 429]);
  assert.equal(last!.json<{ error: string }>().error, "rate_limited");
  assert.ok(Number(last!.headers.get("retry-after")) >= 1);
});
