// Hot reload: file watch, SIGHUP and POST /admin/reload; bad files keep the running config; reloads under load
// lose no request; upstream state carries over; many reloads leak no handle or timer.
import assert from "node:assert/strict";
import { createHook } from "node:async_hooks";
import { createHash } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, rename, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger } from "../../src/log/log.ts";
import { Gateway } from "../../src/server/gateway.ts";
import type { ReloadResult, StatusReport } from "../../src/server/status.ts";
import { LogCapture, get, poolConfig, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { formatStatusTable } from "../../src/server/status-table.ts";
import { spawnCli } from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** The n-th line with this msg, once it has been logged (lines may reach the log a moment after the event). */
function nth(logs: LogCapture, msg: string, n: number) {
  let seen = 0;
  return logs.waitFor(msg, () => ++seen === n);
}

/** Like startGateway, with the file watch on (the CLI's setting). */
function startWatched(yaml: string): Promise<TestGateway> {
  return startGateway(yaml, { watch: true });
}

/** Sends `n` requests one after another; returns hits per upstream name. */
async function spread(url: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await get(`${url}/x`);
    assert.equal(res.status, 200);
    const name = String(res.json().name);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

async function metric(url: string, name: string): Promise<number> {
  const text = (await get(`${url}/metrics`)).text;
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

async function postReload(url: string): Promise<{ status: number; body: ReloadResult }> {
  const res = await get(`${url}/admin/reload`, { method: "POST" });
  return { status: res.status, body: res.json<ReloadResult>() };
}

void test(
  "file watch: weights changed by rewriting the file (in place, or by rename) take effect",
  { timeout: 120_000 },
  async () => {
    const [a, b] = await Promise.all([FakeUpstream.start({ name: "a" }), FakeUpstream.start({ name: "b" })]);
    const t = await startWatched(poolConfig([{ url: a.url }, { url: b.url }]));
    try {
      assert.deepEqual(await spread(t.url, 40), { a: 20, b: 20 });

      const v2 = poolConfig([{ url: a.url, weight: 3 }, { url: b.url }]);
      await t.writeConfig(v2);
      const r2 = await t.logs.waitFor("config_reload", (l) => l.hash === sha256(v2));
      assert.equal(r2.trigger, "watch");
      assert.deepEqual(await spread(t.url, 40), { a: 30, b: 10 });

      // The way vim and most IDEs save: write a temp file, rename it over the original.
      const v3 = poolConfig([{ url: a.url }, { url: b.url, weight: 3 }]);
      const tmp = `${t.configPath}.tmp`;
      await writeFile(tmp, v3);
      await rename(tmp, t.configPath);
      await t.logs.waitFor("config_reload", (l) => l.hash === sha256(v3));
      assert.deepEqual(await spread(t.url, 40), { a: 10, b: 30 });

      // The same bytes again: nothing to reload.
      const reloads = t.logs.events("config_reload").length;
      await t.writeConfig(v3);
      await t.logs.waitFor("config_unchanged", (l) => l.hash === sha256(v3));
      assert.equal(t.logs.events("config_reload").length, reloads);

      // A bad file seen by the watch is rejected like any other.
      await t.writeConfig("pools: [\n");
      const err = await t.logs.waitFor("config_error", (l) => l.trigger === "watch");
      assert.ok(Array.isArray(err.errors) && err.errors.length > 0);
      assert.deepEqual(await spread(t.url, 40), { a: 10, b: 30 });
    } finally {
      await t.stop();
      await Promise.all([a.close(), b.close()]);
    }
  },
);

void test(
  "file watch: a Kubernetes-style ConfigMap update (a ..data symlink swapped by rename) is seen",
  { timeout: 120_000 },
  async () => {
    const [a, b] = await Promise.all([FakeUpstream.start({ name: "a" }), FakeUpstream.start({ name: "b" })]);
    // The kubelet's layout: gateway.yaml -> ..data/gateway.yaml, ..data -> ..2026_v1; an update writes ..2026_v2,
    // points a new symlink ..data_tmp at it and renames that over ..data. No event names gateway.yaml.
    const dir = await mkdtemp(join(tmpdir(), "gateway-configmap-"));
    const v1 = poolConfig([{ url: a.url }, { url: b.url }]);
    const v2 = poolConfig([{ url: a.url }, { url: b.url, weight: 3 }]);
    await mkdir(join(dir, "..2026_v1"));
    await writeFile(join(dir, "..2026_v1", "gateway.yaml"), v1);
    await symlink("..2026_v1", join(dir, "..data"));
    await symlink(join("..data", "gateway.yaml"), join(dir, "gateway.yaml"));
    const logs = new LogCapture();
    const gw = await Gateway.start({
      configPath: join(dir, "gateway.yaml"),
      env: {},
      log: createLogger({ level: "debug", stream: logs }),
      defaultMetrics: false,
      watch: true,
    });
    try {
      await logs.waitFor("ready");
      await mkdir(join(dir, "..2026_v2"));
      await writeFile(join(dir, "..2026_v2", "gateway.yaml"), v2);
      await symlink("..2026_v2", join(dir, "..data_tmp"));
      await rename(join(dir, "..data_tmp"), join(dir, "..data"));
      const r = await logs.waitFor("config_reload", (l) => l.hash === sha256(v2));
      assert.equal(r.trigger, "watch");
      assert.deepEqual(await spread(gw.url, 40), { a: 10, b: 30 });
    } finally {
      await gw.stop();
      await Promise.all([a.close(), b.close()]);
    }
  },
);

void test(
  "an invalid file of each kind keeps the old config serving, counts a failure, logs FILE:LINE:COL",
  { timeout: 120_000 },
  async () => {
    const [a, b] = await Promise.all([FakeUpstream.start({ name: "a" }), FakeUpstream.start({ name: "b" })]);
    const good = poolConfig([{ url: a.url, weight: 3 }, { url: b.url }]);
    const t = await startGateway(good);
    try {
      await t.gw.runHealthRound();
      const hash = t.gw.status().config.hash;
      const bad: Record<string, string> = {
        "YAML syntax": good.replace("pools:", "pools: [unclosed"),
        "unknown key": good.replace("weight: 3", "weigth: 3"),
        "wrong type": good.replace("weight: 3", "weight: lots"),
        "bad duration": good.replace("shutdownGrace: 2s", "shutdownGrace: 2 parsecs"),
        "route to a missing pool": good.replace("pool: app }", "pool: nope }"),
        "unset variable": good.replace("shutdownGrace: 2s", "shutdownGrace: ${GRACE_NOT_SET}"),
        "pool without upstreams": good.replace(/upstreams:\n[\s\S]*?\nroutes:/, "upstreams: []\nroutes:"),
        "duplicate upstream": good.replace(`{ url: ${b.url} }`, `{ url: ${a.url} }`),
        "missing file": "",
      };
      let failures = await metric(t.url, 'gateway_config_reloads_total{result="failure"}');
      for (const [kind, text] of Object.entries(bad)) {
        if (kind === "missing file") await rename(t.configPath, `${t.configPath}.away`);
        else await t.writeConfig(text);
        const { status, body } = await postReload(t.url);
        assert.equal(status, 400, kind);
        assert.equal(body.ok, false, kind);
        if (body.ok) continue;
        assert.ok(body.errors.length > 0, kind);
        for (const e of body.errors) assert.match(e, /^\/.+gateway\.yaml:\d+:\d+: .+: .+/, `${kind}: ${e}`);
        const logged = await t.logs.waitFor("config_error", (l) => isDeepStrictEqual(l.errors, body.errors));
        assert.equal(logged.trigger, "api");
        failures++;
        assert.equal(await metric(t.url, 'gateway_config_reloads_total{result="failure"}'), failures, kind);
        // The old config still runs, unchanged.
        assert.equal(t.gw.status().config.hash, hash, kind);
        if (kind === "missing file") await rename(`${t.configPath}.away`, t.configPath);
      }
      assert.deepEqual(await spread(t.url, 40), { a: 30, b: 10 });
      assert.equal(await metric(t.url, 'gateway_config_reloads_total{result="success"}'), 0);
    } finally {
      await t.stop();
      await Promise.all([a.close(), b.close()]);
    }
  },
);

void test("POST /admin/reload answers 200 with what changed", { timeout: 120_000 }, async () => {
  const [a, b, c] = await Promise.all(["a", "b", "c"].map((name) => FakeUpstream.start({ name })));
  const t = await startGateway(poolConfig([{ url: a!.url }, { url: b!.url }]));
  try {
    const next = poolConfig([{ url: a!.url, weight: 2 }, { url: c!.url }]);
    await t.writeConfig(next);
    const { status, body } = await postReload(t.url);
    assert.equal(status, 200);
    assert.ok(body.ok);
    assert.equal(body.hash, sha256(next));
    assert.deepEqual(body.changes.upstreams, {
      added: [`app/${c!.url}`],
      removed: [`app/${b!.url}`],
      changed: [`app/${a!.url}`],
    });
    const logged = await t.logs.waitFor("config_reload", (l) => l.hash === sha256(next));
    assert.deepEqual(logged.changes, body.changes);
    assert.equal(logged.trigger, "api");
    assert.equal(await metric(t.url, 'gateway_config_reloads_total{result="success"}'), 1);
    assert.ok((await metric(t.url, "gateway_config_last_reload_success_timestamp_seconds")) > 0);
    await t.gw.runHealthRound();
    assert.deepEqual(await spread(t.url, 30), { a: 20, c: 10 });
  } finally {
    await t.stop();
    await Promise.all([a!.close(), b!.close(), c!.close()]);
  }
});

void test("SIGHUP reloads the config (the CLI's handler)", { timeout: 120_000 }, async () => {
  const [a, b] = await Promise.all([FakeUpstream.start({ name: "a" }), FakeUpstream.start({ name: "b" })]);
  const dir = await mkdtemp(join(tmpdir(), "gateway-sighup-"));
  const configPath = join(dir, "gateway.yaml");
  await writeFile(configPath, poolConfig([{ url: a.url }, { url: b.url }]));
  const cli = spawnCli(["start", "-c", configPath]);
  try {
    const started = await cli.logs.waitFor("gateway_started");
    const port = String(started.listen).split(":").at(-1)!;
    // The CLI sets its signal handlers once the gateway has started; "ready" comes after the first health round.
    await cli.logs.waitFor("ready");
    const next = poolConfig([{ url: a.url, weight: 5 }, { url: b.url }]);
    await writeFile(configPath, next);
    cli.child.kill("SIGHUP");
    const reload = await cli.logs.waitFor("config_reload", (l) => l.hash === sha256(next));
    // The watch may see the write too, but the signal is handled first; either way the new weights run.
    assert.ok(reload.trigger === "signal" || reload.trigger === "watch");
    await cli.logs.waitFor("config_reload", (l) => l.trigger === "signal");
    assert.deepEqual(reload.changes, {
      pools: { added: [], removed: [], changed: [] },
      routes: { added: [], removed: [], changed: [] },
      upstreams: { added: [], removed: [], changed: [`app/${a.url}`] },
      warnings: [],
    });
    const status = (await get(`http://127.0.0.1:${port}/admin/status`)).json<StatusReport>();
    assert.equal(status.config.hash, sha256(next));
    assert.equal(status.pools[0]?.upstreams[0]?.weight, 5);
    cli.child.kill("SIGTERM");
    assert.deepEqual(await cli.exited, { code: 0, signal: null });
  } finally {
    cli.child.kill("SIGKILL");
    await Promise.all([a.close(), b.close()]);
  }
});

void test("50 reloads under steady load: zero failed requests", { timeout: 120_000 }, async () => {
  const ups = await Promise.all(["a", "b", "c"].map((name) => FakeUpstream.start({ name })));
  const [a, b, c] = ups as [FakeUpstream, FakeUpstream, FakeUpstream];
  const v1 = poolConfig([{ url: a.url }, { url: b.url }]);
  // Weights change, and c comes and goes, so reloads add, change and remove upstreams while requests run.
  const v2 = poolConfig([{ url: a.url, weight: 3 }, { url: b.url }, { url: c.url }]);
  const t = await startGateway(v1);
  try {
    await t.gw.runHealthRound();
    let running = true;
    const statuses = new Map<number | string, number>();
    const worker = async () => {
      while (running) {
        let key: number | string;
        try {
          key = (await get(`${t.url}/load`)).status;
        } catch (err) {
          key = String(err);
        }
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    for (let i = 0; i < 50; i++) {
      await t.writeConfig(i % 2 === 0 ? v2 : v1);
      const r = await t.gw.reload("api");
      assert.equal(r.ok, true);
      // Let some requests run on each config.
      await new Promise((resolve) => setImmediate(resolve));
    }
    running = false;
    await Promise.all(workers);
    const ok = statuses.get(200) ?? 0;
    const failed = [...statuses].filter(([k]) => k !== 200);
    assert.deepEqual(failed, [], `failed requests: ${JSON.stringify(failed)}`);
    assert.ok(ok >= 50, `only ${ok} requests ran`);
    await nth(t.logs, "config_reload", 50);
  } finally {
    await t.stop();
    await Promise.all(ups.map((u) => u.close()));
  }
});

void test(
  "unchanged upstreams keep their health state and counters across a reload",
  { timeout: 120_000 },
  async () => {
    const a = await FakeUpstream.start({ name: "a" });
    const b = await FakeUpstream.start({ name: "b", health: [500] });
    const c = await FakeUpstream.start({ name: "c" });
    const extra = "  # checks need 3 passes or 3 failures to flip, so carried counters are visible";
    const yaml = (weightA: number, withC: boolean) =>
      poolConfig(
        [{ url: a.url, weight: weightA }, { url: b.url }, ...(withC ? [{ url: c.url }] : [])],
        extra,
      ).replace("healthyThreshold: 1, unhealthyThreshold: 1", "healthyThreshold: 3, unhealthyThreshold: 3");
    const t = await startGateway(yaml(1, false));
    try {
      // The boot round and this one: two results each.
      await t.gw.runHealthRound();
      const before = t.gw.status().pools[0]!.upstreams;
      assert.deepEqual(
        before.map((u) => [u.health, u.passes, u.fails]),
        [
          ["healthy", 2, 0],
          ["unhealthy", 0, 2],
        ],
      );
      const probesOfB = b.healthChecks;

      // a's weight changes and c is added: a and b are the same upstreams (same pool and url).
      await t.writeConfig(yaml(2, true));
      const r = await t.gw.reload("api");
      assert.ok(r.ok);
      assert.deepEqual(r.changes.upstreams.changed, [`app/${a.url}`]);
      const after = t.gw.status().pools[0]!.upstreams;
      assert.deepEqual(
        after.slice(0, 2).map((u) => [u.id, u.health, u.passes, u.fails, u.lastCheck !== null]),
        before.map((u) => [u.id, u.health, u.passes, u.fails, true]),
      );
      assert.equal(after[0]?.weight, 2);
      // Nothing re-probed b to learn that: its state came over.
      assert.equal(b.healthChecks, probesOfB);
      // b stays out of rotation with no new check.
      const seen = await spread(t.url, 30);
      assert.equal(seen.b, undefined);
    } finally {
      await t.stop();
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  },
);

/**
 * Live timers, sockets, watchers and child processes by type, counted from their creation to their close (timers
 * too when unref'd, which getActiveResourcesInfo leaves out). Resources whose destroy waits for GC are not counted.
 */
function trackResources(options: { stacks?: boolean } = {}) {
  const live = new Map<number, string>();
  const stacks = new Map<number, string>();
  const tracked = new Set(["Timeout", "TCPWRAP", "TCPSERVERWRAP", "FSEVENTWRAP", "PROCESSWRAP", "PIPEWRAP"]);
  const hook = createHook({
    init(id, type) {
      if (!tracked.has(type)) return;
      live.set(id, type);
      if (options.stacks) stacks.set(id, new Error().stack ?? "");
    },
    destroy(id) {
      live.delete(id);
      stacks.delete(id);
    },
  });
  hook.enable();
  return {
    counts(): Record<string, number> {
      const out: Record<string, number> = {};
      for (const type of live.values()) out[type] = (out[type] ?? 0) + 1;
      return out;
    },
    /** The creation stacks of live resources made by the gateway's own code (`stacks` must be on). */
    fromGateway(): string[] {
      return [...stacks.entries()]
        .filter(([, stack]) => stack.includes("/src/"))
        .map(([id, stack]) => `${live.get(id)} ${stack}`);
    },
    disable: () => hook.disable(),
  };
}

function activeCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) out[type] = (out[type] ?? 0) + 1;
  return out;
}

function growth(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [type, n] of Object.entries(after)) {
    const d = n - (before[type] ?? 0);
    if (d > 0) out[type] = d;
  }
  return out;
}

void test("1,000 reloads leave no extra handles or timers behind", { timeout: 120_000 }, async () => {
  const ups = await Promise.all(["a", "b", "c"].map((name) => FakeUpstream.start({ name })));
  const [a, b, c] = ups as [FakeUpstream, FakeUpstream, FakeUpstream];
  const v1 = poolConfig([{ url: a.url }, { url: b.url }]);
  const v2 = poolConfig([{ url: a.url, weight: 3 }, { url: b.url }, { url: c.url }]);
  const t = await startGateway(v1);
  const tracker = trackResources();
  try {
    await t.gw.runHealthRound();
    const settle = async () => {
      // Back to v1 (c removed), one request through every upstream, a full health round: a steady state.
      await t.writeConfig(v1);
      assert.ok((await t.gw.reload("api")).ok);
      await t.gw.runHealthRound();
      await spread(t.url, 4);
      await new Promise((r) => setImmediate(r));
    };
    for (let i = 0; i < 10; i++) {
      await t.writeConfig(i % 2 === 0 ? v2 : v1);
      await t.gw.reload("api");
    }
    await settle();
    const activeBefore = activeCounts();
    const liveBefore = tracker.counts();

    for (let i = 0; i < 1_000; i++) {
      await t.writeConfig(i % 2 === 0 ? v2 : v1);
      const r = await t.gw.reload("api");
      assert.ok(r.ok);
      // Traffic to c now and then, so removed upstreams have agents and sockets to release.
      if (i % 100 === 0) await spread(t.url, 5);
    }
    await settle();
    const activeGrowth = growth(activeBefore, activeCounts());
    const liveGrowth = growth(liveBefore, tracker.counts());
    // A couple of sockets may be mid-close at the instant of counting; a leak would show hundreds.
    for (const [type, n] of Object.entries({ ...activeGrowth, ...liveGrowth }))
      assert.ok(
        n <= 3,
        `${type} grew by ${n}: active ${JSON.stringify(activeGrowth)}, live ${JSON.stringify(liveGrowth)}`,
      );
    await nth(t.logs, "config_reload", 1_012);
  } finally {
    tracker.disable();
    await t.stop();
    await Promise.all(ups.map((u) => u.close()));
  }
});

/** A server whose /health never answers (until closed), counting the connections it gets. */
async function hangingHealth() {
  let connections = 0;
  const probed: (() => void)[] = [];
  const server = http.createServer(() => {
    for (const r of probed.splice(0)) r();
  });
  server.on("connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    /** Resolves once a request (the first round's probe) has arrived. */
    probed: () => new Promise<void>((r) => probed.push(r)),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

void test(
  "a reload during the first health round: the old runtime starts nothing, removed upstreams are never probed again",
  { timeout: 120_000 },
  async () => {
    const slow = await hangingHealth();
    const fast = await FakeUpstream.start({ name: "fast" });
    const checks =
      "  healthCheck: { interval: 200ms, timeout: 5s, healthyThreshold: 1, unhealthyThreshold: 1 }";
    const v1 = poolConfig([{ url: slow.url }, { url: fast.url }]).replace(/^ {2}healthCheck: .*$/m, checks);
    const v2 = poolConfig([{ url: fast.url }]).replace(/^ {2}healthCheck: .*$/m, checks);
    const probed = slow.probed();
    const tracker = trackResources({ stacks: true });
    const t = await startGateway(v1, { waitReady: false });
    try {
      await probed;
      const old = t.gw.runtime;
      const removed = [...old.entries.values()].find((e) => e.spec.url === slow.url)!;
      await t.writeConfig(v2);
      assert.equal((await t.gw.reload("api")).ok, true);
      // The old runtime's first round ends now (its probe of the removed upstream was cut by the retire).
      await old.start();
      await t.gw.whenBooted();
      assert.equal(removed.checker.active, false, "the removed upstream's checker is not running");
      assert.equal(removed.checker.started, false);
      // The carried upstream is checked on schedule by the new runtime: several intervals pass...
      const before = fast.healthChecks;
      const deadline = Date.now() + 30_000;
      while (fast.healthChecks < before + 3 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.ok(fast.healthChecks >= before + 3, "the carried upstream is probed on schedule");
      // ...and not one more connection reached the removed one.
      assert.equal(slow.connections(), 1);
      assert.equal(t.gw.status().pools[0]!.upstreams.length, 1);
    } finally {
      await t.stop();
      await fast.close();
      await slow.close();
    }
    await new Promise((r) => setImmediate(r));
    const left = tracker.fromGateway();
    tracker.disable();
    assert.deepEqual(left, [], "no timer, socket or watcher of the gateway is left");
  },
);

void test(
  "the last config error shows in /admin/status and gateway status until the file is back in sync or a good reload",
  { timeout: 120_000 },
  async () => {
    const a = await FakeUpstream.start({ name: "a" });
    const good = poolConfig([{ url: a.url }]);
    const t = await startWatched(good);
    try {
      assert.equal(t.gw.status().lastConfigError, null);
      await t.writeConfig(good.replace("pools:", "pools:\n  broken: {upstreams: [{url: nope}]}"));
      await t.logs.waitFor("config_error");
      const report = (await get(`${t.url}/admin/status`)).json<StatusReport>();
      const e = report.lastConfigError;
      assert.ok(e, "lastConfigError is set");
      assert.equal(e.trigger, "watch");
      assert.equal(e.file, t.configPath);
      assert.ok(!Number.isNaN(Date.parse(e.time)));
      assert.ok(e.errors.length >= 1);
      for (const line of e.errors) assert.match(line, new RegExp(`^${t.configPath}:\\d+:\\d+: `));
      const table = formatStatusTable(report);
      assert.match(table, /last config error \(.+, watch; the running config stays\):\n {2}\/.+:\d+:\d+: /);
      assert.deepEqual(
        report.routes.map((r) => [r.prefix, r.pool]),
        [["/", "app"]],
      );

      // The broken edit undone: the file says what runs again.
      await t.writeConfig(good);
      const sync = await t.logs.waitFor("config_in_sync");
      assert.equal(sync.level, "info");
      assert.equal(sync.hash, sha256(good));
      assert.equal(t.gw.status().lastConfigError, null);
      assert.equal(formatStatusTable(t.gw.status()).includes("last config error"), false);

      // Broken again, then a good reload clears it.
      await t.writeConfig("listen: [");
      await nth(t.logs, "config_error", 2);
      assert.ok(t.gw.status().lastConfigError);
      await t.writeConfig(poolConfig([{ url: a.url, weight: 2 }]));
      await t.logs.waitFor("config_reload");
      assert.equal(t.gw.status().lastConfigError, null);
    } finally {
      await t.stop();
      await a.close();
    }
  },
);
