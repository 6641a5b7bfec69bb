// The registry on the memory and file stores, through real gateways and real services: the API's answers,
// discovery into pools (warm-up, drain on release and on expiry), reload, and the file store across a restart.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type http from "node:http";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";
import { freePort } from "../helpers/processes.ts";

interface Allocation {
  allocation_id: string;
  service_name: string;
  service_type: string;
  host: string;
  port: number;
  url: string;
  status: string;
  health: string;
  pools: string[];
  weight: number;
  ttl_ms: number;
  expires_at: string;
  last_heartbeat: string;
  pid: number | null;
  metadata: Record<string, string>;
}

function registryConfig(registry: string, pools = "", route = "/svc/"): string {
  return `listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
registry:
${registry}
pools:
  svc:
    discover: { type: web }
${pools}
routes:
  - { prefix: ${route}, pool: svc }
`;
}

async function call(
  g: TestGateway,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(g.gw.adminUrl + path, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function allocate(g: TestGateway, body: Record<string, unknown>): Promise<Allocation> {
  const r = await call(g, "POST", "/registry/allocations", body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.allocation as Allocation;
}

async function start(t: TestContext, yaml: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const g = await startGateway(yaml, { env });
  t.after(() => g.stop());
  return g;
}

void test("the allocation API: shapes, validation naming the field, preferred and required, heartbeat, release", async (t) => {
  const base = await freePort();
  const g = await start(
    t,
    registryConfig(`  ttl: 5s
  reserved: [${base + 1}]
  types:
    web: { range: ${base}-${base + 2}, fallback: spare }
    spare: ${base + 10}-${base + 11}`),
  );
  const a = await allocate(g, {
    service_name: "web-1",
    service_type: "web",
    metadata: { team: "x" },
    pid: 42,
  });
  assert.equal(a.port, base);
  assert.equal(a.host, "127.0.0.1");
  assert.equal(a.url, `http://127.0.0.1:${base}`);
  assert.equal(a.status, "active");
  assert.deepEqual(a.pools, ["svc"]);
  assert.equal(a.ttl_ms, 5000);
  assert.equal(a.pid, 42);
  assert.deepEqual(a.metadata, { team: "x" });
  assert.match(a.allocation_id, /^[A-Za-z0-9_-]{16,}$/);
  assert.deepEqual(Object.keys(a).sort(), [
    "allocated_at",
    "allocation_id",
    "expires_at",
    "health",
    "host",
    "last_heartbeat",
    "metadata",
    "pid",
    "pools",
    "port",
    "service_name",
    "service_type",
    "status",
    "ttl_ms",
    "url",
    "weight",
  ]);
  // The reserved port is skipped; then the range is full and the fallback's range serves, keeping the type.
  const b = await allocate(g, { service_name: "web-2", service_type: "web" });
  assert.equal(b.port, base + 2);
  const c = await allocate(g, { service_name: "web-3", service_type: "web" });
  assert.equal(c.port, base + 10);
  assert.equal(c.service_type, "web");
  // Preferred: honoured when free (even outside the range); a taken one falls back, or is a 409 when required.
  const d = await allocate(g, { service_name: "web-4", service_type: "spare", preferred_port: base + 20 });
  assert.equal(d.port, base + 20);
  const e = await allocate(g, { service_name: "web-5", service_type: "spare", preferred_port: base });
  assert.equal(e.port, base + 11);
  const taken = await call(g, "POST", "/registry/allocations", {
    service_name: "web-6",
    service_type: "web",
    preferred_port: base,
    required: true,
  });
  assert.equal(taken.status, 409);
  assert.equal(taken.body.error, "port_unavailable");
  const full = await call(g, "POST", "/registry/allocations", {
    service_name: "web-7",
    service_type: "spare",
  });
  assert.equal(full.status, 409);
  assert.equal(full.body.error, "range_exhausted");

  for (const [body, field] of [
    [{ service_name: "web", service_type: "web", colour: 1 }, /^colour: unknown field/],
    [{ service_name: "Web!", service_type: "web" }, /^service_name: /],
    [{ service_type: "web" }, /^service_name: is required/],
    [{ service_name: "web", service_type: "web", preferred_port: "80" }, /^preferred_port: /],
    [{ service_name: "web", service_type: "nope" }, /^service_type: unknown type/],
    [{ service_name: "web", service_type: "web", metadata: { a: 1 } }, /^metadata\.a: /],
  ] as const) {
    const r = await call(g, "POST", "/registry/allocations", body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error, "bad_request");
    assert.match(String(r.body.message), field);
  }

  const hb = await call(g, "POST", `/registry/allocations/${a.allocation_id}/heartbeat`);
  assert.equal(hb.status, 200);
  assert.equal((hb.body.allocation as Allocation).ttl_ms, 5000);
  assert.ok((hb.body.allocation as Allocation).last_heartbeat >= a.last_heartbeat);

  const listed = await call(g, "GET", `/registry/allocations?type=web&port=${base}`);
  assert.deepEqual(
    (listed.body.allocations as Allocation[]).map((x) => x.service_name),
    ["web-1"],
  );
  const svc = await call(g, "GET", "/registry/services/web-2");
  assert.equal(svc.body.service_name, "web-2");
  assert.equal((svc.body.instances as Allocation[]).length, 1);
  assert.equal((await call(g, "GET", "/registry/services/none")).status, 404);
  const dir = await call(g, "GET", "/registry/services");
  assert.deepEqual(Object.keys(dir.body.services as object).sort(), [
    "web-1",
    "web-2",
    "web-3",
    "web-4",
    "web-5",
  ]);

  const types = (await call(g, "GET", "/registry/types")).body.types as Record<
    string,
    Record<string, unknown>
  >;
  assert.deepEqual(types.web, {
    range: `${base}-${base + 2}`,
    fallback: "spare",
    capacity: 2,
    allocated: 2,
    free: 0,
  });
  const stats = (await call(g, "GET", "/registry/stats")).body;
  assert.equal(stats.total, 5);
  assert.equal(stats.active, 5);
  assert.deepEqual((stats.by_type as Record<string, unknown>).web, {
    active: 3,
    expired: 0,
    capacity: 2,
    utilization: 1.5,
  });

  const del = await call(g, "DELETE", `/registry/allocations/${b.allocation_id}`);
  assert.equal(del.status, 200);
  assert.equal((del.body.allocation as Allocation).status, "released");
  assert.equal((await call(g, "DELETE", `/registry/allocations/${b.allocation_id}`)).status, 404);
  assert.equal((await call(g, "POST", `/registry/allocations/${b.allocation_id}/heartbeat`)).status, 404);
  // The released port is free again.
  assert.equal((await allocate(g, { service_name: "web-8", service_type: "web" })).port, base + 2);

  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /gateway_registry_operations_total\{op="allocate",result="ok"\} 6/);
  assert.match(metrics, /gateway_registry_operations_total\{op="allocate",result="error"\} 8/);
  assert.match(metrics, /gateway_registry_allocations\{type="web",status="active"\} 3/);
  assert.match(metrics, /gateway_registry_capacity\{type="web"\} 2/);
  assert.match(metrics, /gateway_registry_store_up 1/);
  assert.ok(g.logs.events("registry_allocate").length >= 6);
  assert.equal(g.logs.events("registry_release").length, 1);
});

void test("registry keys: the registry key and the admin key both work, nothing else does", async (t) => {
  const base = await freePort();
  const g = await start(
    t,
    registryConfig(`  apiKey: reg-secret
  types:
    web: ${base}-${base + 5}`).replace("registry:", "admin: { apiKey: admin-secret }\nregistry:"),
  );
  const body = { service_name: "k", service_type: "web" };
  const none = await call(g, "POST", "/registry/allocations", body);
  assert.equal(none.status, 401);
  assert.equal(none.body.error, "unauthorized");
  assert.equal((await call(g, "GET", "/registry/stats", undefined, { "x-api-key": "wrong" })).status, 401);
  assert.equal(
    (await call(g, "POST", "/registry/allocations", body, { authorization: "Bearer reg-secret" })).status,
    201,
  );
  assert.equal(
    (await call(g, "GET", "/registry/stats", undefined, { "x-api-key": "admin-secret" })).status,
    200,
  );
  // The registry key is not an admin key.
  assert.equal((await get(`${g.url}/admin/status`, { headers: { "x-api-key": "reg-secret" } })).status, 401);
  assert.ok(!g.logs.lines.some((l) => JSON.stringify(l).includes("reg-secret")));
});

/** A service whose non-health answers wait until released, to hold a request in flight. */
async function slowService(
  t: TestContext,
): Promise<{ svc: FakeUpstream; release: () => void; arrived: Promise<void> }> {
  let arrivedResolve!: () => void;
  const arrived = new Promise<void>((r) => (arrivedResolve = r));
  const held: http.ServerResponse[] = [];
  const release = () => {
    for (const res of held.splice(0)) res.writeHead(200).end("slow done");
  };
  const svc = await FakeUpstream.start({
    name: "slow",
    handler: (req, res) => {
      if (req.url?.includes("slow")) {
        held.push(res);
        arrivedResolve();
        return;
      }
      res.writeHead(200).end("fast");
    },
  });
  t.after(() => {
    release();
    return svc.close();
  });
  return { svc, release: () => release(), arrived };
}

void test("a burst of concurrent allocations: distinct ports, each a pool member by the time it is answered, and releases leave at once", async (t) => {
  const g = await start(
    t,
    registryConfig(`  types:
    web: 20000-20199`),
  );
  const members = () =>
    new Set(
      g.gw.runtime.pools
        .get("svc")!
        .entries.filter((e) => e.discovered)
        .map((e) => e.upstream.id),
    );
  const joinedWhenAnswered: boolean[] = [];
  // claim: the bind probe is skipped, so the ports are the registry's choice alone; health checks stay on loopback.
  const allocations = await Promise.all(
    Array.from({ length: 150 }, (_, i) =>
      allocate(g, { service_name: `w${i}`, service_type: "web", host: "127.0.0.1", claim: true }).then(
        (a) => {
          joinedWhenAnswered.push(members().has(`w${i}@127.0.0.1:${a.port}`));
          return a;
        },
      ),
    ),
  );
  assert.equal(new Set(allocations.map((a) => a.port)).size, 150, "no port handed out twice");
  assert.ok(allocations.every((a) => a.port >= 20000 && a.port <= 20199));
  assert.ok(
    joinedWhenAnswered.every(Boolean),
    `${joinedWhenAnswered.filter((x) => !x).length} answered before joining the pool`,
  );
  assert.equal(members().size, 150);

  const gone = allocations.filter((_, i) => i % 2 === 0);
  const leftWhenAnswered = await Promise.all(
    gone.map(async (a) => {
      const r = await call(g, "DELETE", `/registry/allocations/${a.allocation_id}`);
      assert.equal(r.status, 200);
      return !members().has(`${a.service_name}@127.0.0.1:${a.port}`);
    }),
  );
  assert.ok(
    leftWhenAnswered.every(Boolean),
    "a released member was still in the pool when the release answered",
  );
  const kept = allocations.filter((_, i) => i % 2 === 1);
  assert.deepEqual(members(), new Set(kept.map((a) => `${a.service_name}@127.0.0.1:${a.port}`)));
  assert.equal(((await call(g, "GET", "/registry/allocations")).body.allocations as unknown[]).length, 75);
});

void test("an allocation no pool discovers is checked by the registry within its first interval, and the directory shows it", async (t) => {
  const svc = await FakeUpstream.start({ name: "lone" });
  t.after(() => svc.close());
  const g = await start(
    t,
    registryConfig(`  types:
    web: 1-2
    lone: 3-4`).replace("interval: 60s", "interval: 200ms"),
  );
  const a = await allocate(g, {
    service_name: "lone-1",
    service_type: "lone",
    preferred_port: svc.port,
    claim: true,
  });
  assert.deepEqual(a.pools, []);
  assert.equal(a.health, "unknown", "not probed at once");
  const deadline = Date.now() + 2_000;
  for (;;) {
    const listed = (await call(g, "GET", "/registry/allocations?name=lone-1")).body
      .allocations as Allocation[];
    if (listed[0]!.health === "healthy") break;
    assert.ok(Date.now() < deadline, `still ${listed[0]!.health} after 2 s (interval 200 ms)`);
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(svc.healthChecks >= 1);
});

void test("a registered service gets traffic only after its first passing check, and release drains it", async (t) => {
  const g = await start(
    t,
    registryConfig(`  types:
    web: 1-2`),
  );
  const { svc, release, arrived } = await slowService(t);
  svc.setHealth([503]);
  // The service claims the port it already listens on (the bind probe is skipped).
  const a = await allocate(g, {
    service_name: "web-a",
    service_type: "web",
    preferred_port: svc.port,
    required: true,
    claim: true,
  });
  assert.equal(a.port, svc.port);
  const before = await get(`${g.url}/svc/x`);
  assert.equal(before.status, 503, "no traffic before a passing check");
  assert.equal(before.json<{ error: string }>().error, "no_upstream");
  // The pool has only discovered members: readiness does not wait for them.
  assert.equal((await get(`${g.url}/readyz`)).status, 200);
  await g.gw.runHealthRound();
  assert.equal((await get(`${g.url}/svc/x`)).status, 503, "a failing check keeps it out");
  svc.setHealth([200]);
  await g.gw.runHealthRound();
  const ok = await get(`${g.url}/svc/x`);
  assert.equal(ok.status, 200);
  assert.equal(ok.text, "fast");

  const status = (await get(`${g.url}/admin/status`)).json<{
    pools: { name: string; upstreams: { id: string; discovered: boolean; health: string }[] }[];
  }>();
  const member = status.pools.find((p) => p.name === "svc")!.upstreams[0]!;
  assert.equal(member.id, `web-a@127.0.0.1:${svc.port}`);
  assert.equal(member.discovered, true);
  const listed = (await call(g, "GET", "/registry/allocations")).body.allocations as Allocation[];
  assert.equal(listed[0]!.health, "healthy", "the directory shows the pool member's health");

  const slow = get(`${g.url}/svc/slow`);
  await arrived;
  assert.equal((await call(g, "DELETE", `/registry/allocations/${a.allocation_id}`)).status, 200);
  assert.equal((await get(`${g.url}/svc/x`)).status, 503, "no new request after release");
  release();
  const done = await slow;
  assert.equal(done.status, 200, "the request in flight completes");
  assert.equal(done.text, "slow done");
  assert.equal(svc.received.filter((r) => r.url === "/svc/x").length, 1);
});

void test("a lease that expires drains its member; a heartbeat before removal revives it", async (t) => {
  const g = await start(
    t,
    registryConfig(`  ttl: 1s
  deregisterAfter: 30s
  types:
    web: 1-2`),
  );
  const { svc, release, arrived } = await slowService(t);
  const a = await allocate(g, {
    service_name: "web-e",
    service_type: "web",
    preferred_port: svc.port,
    claim: true,
  });
  await g.gw.runHealthRound();
  assert.equal((await get(`${g.url}/svc/x`)).status, 200);
  const slow = get(`${g.url}/svc/slow`);
  await arrived;
  // No heartbeat: the reaper (every ttl/3) expires it.
  const expired = await g.logs.waitFor("registry_expire", (l) => l.id === a.allocation_id);
  assert.equal(expired.port, svc.port);
  assert.equal((await get(`${g.url}/svc/x`)).status, 503);
  const listed = (await call(g, "GET", "/registry/allocations")).body.allocations as Allocation[];
  assert.equal(listed[0]!.status, "expired", "an expired allocation stays listed and keeps its port");
  release();
  assert.equal((await slow).status, 200);
  // Revive: the member joins again, and warms up again.
  const hb = await call(g, "POST", `/registry/allocations/${a.allocation_id}/heartbeat`);
  assert.equal((hb.body.allocation as Allocation).status, "active");
  await g.gw.runHealthRound();
  assert.equal((await get(`${g.url}/svc/x`)).status, 200);
  // Cleanup removes expired allocations at once.
  await g.logs.waitFor("registry_expire", (l) => l.id === a.allocation_id && l !== expired);
  const cleaned = await call(g, "POST", "/registry/cleanup");
  assert.deepEqual(cleaned.body, { removed: 1 });
  assert.equal((await call(g, "POST", `/registry/allocations/${a.allocation_id}/heartbeat`)).status, 404);
  const removed = await g.logs.waitFor("registry_remove");
  assert.equal(removed.reason, "cleanup");
});

void test("a reload keeps allocations and members; the file store survives a restart", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "gw-registry-file-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "registry.json");
  const base = await freePort();
  const yaml = registryConfig(`  store: file
  file: ${file}
  types:
    web: ${base}-${base + 3}`);
  const svc = await FakeUpstream.start();
  t.after(() => svc.close());
  const g1 = await startGateway(yaml);
  const a = await allocate(g1, {
    service_name: "web-f",
    service_type: "web",
    preferred_port: svc.port,
    claim: true,
  });
  const b = await allocate(g1, { service_name: "web-g", service_type: "web" });
  await g1.gw.runHealthRound();
  assert.equal((await get(`${g1.url}/svc/x`)).status, 200);

  // A reload that changes the pool's settings keeps the allocations and the healthy member.
  await g1.writeConfig(yaml.replace("timeouts: { connect: 1s", "timeouts: { connect: 2s"));
  const reload = await call(g1, "POST", "/admin/reload");
  assert.equal(reload.status, 200, JSON.stringify(reload.body));
  assert.equal((await get(`${g1.url}/svc/x`)).status, 200, "the member kept its health across the reload");
  assert.equal(((await call(g1, "GET", "/registry/allocations")).body.allocations as Allocation[]).length, 2);
  await g1.stop();

  const g2 = await start(t, yaml);
  const after = (await call(g2, "GET", "/registry/allocations")).body.allocations as Allocation[];
  assert.deepEqual(
    after.map((x) => [x.allocation_id, x.port, x.status]).sort(),
    [
      [a.allocation_id, svc.port, "active"],
      [b.allocation_id, b.port, "active"],
    ].sort(),
  );
  assert.equal((await call(g2, "POST", `/registry/allocations/${a.allocation_id}/heartbeat`)).status, 200);
  await g2.gw.runHealthRound();
  assert.equal((await get(`${g2.url}/svc/x`)).status, 200, "the restored allocation joined its pool again");
  // Its port stays taken.
  const c = await allocate(g2, { service_name: "web-h", service_type: "web" });
  assert.notEqual(c.port, b.port);
});

void test("registry.policies: a CORS preflight needs no key, a rate limit answers 429, both with their headers", async (t) => {
  const g = await start(
    t,
    registryConfig(`  apiKey: reg-key
  policies: [registry-api]
  types:
    web: 1-2`).replace(
      "registry:",
      `policies:
  registry-api:
    cors: { origins: [https://panel.example], methods: [GET, POST, DELETE], headers: [Content-Type, X-API-Key] }
    rateLimit: { rate: 1/m }
registry:`,
    ),
  );
  const preflight = await fetch(`${g.url}/registry/allocations`, {
    method: "OPTIONS",
    headers: { origin: "https://panel.example", "access-control-request-method": "POST" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://panel.example");
  const first = await fetch(`${g.url}/registry/stats`, {
    headers: { origin: "https://panel.example", "x-api-key": "reg-key" },
  });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("access-control-allow-origin"), "https://panel.example");
  assert.ok(first.headers.get("ratelimit"));
  const second = await fetch(`${g.url}/registry/stats`, {
    headers: { origin: "https://panel.example", "x-api-key": "reg-key" },
  });
  assert.equal(second.status, 429);
  assert.equal(((await second.json()) as { error: string }).error, "rate_limited");
  assert.ok(Number(second.headers.get("retry-after")) >= 1);
  assert.equal(second.headers.get("access-control-allow-origin"), "https://panel.example");
});

void test("a redis store unreachable at boot: the gateway starts, writes answer 503, and the URL's password is never logged", async (t) => {
  const g = await start(
    t,
    registryConfig(`  store: redis
  types:
    web: 1-2`).replace("registry:", `redis: { url: "redis://:hunter2@127.0.0.1:1/0" }\nregistry:`),
  );
  await g.logs.waitFor("registry_store_down");
  const r = await call(g, "POST", "/registry/allocations", { service_name: "w", service_type: "web" });
  assert.equal(r.status, 503);
  assert.equal(r.body.error, "store_unavailable");
  assert.equal(
    (await call(g, "GET", "/registry/allocations")).status,
    200,
    "reads answer from the last state",
  );
  assert.match(await (await fetch(`${g.url}/metrics`)).text(), /gateway_registry_store_up 0/);
  assert.equal((await get(`${g.url}/readyz`)).status, 200);
  assert.ok(!g.logs.lines.some((l) => JSON.stringify(l).includes("hunter2")));
});

void test("an event-loop stall longer than the ttl: the reap waits for the heartbeats queued meanwhile, and says so", async (t) => {
  const g = await start(
    t,
    registryConfig(`  ttl: 600ms
  deregisterAfter: 30s
  types:
    web: 1-2`),
  );
  const a = await allocate(g, { service_name: "stall", service_type: "web", claim: true });
  // Another process heartbeats every 100 ms, also while this one is stalled.
  const url = `${g.url}/registry/allocations/${a.allocation_id}/heartbeat`;
  const child = spawn(
    process.execPath,
    ["-e", `setInterval(() => fetch(process.argv[1], { method: "POST" }).catch(() => {}), 100)`, url],
    { stdio: "ignore" },
  );
  t.after(() => child.kill("SIGKILL"));
  // Wait until its heartbeats arrive (the lease may have run out while the child started: they revive it).
  for (;;) {
    const listed = (await call(g, "GET", "/registry/allocations")).body.allocations as Allocation[];
    if (listed[0]!.last_heartbeat !== a.last_heartbeat && listed[0]!.status === "active") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const expiredBefore = g.logs.events("registry_expire").length;
  // Stall longer than the ttl: when the loop runs again, the reap timer fires before the sockets are read.
  const until = Date.now() + 900;
  while (Date.now() < until) {
    // busy: a GC pause, a blocking call
  }
  const held = await g.logs.waitFor("registry_reap_held");
  assert.ok(Number(held.stallMs) > 200);
  await g.logs.waitFor("registry_reap_resumed");
  assert.equal(
    g.logs.events("registry_expire").length,
    expiredBefore,
    "the queued heartbeats kept the lease",
  );
  const listed = (await call(g, "GET", "/registry/allocations")).body.allocations as Allocation[];
  assert.equal(listed[0]!.status, "active");
});
