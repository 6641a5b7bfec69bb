// The redis registry store against a real redis-server (one per file, on a unix socket, killed in t.after): two
// gateway processes allocating at once, propagation between gateways, Redis killed, restarted empty and
// SCRIPT FLUSHed, and a reap racing heartbeats.
import { test, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { spawnCli, type CliProcess } from "../helpers/processes.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

interface Allocation {
  allocation_id: string;
  port: number;
  host: string;
  status: string;
}

let redis: TestRedis;
const ready = startRedis().then((r) => (redis = r));
after(() => redis?.stop());

let prefixes = 0;
function config(options: { ttl?: string; deregisterAfter?: string; types: string; prefix?: string }): string {
  return `listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
redis: { url: "${redis.url}", keyPrefix: ${options.prefix ?? `t${++prefixes}`} }
registry:
  store: redis
  ttl: ${options.ttl ?? "15s"}
  deregisterAfter: ${options.deregisterAfter ?? "1m"}
  types:
${options.types}
pools:
  svc:
    discover: { type: web }
routes:
  - { prefix: /svc/, pool: svc }
`;
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function startBoth(t: TestContext, yaml: string): Promise<[TestGateway, TestGateway]> {
  await ready;
  const a = await startGateway(yaml);
  t.after(() => a.stop());
  const b = await startGateway(yaml);
  t.after(() => b.stop());
  return [a, b];
}

async function gatewayProcess(t: TestContext, yaml: string): Promise<{ proc: CliProcess; url: string }> {
  const dir = await mkdtemp(join(tmpdir(), "gw-redis-proc-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "gateway.yaml");
  await writeFile(file, yaml);
  const proc = spawnCli(["start", "-c", file]);
  t.after(async () => {
    if (proc.child.exitCode === null) proc.child.kill("SIGTERM");
    await proc.exited;
  });
  const started = await Promise.race([
    proc.logs.waitFor("gateway_started"),
    proc.exited.then(() => {
      throw new Error(`gateway exited: ${proc.stderr()}`);
    }),
  ]);
  await proc.logs.waitFor("ready");
  return { proc, url: `http://${String(started.listen)}` };
}

void test("two gateway processes: 300 concurrent allocations on a 250-port range give 250 unique ports and 50 range_exhausted", async (t) => {
  await ready;
  const yaml = config({ types: "    web: 20000-20249" });
  const [a, b] = await Promise.all([gatewayProcess(t, yaml), gatewayProcess(t, yaml)]);
  // claim: no bind probe, so only the registry decides (and every health check of these stays on loopback).
  const results = await Promise.all(
    Array.from({ length: 300 }, (_, i) =>
      call(i % 2 ? a.url : b.url, "POST", "/registry/allocations", {
        service_name: `w${i}`,
        service_type: "web",
        host: "127.0.0.1",
        claim: true,
      }),
    ),
  );
  const ok = results.filter((r) => r.status === 201).map((r) => (r.body.allocation as Allocation).port);
  const exhausted = results.filter((r) => r.status === 409 && r.body.error === "range_exhausted");
  const others = results.filter((r) => r.status !== 201 && r.body.error !== "range_exhausted");
  assert.deepEqual(
    others.slice(0, 3),
    [],
    JSON.stringify(
      [...a.proc.logs.events("registry_write_failed"), ...b.proc.logs.events("registry_write_failed")].slice(
        0,
        3,
      ),
    ),
  );
  assert.equal(ok.length, 250);
  assert.equal(new Set(ok).size, 250, "no port handed out twice");
  assert.ok(ok.every((p) => p >= 20000 && p <= 20249));
  assert.equal(exhausted.length, 50);
  // Each gateway's directory holds all of them within a second.
  for (const g of [a, b]) {
    const deadline = Date.now() + 1_000;
    for (;;) {
      const n = ((await call(g.url, "GET", "/registry/allocations")).body.allocations as unknown[]).length;
      if (n === 250) break;
      assert.ok(Date.now() < deadline, `directory of ${g.url} holds ${n} of 250 after 1 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});

void test("an allocation made through one gateway is routed by the other within 1 s", async (t) => {
  await ready;
  const [a, b] = await startBoth(t, config({ types: "    web: 1-2" }));
  const svc = await FakeUpstream.start({ name: "svc" });
  t.after(() => svc.close());
  assert.equal((await get(`${b.url}/svc/x`)).status, 503);
  const started = Date.now();
  const r = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
    service_name: "web-x",
    service_type: "web",
    preferred_port: svc.port,
    claim: true,
  });
  assert.equal(r.status, 201);
  for (;;) {
    const res = await get(`${b.url}/svc/x`);
    if (res.status === 200) break;
    assert.ok(Date.now() - started < 1_000, "gateway B did not route to it within 1 s");
    await new Promise((res) => setImmediate(res));
  }
  assert.ok(Date.now() - started < 1_000);
  // A release through B reaches A too.
  const id = (r.body.allocation as Allocation).allocation_id;
  assert.equal((await call(b.gw.adminUrl, "DELETE", `/registry/allocations/${id}`)).status, 200);
  const deadline = Date.now() + 1_000;
  while (a.gw.registry!.list({}).length > 0) {
    assert.ok(Date.now() < deadline, "A did not see the release within 1 s");
    await new Promise((res) => setTimeout(res, 10));
  }
  assert.equal((await get(`${a.url}/svc/x`)).status, 503);
});

void test("a resync that reads the store while newer events arrive keeps them, and the next event is no gap", async (t) => {
  await ready;
  const [a, b] = await startBoth(t, config({ types: "    web: 23000-23099" }));
  const allocate = async (name: string) => {
    const r = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
      service_name: name,
      service_type: "web",
      host: "127.0.0.1",
      claim: true,
    });
    assert.equal(r.status, 201);
    return r.body.allocation as Allocation;
  };
  await allocate("before");
  // B's store re-reads with MULTI (GET rev, HGETALL). Its answer is held back until an allocation made after the
  // read has reached B's subscriber: the order a burst produces, where an event overtakes the snapshot's answer.
  const store = b.gw.registry!.store as unknown as {
    client: { multi(): { exec(): Promise<unknown> } };
    sub: { ping(): Promise<unknown> };
  };
  const multi = store.client.multi.bind(store.client);
  let reads = 0;
  let overtake: (() => Promise<void>) | undefined;
  store.client.multi = () => {
    reads++;
    const m = multi();
    const exec = m.exec.bind(m);
    m.exec = async () => {
      const res = await exec();
      const run = overtake;
      overtake = undefined;
      await run?.();
      return res;
    };
    return m;
  };
  let during: Allocation | undefined;
  overtake = async () => {
    during = await allocate("during");
    // A PING on the subscriber answers after the event it carries.
    await store.sub.ping();
  };
  await b.gw.registry!.syncNow();
  assert.ok(during);
  const names = () => new Set(b.gw.registry!.list({}).map((v) => v.service_name));
  assert.deepEqual(names(), new Set(["before", "during"]), "the event that overtook the read was kept");
  const readsAfterSync = reads;
  await allocate("after");
  const deadline = Date.now() + 1_000;
  while (!names().has("after")) {
    assert.ok(Date.now() < deadline, "B did not see the next allocation within 1 s");
    await new Promise((res) => setTimeout(res, 5));
  }
  assert.equal(reads, readsAfterSync, "the next event was applied as the next rev, not taken for a gap");
});

void test("Redis killed: writes answer 503, nothing expires, pools keep routing; restarted empty, the gateways write back and recover", async (t) => {
  await ready;
  const [a, b] = await startBoth(
    t,
    config({ ttl: "2s", deregisterAfter: "1s", types: "    web: 21000-21009" }),
  );
  const svc = await FakeUpstream.start({ name: "svc" });
  t.after(() => svc.close());
  const claimed = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
    service_name: "web-k",
    service_type: "web",
    preferred_port: svc.port,
    claim: true,
  });
  const other = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
    service_name: "web-l",
    service_type: "web",
    host: "127.0.0.1",
    claim: true,
  });
  const id = (claimed.body.allocation as Allocation).allocation_id;
  const otherPort = (other.body.allocation as Allocation).port;
  await b.gw.registry!.syncNow();
  await Promise.all([a.gw.runHealthRound(), b.gw.runHealthRound()]);
  assert.equal((await get(`${b.url}/svc/x`)).status, 200);

  await redis.kill();
  await Promise.all([a.logs.waitFor("registry_store_down"), b.logs.waitFor("registry_store_down")]);
  const refused = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
    service_name: "web-m",
    service_type: "web",
  });
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error, "store_unavailable");
  assert.equal((await call(b.gw.adminUrl, "POST", `/registry/allocations/${id}/heartbeat`)).status, 503);
  // Past ttl + deregisterAfter with no heartbeat possible: nothing expires, the pools still route.
  const until = Date.parse((claimed.body.allocation as { expires_at: string }).expires_at) + 1_200;
  while (Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  for (const g of [a, b]) {
    assert.equal((await get(`${g.url}/svc/x`)).status, 200, "the pool still routes");
    const listed = (await call(g.gw.adminUrl, "GET", "/registry/allocations")).body
      .allocations as Allocation[];
    assert.deepEqual(listed.map((x) => x.status).sort(), ["active", "active"], "reads keep the last state");
    assert.equal(g.logs.events("registry_expire").length, 0);
  }
  const metrics = await (await fetch(`${a.url}/metrics`)).text();
  assert.match(metrics, /gateway_registry_store_up 0/);

  // Back, empty (no persistence): the gateways write back what they knew, with no restart.
  await redis.restart();
  await Promise.all([a.logs.waitFor("registry_store_up"), b.logs.waitFor("registry_store_up")]);
  await a.gw.registry!.syncNow();
  assert.equal(await redis.cmd("HLEN", `${a.gw.config.redis.keyPrefix}:{reg}:alloc`), ":2\r\n");
  // The written-back ports stay taken for new allocations, and the lease can be renewed again.
  assert.equal((await call(b.gw.adminUrl, "POST", `/registry/allocations/${id}/heartbeat`)).status, 200);
  const again = await call(b.gw.adminUrl, "POST", "/registry/allocations", {
    service_name: "web-n",
    service_type: "web",
    host: "127.0.0.1",
    claim: true,
  });
  assert.equal(again.status, 201);
  assert.notEqual((again.body.allocation as Allocation).port, otherPort);
  assert.match(await (await fetch(`${a.url}/metrics`)).text(), /gateway_registry_store_up 1/);

  // SCRIPT FLUSH drops the cached scripts: the next calls load them again.
  assert.equal(await redis.cmd("SCRIPT", "FLUSH"), "+OK\r\n");
  assert.equal((await call(a.gw.adminUrl, "POST", `/registry/allocations/${id}/heartbeat`)).status, 200);
  const afterFlush = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
    service_name: "web-o",
    service_type: "web",
    host: "127.0.0.1",
    claim: true,
  });
  assert.equal(afterFlush.status, 201);
  assert.equal((await get(`${b.url}/svc/x`)).status, 200);
});

void test("a reap racing heartbeats: a heartbeat answered 200 always leaves a live allocation, a 404 a removed one", async (t) => {
  await ready;
  const [a, b] = await startBoth(
    t,
    config({ ttl: "100ms", deregisterAfter: "0s", types: "    web: 22000-22009" }),
  );
  const prefix = a.gw.config.redis.keyPrefix;
  for (let round = 0; round < 15; round++) {
    const r = await call(a.gw.adminUrl, "POST", "/registry/allocations", {
      service_name: `race${round}`,
      service_type: "web",
      host: "127.0.0.1",
      claim: true,
    });
    assert.equal(r.status, 201);
    const { allocation_id: id } = r.body.allocation as Allocation;
    // Let the lease run out (removal is due at once: deregisterAfter 0), then race.
    await new Promise((res) => setTimeout(res, 110 + (round % 5) * 5));
    const [hb] = await Promise.all([
      call(a.gw.adminUrl, "POST", `/registry/allocations/${id}/heartbeat`),
      b.gw.registry!.reapNow(),
    ]);
    const stored = await redis.cmd("HGET", `${prefix}:{reg}:alloc`, id);
    if (hb.status === 200) {
      assert.notEqual(stored, "$-1\r\n", `round ${round}: heartbeat 200 but the allocation is gone`);
      assert.match(stored, /"status":"active"/);
    } else {
      assert.equal(hb.status, 404);
      assert.equal(stored, "$-1\r\n", `round ${round}: heartbeat 404 but the allocation is stored`);
    }
    await call(a.gw.adminUrl, "DELETE", `/registry/allocations/${id}`);
  }
  // Whatever won each race, the port index and the bitmap were cleared together: nothing leaked.
  const deadline = Date.now() + 2_000;
  while ((await redis.cmd("HLEN", `${prefix}:{reg}:alloc`)) !== ":0\r\n") {
    assert.ok(Date.now() < deadline, "allocations left behind");
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.equal(await redis.cmd("HLEN", `${prefix}:{reg}:port:127.0.0.1`), ":0\r\n");
  assert.equal(await redis.cmd("BITCOUNT", `${prefix}:{reg}:bm:127.0.0.1:22000-22009`), ":0\r\n");
});
