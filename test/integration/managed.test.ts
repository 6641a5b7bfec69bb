// Managed upstreams with real processes: start, restart after a kill, backoff, reload, stop, and no orphans even
// when the gateway itself is SIGKILLed (the guard's job).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { quote } from "shell-quote";
import { loadConfigText } from "../../src/config/load.ts";
import { createLogger } from "../../src/log/log.ts";
import { isGuardReport, type GuardReport, type GuardRequest } from "../../src/managed/protocol.ts";
import { Supervisor, guardCommand } from "../../src/managed/supervisor.ts";
import { GatewayMetrics } from "../../src/metrics/metrics.ts";
import { entryKey } from "../../src/runtime/runtime.ts";
import type { StatusReport } from "../../src/server/status.ts";
import { LogCapture, appConfig, get, startGateway, type LogLine } from "../helpers/gateway.ts";
import {
  ROOT,
  childrenOf,
  cmdline,
  freePort,
  groupMembers,
  isRunning,
  spawnCli,
  waitGone,
} from "../helpers/processes.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const WEATHER = `${ROOT}examples/services/weather.js`;

interface ManagedUp {
  port: number;
  command?: string;
  restart?: "always" | "on-failure" | "never";
  stopGrace?: string;
}

function weather(name: string): string {
  return quote(["node", WEATHER, "--name", name]);
}

/** One pool `app` of managed upstreams (plus plain ones), checks only when the test runs a round. */
function managedYaml(ups: ManagedUp[], plain: string[] = []): string {
  const list = ups
    .map((u) =>
      [
        `      - url: http://127.0.0.1:${u.port}`,
        `        run:`,
        `          command: ${JSON.stringify(u.command ?? weather(`w${u.port}`))}`,
        `          cwd: ${JSON.stringify(ROOT)}`,
        `          restart: ${u.restart ?? "on-failure"}`,
        `          stopGrace: ${u.stopGrace ?? "3s"}`,
      ].join("\n"),
    )
    .concat(plain.map((url) => `      - url: ${url}`))
    .join("\n");
  return appConfig(list);
}

const listening = (pid: unknown) => (l: LogLine) =>
  typeof l.line === "string" && l.line.includes("listening") && l.line.includes(`(pid ${String(pid)})`);

function managedOf(report: StatusReport, port: number) {
  const u = report.pools.flatMap((p) => p.upstreams).find((x) => x.url === `http://127.0.0.1:${port}`);
  assert.ok(u, `upstream on ${port}`);
  return u.managed;
}

function guardsOf(pid: number): number[] {
  return childrenOf(pid).filter((c) => cmdline(c).includes("guard"));
}

void test(
  "a managed upstream serves once its checks pass; killed, it is restarted and serves again",
  { timeout: 120_000 },
  async () => {
    const port = await freePort();
    const t = await startGateway(managedYaml([{ port }]));
    try {
      const first = await t.logs.waitFor("managed_start");
      assert.equal(first.pool, "app");
      assert.equal(first.upstream, `127.0.0.1:${port}`);
      const pid1 = first.pid as number;
      await t.logs.waitFor("managed_output", listening(pid1));
      // Output lines are tagged with pool and upstream.
      const out = t.logs.events("managed_output").find(listening(pid1))!;
      assert.equal(out.stream, "stdout");
      assert.equal(out.upstream, `127.0.0.1:${port}`);

      await t.gw.runHealthRound();
      let res = await get(`${t.url}/paris`);
      assert.equal(res.status, 200);
      assert.equal(res.json().service, "weather");
      assert.equal(res.json().port, port);
      assert.deepEqual(managedOf(t.gw.status(), port), {
        pid: pid1,
        restarts: 0,
        lastExit: null,
        running: true,
        reason: null,
      });

      process.kill(pid1, "SIGKILL");
      const exit = await t.logs.waitFor("managed_exit", (l) => l.pid === pid1);
      assert.equal(exit.signal, "SIGKILL");
      assert.equal(exit.code, null);
      assert.equal(exit.restarting, true);
      assert.equal(exit.restartInMs, 1_000);

      const second = await t.logs.waitFor("managed_start", (l) => l.pid !== pid1);
      const pid2 = second.pid as number;
      assert.equal(second.restarts, 1);
      await t.logs.waitFor("managed_output", listening(pid2));
      await t.gw.runHealthRound();
      res = await get(`${t.url}/paris`);
      assert.equal(res.status, 200);
      assert.equal(res.json().service, "weather");

      const m = managedOf(t.gw.status(), port);
      assert.ok(m);
      assert.equal(m.pid, pid2);
      assert.equal(m.restarts, 1);
      assert.equal(m.running, true);
      assert.equal(m.lastExit?.signal, "SIGKILL");
      // The same object over HTTP.
      const viaApi = (await get(`${t.url}/admin/status`)).json<StatusReport>();
      assert.equal(managedOf(viaApi, port)?.pid, pid2);
      const metrics = (await get(`${t.url}/metrics`)).text;
      assert.match(
        metrics,
        new RegExp(`gateway_managed_restarts_total\\{pool="app",upstream="127.0.0.1:${port}"\\} 1`),
      );

      await t.stop();
      assert.equal(isRunning(pid2), false);
      assert.deepEqual(groupMembers(pid2), []);
      assert.deepEqual(guardsOf(process.pid), []);
    } finally {
      await t.stop();
    }
  },
);

void test(
  "gateway stop: SIGTERM to each process group, SIGKILL after stopGrace for one that ignores it",
  { timeout: 120_000 },
  async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const stubborn = `sh -c "trap '' TERM; sleep 1000 & wait"`;
    const t = await startGateway(
      managedYaml([{ port: p1 }, { port: p2, command: stubborn, stopGrace: "300ms" }]),
    );
    const starts = await Promise.all([
      t.logs.waitFor("managed_start", (l) => l.upstream === `127.0.0.1:${p1}`),
      t.logs.waitFor("managed_start", (l) => l.upstream === `127.0.0.1:${p2}`),
    ]);
    const [pid1, pid2] = starts.map((s) => s.pid as number) as [number, number];
    await t.logs.waitFor("managed_output", listening(pid1));
    const began = Date.now();
    await t.stop();
    const tookMs = Date.now() - began;

    // The log may write a moment after the stop returns.
    await t.logs.waitFor("shutdown_complete");
    const exits = t.logs.events("managed_exit");
    const e1 = exits.find((e) => e.pid === pid1);
    const e2 = exits.find((e) => e.pid === pid2);
    assert.equal(e1?.code, 0, "the sample service exits 0 on SIGTERM");
    assert.equal(e1?.reason, "stopped");
    assert.equal(e2?.signal, "SIGKILL", "the one ignoring SIGTERM was killed after its grace");
    assert.ok(tookMs >= 300, `stop took ${tookMs} ms`);
    assert.ok(tookMs < 5_000, `stop took ${tookMs} ms`);
    for (const pid of [pid1, pid2]) {
      assert.equal(isRunning(pid), false);
      assert.deepEqual(groupMembers(pid), [], "nothing of its process group is left");
    }
    assert.deepEqual(guardsOf(process.pid), []);
    assert.ok(t.logs.events("shutdown_complete").length === 1);
  },
);

void test(
  "reload: a changed run: restarts the process, an exited one is started again, a removed one stops",
  { timeout: 120_000 },
  async () => {
    const port = await freePort();
    const plain = await FakeUpstream.start({ name: "plain" });
    const t = await startGateway(managedYaml([{ port, command: weather("one") }]));
    try {
      const pid1 = (await t.logs.waitFor("managed_start")).pid as number;

      await t.writeConfig(managedYaml([{ port, command: weather("two") }]));
      assert.equal((await t.gw.reload("api")).ok, true);
      const stopped = await t.logs.waitFor("managed_exit", (l) => l.pid === pid1);
      assert.equal(stopped.reason, "stopped");
      const start2 = await t.logs.waitFor("managed_start", (l) => l.pid !== pid1);
      assert.match(String(start2.command), /--name two/);
      const pid2 = start2.pid as number;
      await t.logs.waitFor("managed_output", listening(pid2));

      // SIGTERM: the service exits 0, which restart: on-failure leaves alone.
      process.kill(pid2, "SIGTERM");
      const exit2 = await t.logs.waitFor("managed_exit", (l) => l.pid === pid2);
      assert.equal(exit2.code, 0);
      assert.equal(exit2.restarting, false);
      assert.equal(exit2.restartInMs, null);
      const m = managedOf(t.gw.status(), port);
      assert.equal(m?.running, false);
      assert.equal(m?.pid, null);
      assert.equal(m?.lastExit?.code, 0);

      // The config still asks for it: a reload reconciles.
      assert.equal((await t.gw.reload("api")).ok, true);
      const start3 = await t.logs.waitFor("managed_start", (l) => l.pid !== pid1 && l.pid !== pid2);
      const pid3 = start3.pid as number;

      await t.writeConfig(managedYaml([], [plain.url]));
      assert.equal((await t.gw.reload("api")).ok, true);
      const exit3 = await t.logs.waitFor("managed_exit", (l) => l.pid === pid3);
      assert.equal(exit3.reason, "stopped");
      assert.equal(t.gw.supervisor.size, 0);
      assert.equal(managedOf(t.gw.status(), plain.port), null);
      await waitGone([pid1, pid2, pid3], 5_000);
      assert.deepEqual([pid1, pid2, pid3].filter(isRunning), []);
    } finally {
      await t.stop();
      await plain.close();
    }
  },
);

void test(
  "backoff doubles while a process keeps failing; never is never restarted; a missing program is a failure",
  { timeout: 120_000 },
  async () => {
    const logs = new LogCapture();
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const sup = new Supervisor({
      log: createLogger({ level: "debug", stream: logs }),
      metrics,
      backoff: { initial: 50, max: 200, resetAfter: 60_000 },
    });
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const yaml = `pools:
  app:
    upstreams:
      - { url: "http://127.0.0.1:${a}", run: { command: "node -e 'process.exit(3)'" } }
      - { url: "http://127.0.0.1:${b}", run: { command: "node -e 'process.exit(3)'", restart: never } }
      - { url: "http://127.0.0.1:${c}", run: { command: "no-such-program-here --x" } }
routes:
  - { prefix: /, pool: app }
`;
    const config = loadConfigText(yaml, join(tmpdir(), "gateway.yaml"));
    try {
      await sup.sync(config);
      // The fourth exit in a row: delays 50, 100, 200, then the 200 cap.
      let exitsOfA = 0;
      await logs.waitFor("managed_exit", (l) => l.upstream === `127.0.0.1:${a}` && ++exitsOfA === 4);
      const delays = logs
        .events("managed_exit")
        .filter((l) => l.upstream === `127.0.0.1:${a}`)
        .map((l) => l.restartInMs);
      assert.deepEqual(delays.slice(0, 4), [50, 100, 200, 200]);

      const never = await logs.waitFor("managed_exit", (l) => l.upstream === `127.0.0.1:${b}`);
      assert.equal(never.code, 3);
      assert.equal(never.restarting, false);

      const missing = await logs.waitFor("managed_exit", (l) => l.upstream === `127.0.0.1:${c}`);
      assert.match(String(missing.error), /ENOENT/);
      assert.equal(missing.restarting, true);

      // The status says why it is not serving.
      const loop = sup.status(entryKey("app", `http://127.0.0.1:${a}`));
      assert.match(String(loop?.reason), /^restarting: exited with code 3, \d+ times in a row$/);

      const restarts = await metrics.managedRestarts.get();
      const forA = restarts.values.find((v) => v.labels.upstream === `127.0.0.1:${a}`);
      assert.ok((forA?.value ?? 0) >= 3);
    } finally {
      await sup.stopAll();
    }
    assert.equal(sup.size, 0);
    assert.deepEqual(guardsOf(process.pid), []);
  },
);

void test(
  "a command using shell operators is refused with managed_error and not started",
  { timeout: 120_000 },
  async () => {
    const logs = new LogCapture();
    const sup = new Supervisor({
      log: createLogger({ level: "debug", stream: logs }),
      metrics: new GatewayMetrics({ defaultMetrics: false }),
    });
    const yaml = `pools:
  app:
    upstreams:
      - { url: "http://127.0.0.1:1", run: { command: "node app.js | tee out.log" } }
routes:
  - { prefix: /, pool: app }
`;
    await sup.sync(loadConfigText(yaml, join(tmpdir(), "gateway.yaml")));
    const err = await logs.waitFor("managed_error");
    assert.match(String(err.error), /needs a shell/);
    assert.equal(sup.size, 0);
    await sup.stopAll();
  },
);

/** Starts one guard the way the supervisor does and has it run each of `runs` (ids 1, 2, ...). */
async function startGuard(runs: { argv: string[]; stopGrace: number }[]) {
  const g = guardCommand();
  const guard = spawn(g.execPath, g.args, { stdio: ["ignore", "inherit", "inherit", "ipc"], detached: true });
  const reports: GuardReport[] = [];
  const pids = new Map<number, number>();
  let allStarted: () => void = () => undefined;
  const started = new Promise<void>((r) => (allStarted = r));
  guard.on("message", (m: unknown) => {
    if (!isGuardReport(m)) return;
    reports.push(m);
    if (m.type === "started") pids.set(m.id, m.pid);
    if (pids.size === runs.length) allStarted();
  });
  runs.forEach((r, i) => {
    const req: GuardRequest = {
      type: "start",
      id: i + 1,
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "" },
      ...r,
    };
    guard.send(req);
  });
  const exited = once(guard, "exit");
  await started;
  return { guard, pids: runs.map((_, i) => pids.get(i + 1)!), reports, exited };
}

async function waitMembers(pgid: number, n: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    const m = groupMembers(pgid);
    if (m.length >= n) return m;
    await new Promise((r) => setTimeout(r, 25));
  }
  return groupMembers(pgid);
}

void test(
  "guard: one guard runs several process groups; when the gateway's channel closes it kills them all",
  { timeout: 120_000 },
  async () => {
    const g = await startGuard([
      { argv: ["sh", "-c", "sleep 1000 & sleep 1000 & wait"], stopGrace: 2_000 },
      { argv: ["sh", "-c", "sleep 1000 & wait"], stopGrace: 2_000 },
    ]);
    const first = await waitMembers(g.pids[0]!, 3);
    assert.equal(first.length, 3, "sh and two sleeps share the group");
    const second = await waitMembers(g.pids[1]!, 2);
    assert.equal(second.length, 2);
    assert.deepEqual(childrenOf(g.guard.pid!).sort(), [...g.pids].sort(), "both run under the one guard");
    // What a SIGKILLed gateway looks like from the guard: the IPC channel closes.
    g.guard.disconnect();
    await g.exited;
    assert.deepEqual(await waitGone([...first, ...second], 5_000), []);
  },
);

void test(
  "guard: stop sends SIGTERM to one group, SIGKILL after its stopGrace, reports the exit; the others run on",
  { timeout: 120_000 },
  async () => {
    const g = await startGuard([
      { argv: ["sh", "-c", "trap '' TERM; sleep 1000 & wait"], stopGrace: 300 },
      { argv: ["sh", "-c", "echo hello; sleep 1000 & wait"], stopGrace: 300 },
    ]);
    const members = await waitMembers(g.pids[0]!, 2);
    const began = Date.now();
    const exitReport = new Promise<GuardReport>((resolve) =>
      g.guard.on("message", (m: unknown) => {
        if (isGuardReport(m) && m.type === "exit") resolve(m);
      }),
    );
    g.guard.send({ type: "stop", id: 1 } satisfies GuardRequest);
    const exit = await exitReport;
    const took = Date.now() - began;
    assert.ok(took >= 300, `took ${took} ms`);
    assert.deepEqual(exit, { type: "exit", id: 1, code: null, signal: "SIGKILL" });
    assert.deepEqual(await waitGone(members, 5_000), []);
    assert.equal(isRunning(g.pids[1]!), true, "the other process runs on");
    assert.ok(
      g.reports.some((r) => r.type === "output" && r.id === 2 && r.line === "hello" && r.stream === "stdout"),
    );
    g.guard.disconnect();
    await g.exited;
    assert.deepEqual(await waitGone([g.pids[1]!], 5_000), []);
  },
);

void test(
  "the gateway SIGKILLed: its managed processes and everything they started are gone",
  { timeout: 120_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "gateway-sigkill-"));
    const configPath = join(dir, "gateway.yaml");
    const [p1, p2] = [await freePort(), await freePort()];
    // The second one leaves a grandchild (sleep) in its process group.
    const withChild = `sh -c ${quote([`sleep 1000 & exec node ${quote([WEATHER])} --name tree`])}`;
    await writeFile(configPath, managedYaml([{ port: p1 }, { port: p2, command: withChild }]));
    const cli = spawnCli(["start", "-c", configPath]);
    try {
      const starts = await Promise.all([
        cli.logs.waitFor("managed_start", (l) => l.upstream === `127.0.0.1:${p1}`),
        cli.logs.waitFor("managed_start", (l) => l.upstream === `127.0.0.1:${p2}`),
      ]);
      const pids = starts.map((s) => s.pid as number);
      await Promise.all(pids.map((pid) => cli.logs.waitFor("managed_output", listening(pid))));
      const tree = await waitMembers(pids[1]!, 2);
      assert.equal(tree.length, 2, "node and its sleep");
      const guards = guardsOf(cli.child.pid!);
      assert.equal(guards.length, 1, "one guard for all managed processes");
      assert.deepEqual(childrenOf(guards[0]!).sort(), [...pids].sort());
      const everything = [...guards, ...groupMembers(pids[0]!), ...tree];

      cli.child.kill("SIGKILL");
      await cli.exited;
      assert.deepEqual(await waitGone(everything), [], "no orphan left behind");
    } finally {
      cli.child.kill("SIGKILL");
    }
  },
);

void test(
  "a stop during the boot wait: the first round never runs, no checker starts, the process is stopped",
  { timeout: 120_000 },
  async () => {
    const port = await freePort();
    const plain = await FakeUpstream.start({ name: "plain" });
    // Never listens: the boot wait would last its full 5 s.
    const silent = `node -e "setInterval(() => {}, 1000)"`;
    const t = await startGateway(managedYaml([{ port, command: silent }], [plain.url]), { waitReady: false });
    try {
      const pid = (await t.logs.waitFor("managed_start")).pid as number;
      const rt = t.gw.runtime;
      await t.stop();
      await t.gw.whenBooted();
      assert.equal(plain.healthChecks, 0, "no probe ran after the stop");
      for (const e of rt.entries.values()) assert.equal(e.checker.active, false, `${e.spec.url} is checked`);
      assert.equal(t.logs.events("ready").length, 0);
      assert.equal(t.gw.readiness().ready, false);
      assert.deepEqual(await waitGone([pid], 5_000), []);
      assert.deepEqual(guardsOf(process.pid), []);
    } finally {
      await t.stop();
      await plain.close();
    }
  },
);

void test(
  "a managed upstream's port held by another server: one clear error, the upstream is out with that reason, nothing is spawned; it starts once the port is free",
  { timeout: 120_000 },
  async () => {
    const foreign = await FakeUpstream.start({ name: "foreign" });
    const port = foreign.port;
    const t = await startGateway(managedYaml([{ port }]));
    try {
      const err = await t.logs.waitFor("managed_port_taken");
      assert.equal(err.level, "error");
      assert.equal(err.port, port);
      assert.match(
        String(err.error),
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use by another process`),
      );
      await t.gw.runHealthRound();
      await t.gw.runHealthRound();
      const u = t.gw.status().pools[0]!.upstreams[0]!;
      assert.equal(u.available, false);
      assert.equal(u.health, "unhealthy");
      assert.match(u.reason, /already in use by another process/);
      assert.match(String(u.managed?.reason), /already in use/);
      assert.equal(u.managed?.running, false);
      assert.equal(t.logs.events("managed_start").length, 0, "nothing was spawned");
      assert.equal(foreign.healthChecks, 0, "the foreign server is not health-checked");
      const res = await get(`${t.url}/paris`);
      assert.equal(res.status, 503);
      assert.equal(foreign.hits, 0, "no request reached the foreign server");
      assert.equal(t.logs.events("managed_port_taken").length, 1, "one error, not one per re-check");

      // The other server goes away: the process starts on the next look and the upstream serves.
      await foreign.close();
      const start = await t.logs.waitFor("managed_start");
      await t.logs.waitFor("managed_output", listening(start.pid));
      await t.gw.runHealthRound();
      const after = t.gw.status().pools[0]!.upstreams[0]!;
      assert.equal(after.available, true, after.reason);
      assert.equal(after.managed?.reason, null);
      assert.equal((await get(`${t.url}/paris`)).json().service, "weather");
    } finally {
      await t.stop();
      await foreign.close();
    }
  },
);
