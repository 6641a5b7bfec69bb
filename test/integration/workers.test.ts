// workers: 2 — one primary and two serving workers as real processes: traffic, one metrics view, health and drain
// broadcast to every worker, a killed worker replaced, and SIGTERM draining everything.
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadConfigText } from "../../src/config/load.ts";
import { appConfig, request, type LogLine } from "../helpers/gateway.ts";
import { childrenOf, freePort, spawnCli, waitGone, type CliProcess } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

let a: FakeUpstream;
let b: FakeUpstream;
let gw: CliProcess;
let base: string;
let admin: string;
let releaseSlow: () => void = () => undefined;
let slowArrived: () => void = () => undefined;

const time = (l: LogLine) => Date.parse(String(l.time));

/** The current pid of each worker slot, from the log. */
function workerPids(): Map<number, number> {
  const pids = new Map<number, number>();
  for (const l of gw.logs.events("worker_ready")) pids.set(Number(l.worker), Number(l.pid));
  return pids;
}

/** Parses the Prometheus text into `name{labels}` → value. */
async function metrics(): Promise<Map<string, number>> {
  const res = await request(`${admin}/metrics`);
  const out = new Map<string, number>();
  for (const line of res.body.split("\n")) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

function sum(m: Map<string, number>, prefix: string): number {
  let total = 0;
  for (const [k, v] of m) if (k.startsWith(prefix)) total += v;
  return total;
}

/** Waits until every serving worker logged that it applied the primary's next broadcast after `since`. */
async function broadcastApplied(since: number): Promise<{ seq: number; lagMs: number[] }> {
  const cast = await gw.logs.waitFor("cluster_broadcast", (l) => time(l) >= since);
  const seq = Number(cast.seq);
  const lagMs: number[] = [];
  for (const worker of workerPids().keys()) {
    const applied = await gw.logs.waitFor(
      "cluster_state",
      (l) => l.worker === worker && Number(l.seq) >= seq,
    );
    lagMs.push(time(applied) - time(cast));
  }
  return { seq, lagMs };
}

/**
 * GETs over `connections` keep-alive connections until `n` were sent (or `until` says stop); resolves with the
 * statuses (0 for a failed request).
 */
async function load(n: number, connections: number, path = "/load", until = () => false): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < n && !until()) {
        next++;
        statuses.push(
          // A connection the primary accepted and never handed to a live worker is a lost request, not a hang.
          await request(`${base}${path}`, { agent, timeoutMs: 10_000 }).then(
            (r) => r.status,
            () => 0,
          ),
        );
      }
    }),
  );
  agent.destroy();
  return statuses;
}

/** Access lines reach the primary's log after their responses: waits until `n` lines for `path` are there. */
async function accessLines(path: string, n: number): Promise<LogLine[]> {
  const lines = () => gw.logs.events("request").filter((l) => l.path === path);
  await gw.logs.waitFor("request", () => lines().length >= n);
  return lines();
}

before(async () => {
  a = await FakeUpstream.start({ name: "a" });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  releaseSlow = release;
  b = await FakeUpstream.start({
    name: "b",
    handler: (req, res) => {
      if (req.url !== "/slow") return void res.end('{"name":"b"}');
      slowArrived();
      void held.then(() => res.end('{"name":"b","slow":true}'));
    },
  });
  const dir = await mkdtemp(join(tmpdir(), "gateway-workers-"));
  const config = join(dir, "gateway.yaml");
  // With cluster the primary hands a concrete port to its workers: a free one, found just before.
  const port = await freePort();
  const adminPort = await freePort();
  const yaml = appConfig(
    `      - { url: ${a.url} }\n      - { url: ${b.url} }`,
    `workers: 2\nadmin: { listen: ${adminPort} }`,
  )
    .replace("listen: 127.0.0.1:0", `listen: 127.0.0.1:${port}`)
    // Checks every 500 ms: a revived upstream comes back by itself (a spawned gateway has no runHealthRound).
    .replace("interval: 60s", "interval: 500ms");
  await writeFile(config, yaml);
  gw = spawnCli(["start", "-c", config]);
  base = `http://127.0.0.1:${port}`;
  admin = `http://127.0.0.1:${adminPort}`;
  await gw.logs.waitFor("worker_ready", (l) => l.worker === 1);
  await gw.logs.waitFor("worker_ready", (l) => l.worker === 2);
});

after(async () => {
  releaseSlow();
  gw.child.kill("SIGKILL");
  await a.close();
  await b.close();
});

test("gateway check: workers above 1 need admin.listen", () => {
  const yaml = appConfig("      - { url: http://127.0.0.1:9 }", "workers: 2");
  assert.throws(() => loadConfigText(yaml, "gw.yaml", {}), /workers: workers above 1 needs admin\.listen/);
  assert.equal(loadConfigText(yaml.replace("workers: 2", "workers: 1"), "gw.yaml", {}).workers, 1);
  const auto = loadConfigText(
    yaml.replace("workers: 2", "workers: auto\nadmin: { listen: 0 }"),
    "gw.yaml",
    {},
  );
  assert.ok(auto.workers >= 1);
});

test("200 requests over 8 connections all succeed; counters are summed over workers, health is not", async () => {
  const before = await metrics();
  const statuses = await load(200, 8);
  assert.equal(statuses.filter((s) => s === 200).length, 200, `statuses: ${statuses.join(",")}`);
  const served = new Set((await accessLines("/load", 200)).map((l) => l.worker));
  assert.deepEqual([...served].sort(), [1, 2], "both workers served");

  const m = await metrics();
  const key = 'gateway_requests_total{route="/",method="GET",code="200"}';
  assert.equal((m.get(key) ?? 0) - (before.get(key) ?? 0), 200, "requests summed over both workers");
  const attempts = sum(m, "gateway_upstream_requests_total") - sum(before, "gateway_upstream_requests_total");
  assert.equal(attempts, 200);
  assert.equal(m.get("gateway_workers"), 2);
  for (const u of [a, b]) {
    assert.equal(m.get(`gateway_upstream_up{pool="app",upstream="127.0.0.1:${u.port}"}`), 1, "1, not 2");
    assert.equal(
      m.get(`gateway_upstream_breaker_state{pool="app",upstream="127.0.0.1:${u.port}",state="closed"}`),
      1,
    );
  }
  assert.equal(m.get('gateway_pool_active_tier{pool="app"}'), 0);
  assert.equal(m.get("gateway_inflight_requests"), 0);

  const status = JSON.parse((await request(`${admin}/admin/status`)).body) as {
    workers: { worker: number; serving: boolean; pools: { breakers: unknown[] }[] }[];
  };
  assert.equal(status.workers.length, 2);
  for (const w of status.workers) {
    assert.equal(w.serving, true);
    assert.equal(w.pools[0]!.breakers.length, 2, "each worker's breakers are listed");
  }
});

test("a drain and a health change reach every worker before their next request", async () => {
  const since = Date.now();
  const drained = await request(`${admin}/admin/pools/app/upstreams/127.0.0.1:${a.port}/drain`, {
    method: "POST",
  });
  assert.equal(drained.status, 200);
  const drain = await broadcastApplied(since);
  const hitsA = a.hits;
  assert.ok((await load(40, 4, "/after-drain")).every((s) => s === 200));
  assert.equal(a.hits, hitsA, "no worker sent anything to the drained upstream");
  // The broadcast is logged before the answer to the enable: the time is taken before asking.
  const enabledSince = Date.now();
  await request(`${admin}/admin/pools/app/upstreams/127.0.0.1:${a.port}/enable`, { method: "POST" });
  await broadcastApplied(enabledSince);

  // b refuses connections: the worker that meets it tells the primary, which marks it down for every worker.
  await b.kill();
  const killedAt = Date.now();
  const isB = (l: LogLine) => l.upstream === `127.0.0.1:${b.port}` && l.to === "unhealthy";
  // Requests until one meets the refusal (retried on a, so none fails).
  for (let i = 0; i < 50 && !gw.logs.events("health_change").some(isB); i++) {
    assert.ok((await load(4, 2, "/find-b-dead")).every((st) => st === 200));
  }
  const change = await gw.logs.waitFor("health_change", isB);
  assert.equal(change.to, "unhealthy");
  const health = await broadcastApplied(Math.min(killedAt, time(change)));
  assert.ok((await load(40, 4, "/after-down")).every((s) => s === 200));
  const after = await accessLines("/after-down", 40);
  assert.equal(after.length, 40);
  assert.ok(
    after.every((l) => l.attempts === 1 && l.upstream === `127.0.0.1:${a.port}`),
    "no worker tried the dead upstream again",
  );
  const lag = [...drain.lagMs, ...health.lagMs];
  // The contract's bound is 100 ms; IPC takes a few. A loaded CI machine gets slack, the figure is reported.
  assert.ok(
    lag.every((ms) => ms < 1_000),
    `propagation ${lag.join(", ")} ms`,
  );
  process.stdout.write(`# broadcast to applied in every worker: ${lag.join(", ")} ms\n`);
  await b.revive();
  await gw.logs.waitFor(
    "health_change",
    (l) => l.upstream === `127.0.0.1:${b.port}` && time(l) > killedAt && l.to === "healthy",
  );
});

test("SIGKILL of one worker under load loses at most its requests in flight; it is re-forked after 1 s", async () => {
  const victim = workerPids().get(1)!;
  const connections = 8;
  let exited = false;
  // Load until the primary has seen the exit (and a little after): what fails is what was in flight on the victim.
  const running = load(5_000, connections, "/kill-load", () => exited);
  await gw.logs.waitFor("request", (l) => l.path === "/kill-load" && l.worker === 1);
  process.kill(victim, "SIGKILL");
  const exit = await gw.logs.waitFor("worker_exit", (l) => l.pid === victim);
  await load(50, connections, "/after-kill").then((st) =>
    assert.ok(
      st.every((x) => x === 200),
      "the other serves",
    ),
  );
  exited = true;
  assert.equal(exit.signal, "SIGKILL");
  assert.equal(exit.worker, 1);
  const statuses = await running;
  const failed = statuses.filter((s) => s !== 200).length;
  assert.ok(failed <= connections, `${failed} failed, more than the ${connections} connections in flight`);
  const restart = await gw.logs.waitFor("worker_restart", (l) => l.worker === 1);
  assert.equal(restart.delayMs, 1_000, "the first restart waits 1 s");
  const back = await gw.logs.waitFor("worker_ready", (l) => l.worker === 1 && l.pid !== victim);
  const downMs = time(back) - time(exit);
  process.stdout.write(`# worker back after ${downMs} ms; ${failed} of ${statuses.length} requests failed\n`);
  // 1 s of backoff plus a worker's start: about 2 s in all under tsx on a quiet 2-core machine (CI measured
  // 2,060 ms), against the 5 s the issue asks for. A heavily loaded machine can take longer.
  assert.ok(downMs < 5_000, `worker back after ${downMs} ms, not within 5 s`);
  assert.ok((await load(40, 4, "/after-restart")).every((s) => s === 200));
});

test("SIGTERM with a request in flight: it completes, every process exits, exit 0", async () => {
  const primary = gw.child.pid!;
  const workers = childrenOf(primary);
  assert.ok(workers.length >= 2, `workers running: ${workers.join(", ")}`);
  const arrived = new Promise<void>((r) => (slowArrived = r));
  // Only b answers /slow slowly; drain a so the request surely lands there.
  const drainSince = Date.now();
  await request(`${admin}/admin/pools/app/upstreams/127.0.0.1:${a.port}/drain`, { method: "POST" });
  await broadcastApplied(drainSince);
  const inFlight = request(`${base}/slow`);
  await Promise.race([
    arrived,
    inFlight.then((r) => assert.fail(`answered before it reached the upstream: ${r.status} ${r.body}`)),
  ]);
  // The workers report their in-flight counts once a second: the primary's status shows the request on b.
  const inFlightOnB = async () => {
    const s = JSON.parse((await request(`${admin}/admin/status`)).body) as {
      pools: { upstreams: { id: string; inFlight: number; requests: number }[] }[];
    };
    return s.pools[0]!.upstreams.find((u) => u.id === `127.0.0.1:${b.port}`)!;
  };
  let seen = await inFlightOnB();
  for (let i = 0; i < 50 && seen.inFlight !== 1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    seen = await inFlightOnB();
  }
  assert.equal(seen.inFlight, 1, "the primary's status shows the request in flight in a worker");
  assert.ok(seen.requests > 0, "and the attempts the workers sent");
  gw.child.kill("SIGTERM");
  await gw.logs.waitFor("shutdown_started", (l) => l.worker !== undefined);
  releaseSlow();
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.equal((JSON.parse(res.body) as { slow?: boolean }).slow, true);
  assert.deepEqual(await gw.exited, { code: 0, signal: null });
  assert.deepEqual(await waitGone([primary, ...workers]), [], "no process left");
  assert.equal(gw.logs.events("worker_exit").filter((l) => l.code === 0).length, 2);
});
