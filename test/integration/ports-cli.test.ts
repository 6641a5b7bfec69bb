// `gateway ports ...` against a real gateway with the registry on (memory store): every command, and its errors
// (exit 1 with the server's message). `ports run` has its own file (ports-run.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Allocation } from "../../src/cli/registry-client.ts";
import { KEY, cli, portsRun, registryGateway } from "../helpers/ports.ts";

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
    ["ports", "allocate", "cli-b", "svc", "--host", "127.0.0.2", "--health-path", "/hz"],
    env,
  );
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^id\s+\S+$/m);
  assert.match(text.stdout, /^host\s+127\.0\.0\.2$/m);
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
  assert.match(rows[2]!, /^cli-b\s+svc\s+127\.0\.0\.2\s+\d+\s+active/);

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
