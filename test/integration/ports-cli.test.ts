// `gateway ports ...` against a real gateway with the registry on (memory store): every command, its errors
// (exit 1 with the server's message), and `ports run` end to end: allocation, PORT, traffic through a discovering
// pool, heartbeats, a 404 answered by re-allocating the same port, a registry that is down, SIGTERM and exit codes.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { test, type TestContext } from "node:test";
import type { Allocation } from "../../src/cli/registry-client.ts";
import { get, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { ROOT, freePort, isRunning, portFree, waitGone } from "../helpers/processes.ts";

const CLI = [process.execPath, "--import", "tsx", `${ROOT}src/cli.ts`];
const PDF = `${ROOT}examples/services/pdf.js`;
const KEY = "registry-test-key";

/** The env of a CLI run: none of the operator's gateway variables leak in. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("GATEWAY_")) env[k] = v;
  return { ...env, ...extra };
}

/** Runs `gateway ARGS` to its end. */
async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(CLI[0]!, [...CLI.slice(1), ...args], { cwd: ROOT, env: cleanEnv(env) });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

interface Wrapper {
  child: ChildProcess;
  stderr(): string;
  /** Resolves with the first stdout line (the child's) or stderr line (the wrapper's) that matches. */
  line(re: RegExp): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `gateway ports run ARGS` and follows its output. */
function portsRun(t: TestContext, args: string[], env: Record<string, string> = {}): Wrapper {
  const child = spawn(CLI[0]!, [...CLI.slice(1), "ports", "run", ...args], { cwd: ROOT, env: cleanEnv(env) });
  const lines: string[] = [];
  let err = "";
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onLine = (l: string) => {
    lines.push(l);
    for (const w of [...waiters]) {
      const m = l.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  createInterface({ input: child.stdout }).on("line", onLine);
  createInterface({ input: child.stderr }).on("line", (l) => {
    err += `${l}\n`;
    onLine(l);
  });
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    stderr: () => err,
    exited,
    line: (re) => {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve) => waiters.push({ re, resolve }));
    },
  };
}

/** A gateway with the registry on: type `svc` over 20 ports from a free one, pool `svc` discovering it. */
async function registryGateway(
  t: TestContext,
  registryExtra = "",
  ttl = "3s",
): Promise<{ g: TestGateway; first: number }> {
  // freePort() is an ephemeral port (32768-60999 on Linux), so 20 more fit below 65536.
  const first = await freePort();
  const last = first + 19;
  const g = await startGateway(`listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
registry:
  store: memory
  ttl: ${ttl}
  deregisterAfter: 30s
${registryExtra}  types:
    svc: ${first}-${last}
    other: { range: ${last + 1}-${last + 1}, fallback: svc }
pools:
  svc:
    discover: { type: svc }
    upstreams: []
  app:
    upstreams: [{ url: "http://127.0.0.1:9" }]
routes:
  - { prefix: /svc/, pool: svc }
  - { prefix: /, pool: app }
`);
  t.after(() => g.stop());
  return { g, first };
}

async function allocations(g: TestGateway, query = ""): Promise<Allocation[]> {
  const res = await get(`${g.url}/registry/allocations${query}`, { headers: { "x-api-key": KEY } });
  assert.equal(res.status, 200, res.text);
  return res.json<{ allocations: Allocation[] }>().allocations;
}

/** Runs health rounds until the pool answers from `instance` (a discovered member needs its first pass). */
async function routedTo(g: TestGateway, instance: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    await g.gw.runHealthRound();
    const res = await get(`${g.url}/svc/doc`);
    if (res.status === 200 && res.json().instance === instance) return res.json();
    if (Date.now() > deadline) throw new Error(`not routed to ${instance}: ${res.status} ${res.text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

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

void test("ports commands: allocate, list, service, port, type, heartbeat, release, stats, types, cleanup", async (t) => {
  // A long lease: each CLI run costs a process start (seconds on a loaded machine).
  const { g, first } = await registryGateway(t, `  apiKey: ${KEY}\n`, "2m");
  const env = { GATEWAY_URL: g.url, GATEWAY_REGISTRY_KEY: KEY };

  const alloc = await cli(
    ["ports", "allocate", "cli-a", "svc", "--preferred-port", String(first), "--json"],
    env,
  );
  assert.equal(alloc.code, 0, alloc.stderr);
  const a = (JSON.parse(alloc.stdout) as { allocation: Allocation }).allocation;
  assert.equal(a.port, first);
  assert.equal(a.service_name, "cli-a");

  const text = await cli(
    ["ports", "allocate", "cli-b", "svc", "--host", "10.1.2.3", "--health-path", "/hz"],
    env,
  );
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^id\s+\S+$/m);
  assert.match(text.stdout, /^host\s+10\.1\.2\.3$/m);
  assert.match(text.stdout, /^port\s+\d+$/m);

  const list = await cli(["ports", "list"], env);
  assert.equal(list.code, 0, list.stderr);
  const rows = list.stdout.trimEnd().split("\n");
  assert.match(rows[0]!, /^NAME\s+TYPE\s+HOST\s+PORT\s+STATUS\s+HEALTH\s+LAST HEARTBEAT/);
  assert.equal(rows.length, 3);
  assert.match(
    rows[1]!,
    new RegExp(`^cli-a\\s+svc\\s+127\\.0\\.0\\.1\\s+${first}\\s+active\\s+\\w+\\s+\\d+s ago`),
  );
  assert.match(rows[2]!, /^cli-b\s+svc\s+10\.1\.2\.3\s+\d+\s+active/);

  const byName = await cli(["ports", "list", "--name", "cli-b", "--json"], env);
  assert.deepEqual(
    (JSON.parse(byName.stdout) as { allocations: Allocation[] }).allocations.map((x) => x.service_name),
    ["cli-b"],
  );
  const service = await cli(["ports", "service", "cli-a"], env);
  assert.match(service.stdout, new RegExp(`^cli-a\\s+svc\\s+127\\.0\\.0\\.1\\s+${first}`, "m"));
  const port = await cli(["ports", "port", String(first), "--json"], env);
  assert.equal(
    (JSON.parse(port.stdout) as { allocations: Allocation[] }).allocations[0]?.allocation_id,
    a.allocation_id,
  );
  const type = await cli(["ports", "type", "svc"], env);
  assert.equal(type.stdout.trimEnd().split("\n").length, 3);

  const beat = await cli(["ports", "heartbeat", a.allocation_id], env);
  assert.equal(beat.code, 0, beat.stderr);
  assert.match(beat.stdout, /^status\s+active$/m);

  const stats = await cli(["ports", "stats"], env);
  assert.equal(stats.code, 0, stats.stderr);
  assert.match(stats.stdout, /^total 2, active 2, expired 0$/m);
  assert.match(stats.stdout, /^svc\s+2\s+0\s+20\s+/m);
  const types = await cli(["ports", "types"], env);
  assert.match(types.stdout, new RegExp(`^svc\\s+${first}-${first + 19}\\s+-\\s+20\\s+`, "m"));
  assert.match(types.stdout, /^other\s+\d+-\d+\s+svc\s+/m);

  const release = await cli(["ports", "release", a.allocation_id], env);
  assert.equal(release.code, 0, release.stderr);
  assert.match(release.stdout, /^status\s+released$/m);
  const cleanup = await cli(["ports", "cleanup"], env);
  assert.equal(cleanup.code, 0, cleanup.stderr);
  assert.match(cleanup.stdout, /^removed 0 expired allocation\(s\)$/m);

  // The admin key works too, through its own variable; --url and --key beat the environment.
  const viaFlags = await cli(["ports", "list", "--url", g.url, "--key", KEY, "--json"], {
    GATEWAY_URL: "http://127.0.0.1:9",
  });
  assert.equal(viaFlags.code, 0, viaFlags.stderr);
});

void test("ports commands exit 1 with the registry's message when it refuses", async (t) => {
  // A long lease: each CLI run costs a process start (seconds on a loaded machine).
  const { g, first } = await registryGateway(t, `  apiKey: ${KEY}\n`, "2m");
  const env = { GATEWAY_URL: g.url, GATEWAY_REGISTRY_KEY: KEY };
  const held = await cli(["ports", "allocate", "holder", "svc", "--preferred-port", String(first)], env);
  assert.equal(held.code, 0, held.stderr);

  const taken = await cli(
    ["ports", "allocate", "x", "svc", "--preferred-port", String(first), "--required"],
    env,
  );
  assert.equal(taken.code, 1);
  assert.match(taken.stderr, /^error: .*\(port_unavailable, 409\)$/m);
  assert.equal(taken.stdout, "");

  const unknown = await cli(["ports", "heartbeat", "no-such-id"], env);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /\(not_found, 404\)/);

  const badName = await cli(["ports", "allocate", "Bad Name!", "svc"], env);
  assert.equal(badName.code, 1);
  assert.match(badName.stderr, /service_name.*\(bad_request, 400\)/);

  const noKey = await cli(["ports", "list", "--key", "wrong"], env);
  assert.equal(noKey.code, 1);
  assert.match(noKey.stderr, /\(unauthorized, 401\)/);

  const down = await cli(["ports", "stats", "--url", "http://127.0.0.1:9"], env);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^error: cannot reach http:\/\/127\.0\.0\.1:9\/registry\/stats/m);

  const badPort = await cli(["ports", "port", "70000"], env);
  assert.equal(badPort.code, 1);
  assert.match(badPort.stderr, /is not a port/);

  const refusedRun = portsRun(t, ["x", "nope", "--", "node", "-e", "process.exit(0)"], env);
  assert.equal((await refusedRun.exited).code, 1);
  assert.match(refusedRun.stderr(), /^error: .*\((bad_request|not_found), (400|404)\)$/m);
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
