// Sticky pools on the real gateway: the cookie holds a client on one upstream over 20 requests, moves it (and is
// re-issued) when that upstream dies, and never pulls traffic onto a backup while a primary serves.
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { get, startGateway } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const SECRET = "sticky-secret-integration-0123";

async function setup(t: TestContext, backup = false) {
  const a = await FakeUpstream.start({ name: "a" });
  const b = await FakeUpstream.start({ name: "b" });
  t.after(() => Promise.all([a.close(), b.close()]));
  const gw = await startGateway(`listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
pools:
  forum:
    sticky: { cookie: gw_forum, secret: ${SECRET}, maxAge: 1h }
    upstreams:
      - { url: ${a.url}, id: a }
      - { url: ${b.url}, id: b${backup ? ", backup: true" : ""} }
routes:
  - { prefix: /, pool: forum }
`);
  t.after(() => gw.stop());
  return { a, b, gw };
}

async function call(url: string, cookie?: string) {
  const res = await get(url, cookie ? { headers: { cookie } } : {});
  const setCookie = res.headers.get("set-cookie");
  return { name: res.json<{ name: string }>().name, setCookie, status: res.status };
}

test("the cookie holds a client on one upstream over 20 requests and moves when that upstream dies", async (t) => {
  const { a, b, gw } = await setup(t);
  const first = await call(`${gw.url}/thread`);
  assert.ok(first.setCookie, "the first answer sets the cookie");
  assert.match(first.setCookie, /^gw_forum=[\w-]{22}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600$/);
  assert.ok(!first.setCookie.includes("127.0.0.1"), "the value is not an address");
  const cookie = first.setCookie.split(";")[0]!;
  const names = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const r = await call(`${gw.url}/thread`, cookie);
    names.add(r.name);
    assert.equal(r.setCookie, null, "a cookie that already names the upstream is not set again");
  }
  assert.deepEqual([...names], [first.name]);
  // Without the cookie, round robin spreads the requests over both.
  const spread = new Set<string>();
  for (let i = 0; i < 4; i++) spread.add((await call(`${gw.url}/thread`)).name);
  assert.equal(spread.size, 2);

  const [dead, alive] = first.name === "a" ? [a, b] : [b, a];
  await dead.kill();
  await gw.gw.runHealthRound();
  const moved = await call(`${gw.url}/thread`, cookie);
  assert.equal(moved.status, 200);
  assert.equal(moved.name, alive.name);
  assert.ok(moved.setCookie, "re-issued for the upstream that answered");
  const recookie = moved.setCookie.split(";")[0]!;
  assert.notEqual(recookie, cookie);
  for (let i = 0; i < 5; i++) assert.equal((await call(`${gw.url}/thread`, recookie)).name, alive.name);
});

test("a cookie naming a backup is not honoured while a primary serves", async (t) => {
  const { a, b, gw } = await setup(t, true);
  // Only the backup serves: the client is pinned to it.
  await a.kill();
  await gw.gw.runHealthRound();
  const onBackup = await call(`${gw.url}/x`);
  assert.equal(onBackup.name, "b");
  const cookie = onBackup.setCookie!.split(";")[0]!;
  // The primary is back: its tier takes the traffic, whatever the cookie says, and the cookie is re-issued.
  await a.revive();
  await gw.gw.runHealthRound();
  const back = await call(`${gw.url}/x`, cookie);
  assert.equal(back.name, "a");
  assert.ok(back.setCookie);
  assert.ok(b.hits >= 1);
});
