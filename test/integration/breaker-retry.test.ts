// Breakers and retries end to end: 5xx opens, 4xx never does, half-open recovery, what may be retried, the budget.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { FakeUpstream } from "../helpers/upstream.ts";
import { get, poolConfig, request, startGateway } from "../helpers/gateway.ts";

const breakerYaml = (extra: string) => `  retries: 0
  breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeout: 1s, failureStatuses: [500, 502, 503, 504] }
${extra}`;

test("a breaker opens on an upstream answering 500 while its /health says 200, and closes after it recovers", async (t) => {
  const sick = await FakeUpstream.start({ name: "sick", statuses: [500] });
  const fine = await FakeUpstream.start({ name: "fine" });
  const g = await startGateway(poolConfig([{ url: sick.url }, { url: fine.url }], breakerYaml("")));
  t.after(async () => {
    await g.stop();
    await Promise.all([sick.close(), fine.close()]);
  });
  for (let i = 0; i < 8; i++) await get(`${g.url}/x`);
  const opened = await g.logs.waitFor("breaker_change", (l) => l.to === "open");
  assert.equal(opened.upstream, `127.0.0.1:${sick.port}`);
  assert.match(String(opened.reason), /^breaker open: \d+\/\d+ failed in 10s$/);
  const before = sick.hits;
  for (let i = 0; i < 10; i++) assert.equal((await get(`${g.url}/x`)).json().name, "fine");
  assert.equal(sick.hits, before, "no traffic while open");
  const status = (await get(`${g.url}/admin/status`)).json<{
    pools: { upstreams: { breaker: string; reason: string }[] }[];
  }>();
  assert.equal(status.pools[0]!.upstreams[0]!.breaker, "open");
  assert.match(status.pools[0]!.upstreams[0]!.reason, /breaker open/);
  assert.match(
    await (await fetch(`${g.url}/metrics`)).text(),
    /gateway_upstream_breaker_state\{pool="app",upstream="127.0.0.1:\d+",state="open"\} 1/,
  );

  sick.setStatuses([200]);
  await g.logs.waitFor("breaker_change", (l) => l.to === "half_open");
  for (let i = 0; i < 4; i++) await get(`${g.url}/x`);
  await g.logs.waitFor("breaker_change", (l) => l.to === "closed");
  assert.ok(sick.hits > before, "traffic returned");
});

test("4xx answers never open the breaker", async (t) => {
  const notFound = await FakeUpstream.start({ statuses: [404] });
  const g = await startGateway(poolConfig([{ url: notFound.url }], breakerYaml("")));
  t.after(async () => {
    await g.stop();
    await notFound.close();
  });
  for (let i = 0; i < 30; i++) assert.equal((await get(`${g.url}/x`)).status, 404);
  assert.equal(g.logs.events("breaker_change").length, 0);
  assert.equal(notFound.hits, 30);
});

/** An upstream that reads the whole request, then resets the connection without answering. */
async function resetter(): Promise<{ url: string; bodies: string[]; close(): void }> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === "/health") return void res.end("ok");
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      bodies.push(`${req.method} ${body}`);
      req.socket.destroy();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, bodies, close: () => server.close() };
}

test("a POST is retried elsewhere only when nothing of it was sent; a GET also after a reset", async (t) => {
  const reset = await resetter();
  const dead = await FakeUpstream.start({ name: "dead" });
  const backup = await FakeUpstream.start({ name: "backup" });
  // Pool 1: the primary resets after reading. Pool 2: the primary refuses connections.
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { healthCheck: { interval: 60s }, retries: 2 }
pools:
  resets: { upstreams: [{ url: "${reset.url}" }, { url: "${backup.url}", backup: true }] }
  refuses: { upstreams: [{ url: "${dead.url}" }, { url: "${backup.url}", backup: true }] }
routes:
  - { prefix: /resets, pool: resets }
  - { prefix: /refuses, pool: refuses }
`);
  t.after(async () => {
    await g.stop();
    reset.close();
    await backup.close();
  });
  await dead.kill();

  const post = await request(`${g.url}/refuses/order`, { method: "POST", body: "one" });
  assert.equal(post.status, 200, "refused connection: nothing sent, so the POST moves on");
  assert.equal(backup.received.at(-1)!.body, "one");

  const sentPost = await request(`${g.url}/resets/order`, { method: "POST", body: "two" });
  assert.equal(sentPost.status, 502, "reset after sending: a POST must not run twice");
  assert.equal((JSON.parse(sentPost.body) as { error: string }).error, "bad_gateway");
  assert.deepEqual(reset.bodies, ["POST two"]);
  assert.notEqual(backup.received.at(-1)!.body, "two");

  const put = await request(`${g.url}/resets/item`, { method: "PUT", body: "three" });
  assert.equal(put.status, 200, "PUT is idempotent and its small body was kept");
  assert.equal(backup.received.at(-1)!.body, "three");

  const getR = await request(`${g.url}/resets/item`);
  assert.equal(getR.status, 200);
  const line = await g.logs.waitFor("request", (l) => l.method === "GET" && l.path === "/resets/item");
  assert.equal(line.attempts, 2);
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /gateway_retries_total\{pool="resets"\} 2/);
  assert.match(metrics, /gateway_retries_total\{pool="refuses"\} 1/);
});

test("the retry budget caps retries against a dead pool", async (t) => {
  // Five upstreams that hold each request 150 ms, then reset: every request fails everywhere.
  const slowResets = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const server = http.createServer((req, res) => {
        if (req.url === "/health") return void res.end("ok");
        req.resume();
        setTimeout(() => req.socket.destroy(), 150);
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      return server;
    }),
  );
  const urls = slowResets.map((s) => ({ url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` }));
  const g = await startGateway(
    poolConfig(urls, "  retries: 4\n  retryBudget: { percent: 20, minConcurrent: 3 }"),
  );
  t.after(async () => {
    await g.stop();
    for (const s of slowResets) s.close();
  });
  const N = 20;
  const answers = await Promise.all(Array.from({ length: N }, () => request(`${g.url}/x`)));
  assert.ok(answers.every((a) => a.status === 502));
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  const retries = Number(/gateway_retries_total\{pool="app"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  // 20 requests in the window allow 20% = 4 retries, and past that only while fewer than 3 are in flight, each
  // request at most 4 times. Without a budget: 80.
  assert.ok(retries > 0 && retries <= 16, `retries: ${retries}`);
  const spent = answers.filter((a) => a.body.includes("retry budget spent")).length;
  assert.ok(spent >= N - 4, `${spent} answers said the budget was spent`);
});
