// The admin API: status, drain and enable, auth, readiness, and graceful shutdown with a request in flight.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { authorize } from "../../src/server/admin.ts";
import { FakeUpstream } from "../helpers/upstream.ts";
import { get, poolConfig, request, startGateway } from "../helpers/gateway.ts";

test("drain sends new requests to the others while in-flight ones finish; enable brings it back", async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const a = await FakeUpstream.start({
    name: "a",
    handler: (req, res) => {
      if (req.url === "/slow") void held.then(() => res.end(JSON.stringify({ name: "a" })));
      else res.end(JSON.stringify({ name: "a" }));
    },
  });
  const backup = await FakeUpstream.start({ name: "backup" });
  const g = await startGateway(poolConfig([{ url: a.url }, { url: backup.url, backup: true }]));
  t.after(async () => {
    await g.stop();
    await Promise.all([a.close(), backup.close()]);
  });
  const id = `127.0.0.1:${a.port}`;
  const slow = get(`${g.url}/slow`);
  while (a.hits === 0) await new Promise((r) => setImmediate(r));

  const drained = await request(`${g.url}/admin/pools/app/upstreams/${id}/drain`, { method: "POST" });
  assert.equal(drained.status, 200);
  assert.equal((await get(`${g.url}/x`)).json().name, "backup");
  const status = (await get(`${g.url}/admin/status`)).json<{
    pools: { activeTier: number; upstreams: { drained: boolean; inFlight: number; reason: string }[] }[];
  }>();
  assert.equal(status.pools[0]!.activeTier, 1);
  assert.equal(status.pools[0]!.upstreams[0]!.drained, true);
  assert.equal(status.pools[0]!.upstreams[0]!.inFlight, 1, "the slow request is still in flight");
  assert.equal(status.pools[0]!.upstreams[0]!.reason, "drained by operator");
  release();
  assert.equal((await slow).json().name, "a", "in-flight request finished");

  assert.equal(
    (await request(`${g.url}/admin/pools/app/upstreams/${id}/enable`, { method: "POST" })).status,
    200,
  );
  assert.equal((await get(`${g.url}/x`)).json().name, "a");
  assert.equal(
    (await request(`${g.url}/admin/pools/app/upstreams/nope/drain`, { method: "POST" })).status,
    404,
  );
  assert.equal(
    (await request(`${g.url}/admin/pools/nope/upstreams/${id}/drain`, { method: "POST" })).status,
    404,
  );
});

test("with an API key, admin endpoints need it (Bearer or X-API-Key) and answer 401 JSON without it", async (t) => {
  const u = await FakeUpstream.start();
  const g = await startGateway(
    poolConfig([{ url: u.url }], "").replace(
      "listen: 127.0.0.1:0",
      'listen: 127.0.0.1:0\nadmin: { apiKey: "${KEY}" }',
    ),
    {
      env: { KEY: "s3cret" },
    },
  );
  t.after(async () => {
    await g.stop();
    await u.close();
  });
  const none = await get(`${g.url}/admin/status`);
  assert.equal(none.status, 401);
  assert.equal(none.json().error, "unauthorized");
  assert.equal(
    (await get(`${g.url}/admin/status`, { headers: { authorization: "Bearer wrong" } })).status,
    401,
  );
  assert.equal(
    (await get(`${g.url}/admin/status`, { headers: { authorization: "Bearer s3cret" } })).status,
    200,
  );
  assert.equal((await get(`${g.url}/admin/status`, { headers: { "x-api-key": "s3cret" } })).status, 200);
  assert.equal((await request(`${g.url}/admin/reload`, { method: "POST" })).status, 401);
  assert.equal((await get(`${g.url}/healthz`)).status, 200, "/healthz needs no key");
  assert.equal((await get(`${g.url}/metrics`)).status, 200, "/metrics needs no key");
});

test("without an API key, admin answers loopback clients and refuses others with 403", () => {
  // A non-loopback client cannot be made on this machine's loopback-only network, so the decision is tested alone.
  assert.equal(authorize("127.0.0.1", undefined, {}), "ok");
  assert.equal(authorize("::1", undefined, {}), "ok");
  assert.equal(authorize("::ffff:127.0.0.1", undefined, {}), "ok");
  assert.equal(authorize("203.0.113.7", undefined, {}), "forbidden");
  assert.equal(authorize("::ffff:203.0.113.7", undefined, {}), "forbidden");
  assert.equal(authorize("203.0.113.7", "k", { "x-api-key": "k" }), "ok");
  assert.equal(authorize("127.0.0.1", "k", {}), "unauthorized", "with a key, loopback needs it too");
});

test("/readyz is 503 until the first health round is done, then 200", async (t) => {
  let answer!: () => void;
  const gate = new Promise<void>((r) => (answer = r));
  // An upstream whose /health holds its answer until the test releases it.
  const server = http.createServer((req, res) => {
    if (req.url === "/health") void gate.then(() => res.end("ok"));
    else res.end("{}");
  });
  t.after(() => server.close());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const g = await startGateway(poolConfig([{ url }]), { waitReady: false });
  t.after(() => g.stop());
  const before = await get(`${g.url}/readyz`);
  assert.equal(before.status, 503);
  assert.equal(before.json().reason, "first health-check round not done");
  assert.equal((await get(`${g.url}/healthz`)).status, 200, "/healthz answers while not ready");
  answer();
  await g.logs.waitFor("ready");
  assert.equal((await get(`${g.url}/readyz`)).status, 200);
});

test("graceful shutdown: a request in flight finishes, new connections are refused, stop resolves", async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const u = await FakeUpstream.start({
    handler: (_req, res) => void held.then(() => res.end('{"done":true}')),
  });
  const g = await startGateway(poolConfig([{ url: u.url }]));
  t.after(async () => {
    await u.close();
  });
  const inFlight = get(`${g.url}/work`);
  while (u.hits === 0) await new Promise((r) => setImmediate(r));
  const stopping = g.stop();
  await g.logs.waitFor("shutdown_started");
  await assert.rejects(fetch(`${g.url}/x`), "new connections are refused");
  release();
  const r = await inFlight;
  assert.equal(r.status, 200);
  assert.equal(r.json().done, true);
  await stopping;
  const done = await g.logs.waitFor("shutdown_complete");
  assert.equal(done.clean, true);
});
