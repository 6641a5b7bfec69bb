// `gateway ports run` end to end against a real gateway with the registry on (memory store): allocation, PORT,
// traffic through a discovering pool, heartbeats, a 404 answered by re-allocating the same port, a registry that is
// down, SIGTERM and exit codes, and a top-level process that registers itself.
import assert from "node:assert/strict";
import { test } from "node:test";
import { get, startGateway } from "../helpers/gateway.ts";
import { CLI, PDF, allocations, portsRun, registryGateway, routedTo } from "../helpers/ports.ts";
import { ROOT, freePort, isRunning, portFree, waitGone } from "../helpers/processes.ts";

void test(
  "ports run: PORT from the registry, traffic through the discovering pool, SIGTERM stops the child and frees the port",
  { timeout: 120_000 },
  async (t) => {
    const { g } = await registryGateway(t);
    const w = portsRun(t, ["ext-pdf", "svc", "--url", g.url, "--", "node", PDF, "--name", "ext"]);
    const [, portText] = await w.line(/listening on http:\/\/127\.0\.0\.1:(\d+) \(pid (\d+)\)/);
    const [, , pidText] = await w.line(/listening on http:\/\/127\.0\.0\.1:(\d+) \(pid (\d+)\)/);
    const port = Number(portText);
    const childPid = Number(pidText);

    const [a] = await allocations(g, "?name=ext-pdf");
    assert.ok(a, "allocated");
    assert.equal(a.port, port, "the child listens on the allocated port");
    assert.equal(a.service_type, "svc");
    assert.equal(a.status, "active");
    assert.equal(a.pid, w.child.pid, "pid is the wrapper's: the process that holds the lease");

    const answer = await routedTo(g, "ext");
    assert.equal(answer.port, port);

    w.child.kill("SIGTERM");
    assert.deepEqual(await w.exited, { code: 0, signal: null }, w.stderr());
    assert.deepEqual(await waitGone([childPid], 10_000), [], "the child is gone");
    assert.deepEqual(await allocations(g, "?name=ext-pdf"), [], "released");
    assert.equal(await portFree(port), true, "the port is free");
    assert.match(w.stderr(), /released 127\.0\.0\.1:\d+/);
  },
);

void test("ports run exits with the child's code, or 128 + the signal, and releases either way", async (t) => {
  const { g } = await registryGateway(t);
  const seven = portsRun(t, ["seven", "svc", "--url", g.url, "--", "node", "-e", "process.exit(7)"]);
  assert.deepEqual(await seven.exited, { code: 7, signal: null }, seven.stderr());
  const killed = portsRun(t, [
    "killed",
    "svc",
    "--url",
    g.url,
    "--",
    "node",
    "-e",
    "process.kill(process.pid, 'SIGKILL')",
  ]);
  assert.deepEqual(await killed.exited, { code: 137, signal: null }, killed.stderr());
  const missing = portsRun(t, ["missing", "svc", "--url", g.url, "--", "no-such-program-xyz"]);
  assert.equal((await missing.exited).code, 127, missing.stderr());
  assert.deepEqual(await allocations(g), [], "every allocation released");
});

void test("ports run: heartbeats keep the lease; a lost allocation (404) is taken again on the same port", async (t) => {
  const { g } = await registryGateway(t, "");
  const w = portsRun(t, ["beat", "svc", "--url", g.url, "--", "node", PDF, "--name", "beat"]);
  const [, portText] = await w.line(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
  const [first] = await allocations(g, "?name=beat");
  assert.ok(first);
  // ttl 3 s: a heartbeat every second moves last_heartbeat on.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [now] = await allocations(g, "?name=beat");
    if (now && now.last_heartbeat !== first.last_heartbeat) break;
    assert.ok(Date.now() < deadline, "no heartbeat within 15 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  // Removed behind its back (an operator's release, a deregistration): the next heartbeat is a 404.
  const del = await get(`${g.url}/registry/allocations/${first.allocation_id}`, { method: "DELETE" });
  assert.equal(del.status, 200, del.text);
  await w.line(/holds 127\.0\.0\.1:\d+ again/);
  const [again] = await allocations(g, "?name=beat");
  assert.ok(again);
  assert.notEqual(again.allocation_id, first.allocation_id);
  assert.equal(again.port, Number(portText), "the same port: the child still listens on it");
  w.child.kill("SIGINT");
  assert.equal((await w.exited).code, 0);
  assert.deepEqual(await allocations(g, "?name=beat"), []);
});

void test("ports run: a registry that stops answering does not stop the child", async (t) => {
  const { g } = await registryGateway(t);
  const w = portsRun(t, ["lonely", "svc", "--url", g.url, "--", "node", PDF, "--name", "lonely"]);
  const [, , pidText] = await w.line(/listening on http:\/\/127\.0\.0\.1:(\d+) \(pid (\d+)\)/);
  await g.stop();
  await w.line(/heartbeat failed/);
  assert.equal(isRunning(Number(pidText)), true, "the child still runs");
  assert.equal(w.child.exitCode, null, "so does the wrapper");
  w.child.kill("SIGTERM");
  assert.equal((await w.exited).code, 0, w.stderr());
  assert.match(w.stderr(), /release failed/);
});

void test("a top-level process runs `gateway ports run` and joins the pool by discovery; stopping the gateway stops it", async (t) => {
  const first = await freePort();
  const g = await startGateway(`listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
registry:
  ttl: 5s
  types:
    svc: ${first}-${first + 19}
pools:
  svc:
    discover: { type: svc }
    upstreams: []
routes:
  - { prefix: /svc/, pool: svc }
processes:
  extra:
    command: ${JSON.stringify(`${CLI.join(" ")} ports run extra-pdf svc -- node ${PDF} --name extra`)}
    cwd: ${JSON.stringify(ROOT)}
    stopGrace: 5s
`);
  let stopped = false;
  t.after(() => (stopped ? undefined : g.stop()));
  const started = await g.logs.waitFor("managed_start", (l) => l.process === "extra");
  assert.equal(started.pool, undefined);
  await g.logs.waitFor(
    "managed_output",
    (l) => l.process === "extra" && String(l.line).includes("listening"),
  );
  await routedTo(g, "extra");
  await g.stop();
  stopped = true;
  const exit = await g.logs.waitFor("managed_exit", (l) => l.process === "extra");
  assert.equal(exit.code, 0, JSON.stringify(g.logs.events("managed_output")));
  assert.equal(isRunning(Number(started.pid)), false);
});
