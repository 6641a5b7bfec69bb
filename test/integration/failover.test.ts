// Failover end to end: a primary dying under load costs nothing, backups take over and hand back, 503 when all
// are down, and a primary dead at boot never sees a request.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { FakeUpstream } from "../helpers/upstream.ts";
import { get, poolConfig, startGateway } from "../helpers/gateway.ts";

interface LoadResult {
  ok: number;
  failed: string[];
  byName: Map<string, number>;
}

/** Runs `loops` concurrent keep-alive GET loops until `stop` resolves; counts answers by upstream name. */
async function load(
  url: string,
  loops: number,
  stop: Promise<void>,
  log: string[] = [],
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: loops });
  const result: LoadResult = { ok: 0, failed: [], byName: new Map() };
  let running = true;
  void stop.then(() => (running = false));
  const one = () =>
    new Promise<void>((resolve) => {
      http
        .get(`${url}/load`, { agent }, (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => {
            if (res.statusCode === 200) {
              const name = (JSON.parse(body) as { name: string }).name;
              result.ok++;
              result.byName.set(name, (result.byName.get(name) ?? 0) + 1);
              log.push(name);
            } else result.failed.push(`${res.statusCode} ${body}`);
            resolve();
          });
        })
        .on("error", (e) => {
          result.failed.push(e.message);
          resolve();
        });
    });
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (running) await one();
    }),
  );
  agent.destroy();
  return result;
}

test("a primary killed under steady load costs no request; the backup takes over and hands back", async (t) => {
  const primary = await FakeUpstream.start({ name: "primary" });
  const backup = await FakeUpstream.start({ name: "backup" });
  const g = await startGateway(
    poolConfig(
      [
        { url: primary.url, weight: 1 },
        { url: backup.url, backup: true },
      ],
      "  failbackDelay: 300ms",
    ),
  );
  t.after(async () => {
    await g.stop();
    await Promise.all([primary.close(), backup.close()]);
  });
  let stopLoad!: () => void;
  const stopped = new Promise<void>((r) => (stopLoad = r));
  const order: string[] = [];
  const running = load(g.url, 8, stopped, order);

  await waitUntil(() => primary.hits >= 200);
  await primary.kill();
  const killedAt = order.length;
  // No health round here: requests in flight are retried on the backup, and the first refused connection takes
  // the primary out at once, so the whole switch happens between two health checks.
  const toBackup = await g.logs.waitFor("failover", (l) => l.to === "backup");
  assert.match(String(toBackup.reason), /connection refused \(ECONNREFUSED\) on a proxied request/);
  assert.equal(g.gw.runtime.pools.get("app")!.pool.tier, 1);
  await waitUntil(() => backup.hits >= 300);

  await primary.revive();
  await g.gw.runHealthRound();
  await g.logs.waitFor("failover", (l) => l.to === "primary");
  const backAt = order.length;
  await waitUntil(() => order.length >= backAt + 200);
  stopLoad();
  const r = await running;

  assert.deepEqual(r.failed, [], "no request failed");
  assert.ok(r.ok > 700, `only ${r.ok} requests`);
  assert.ok(
    order.slice(killedAt + 50, backAt).every((n) => n === "backup"),
    "all on the backup while down",
  );
  assert.ok(
    order.slice(backAt + 50).every((n) => n === "primary"),
    "all back on the primary",
  );
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /gateway_failovers_total\{pool="app",to="backup"\} 1/);
  assert.match(metrics, /gateway_failovers_total\{pool="app",to="primary"\} 1/);
  assert.match(metrics, /gateway_pool_active_tier\{pool="app"\} 0/);
});

test("all upstreams down: 503 no_upstream with Retry-After, and /readyz says which routes", async (t) => {
  const a = await FakeUpstream.start({ health: [503] });
  const b = await FakeUpstream.start({ health: [503] });
  const g = await startGateway(poolConfig([{ url: a.url }, { url: b.url, backup: true }]));
  t.after(async () => {
    await g.stop();
    await Promise.all([a.close(), b.close()]);
  });
  const r = await get(`${g.url}/x`);
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "10");
  assert.deepEqual(Object.keys(r.json()).sort(), ["error", "message", "requestId"]);
  assert.equal(r.json().error, "no_upstream");
  const ready = await get(`${g.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.deepEqual(ready.json().routesWithoutUpstream, ["/"]);
  assert.equal(a.hits + b.hits, 0);
});

test("a primary dead at boot gets no request once /readyz is 200", async (t) => {
  const dead = await FakeUpstream.start({ name: "dead", health: [500] });
  const alive = await FakeUpstream.start({ name: "alive" });
  const backup = await FakeUpstream.start({ name: "backup" });
  const g = await startGateway(
    poolConfig([{ url: dead.url, weight: 5 }, { url: alive.url }, { url: backup.url, backup: true }]),
  );
  t.after(async () => {
    await g.stop();
    await Promise.all([dead.close(), alive.close(), backup.close()]);
  });
  assert.equal((await get(`${g.url}/readyz`)).status, 200);
  for (let i = 0; i < 30; i++) assert.equal((await get(`${g.url}/x`)).json().name, "alive");
  assert.equal(dead.hits, 0);
  assert.equal(backup.hits, 0);
  const status = (await get(`${g.url}/admin/status`)).json<{
    pools: {
      activeTier: number;
      upstreams: { id: string; health: string; reason: string; fails: number }[];
    }[];
  }>();
  const d = status.pools[0]!.upstreams[0]!;
  assert.equal(d.health, "unhealthy");
  assert.equal(d.reason, "1 failed check: status 500");
  assert.equal(status.pools[0]!.activeTier, 0);
});

test("scripted health: hysteresis needs consecutive results before a switch", async (t) => {
  const p = await FakeUpstream.start({
    name: "p",
    health: [200, 500, 500, 200, 500, 500, 500, 200, 200, 200],
  });
  const b = await FakeUpstream.start({ name: "b" });
  const g = await startGateway(
    poolConfig([{ url: p.url }, { url: b.url, backup: true }]).replace(
      "healthyThreshold: 1, unhealthyThreshold: 1",
      "healthyThreshold: 2, unhealthyThreshold: 3",
    ),
  );
  t.after(async () => {
    await g.stop();
    await Promise.all([p.close(), b.close()]);
  });
  const tiers: number[] = [];
  for (let i = 0; i < 9; i++) {
    await g.gw.runHealthRound();
    tiers.push(g.gw.runtime.pools.get("app")!.pool.tier);
  }
  // Checks: (boot 200) 500 500 200 500 500 500 200 200 200
  assert.deepEqual(tiers, [0, 0, 0, 0, 0, 1, 1, 0, 0]);
  assert.equal(g.logs.events("health_change").filter((l) => l.upstream === `127.0.0.1:${p.port}`).length, 3);
});

async function waitUntil(cond: () => boolean): Promise<void> {
  // Load loops drive the condition; yield to the event loop between checks instead of sleeping a fixed time.
  const deadline = Date.now() + 15_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met within 15 s");
    await new Promise((r) => setImmediate(r));
  }
}
