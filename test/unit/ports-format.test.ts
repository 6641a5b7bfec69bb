// The pure parts of `gateway ports`: target and key resolution, argument parsing, exit codes, heartbeat pacing,
// the re-allocation request after a 404, and the tables.
import assert from "node:assert/strict";
import { constants } from "node:os";
import { test } from "node:test";
import {
  ago,
  exitCodeFor,
  formatAllocation,
  formatAllocations,
  formatStats,
  formatTypes,
  heartbeatDelay,
  parsePort,
  resolveTarget,
} from "../../src/cli/ports-format.ts";
import { reclaimRequest, transient } from "../../src/cli/ports-run.ts";
import { RegistryError, RegistryUnreachable, type Allocation } from "../../src/cli/registry-client.ts";

const NOW = Date.parse("2026-12-01T12:00:00.000Z");

function alloc(over: Partial<Allocation> = {}): Allocation {
  return {
    allocation_id: "k3j4h5",
    service_name: "pdf-worker",
    service_type: "pdf",
    host: "127.0.0.1",
    port: 8110,
    url: "http://127.0.0.1:8110",
    status: "active",
    health: "healthy",
    pools: ["pdf_services"],
    weight: 1,
    allocated_at: "2026-12-01T11:59:00.000Z",
    last_heartbeat: "2026-12-01T11:59:57.000Z",
    expires_at: "2026-12-01T12:00:12.000Z",
    ttl_ms: 15_000,
    pid: 42,
    metadata: {},
    ...over,
  };
}

void test("url and key: flags, then GATEWAY_URL / GATEWAY_REGISTRY_KEY, then GATEWAY_ADMIN_KEY; empty is unset", () => {
  assert.deepEqual(resolveTarget({}, {}), { url: "http://127.0.0.1:8002", key: undefined });
  const env = { GATEWAY_URL: "http://gw:9000", GATEWAY_REGISTRY_KEY: "reg", GATEWAY_ADMIN_KEY: "adm" };
  assert.deepEqual(resolveTarget({}, env), { url: "http://gw:9000", key: "reg" });
  assert.deepEqual(resolveTarget({ url: "http://x:1", key: "k" }, env), { url: "http://x:1", key: "k" });
  assert.equal(resolveTarget({}, { GATEWAY_REGISTRY_KEY: "", GATEWAY_ADMIN_KEY: "adm" }).key, "adm");
  assert.equal(resolveTarget({}, { GATEWAY_URL: "" }).url, "http://127.0.0.1:8002");
});

void test("ports are whole numbers 1-65535", () => {
  assert.equal(parsePort("8110"), 8110);
  assert.equal(parsePort("65535"), 65535);
  for (const bad of ["0", "65536", "-1", "81.5", "http", "", "1e3", "123456"]) {
    assert.throws(() => parsePort(bad), /is not a port/, bad);
  }
});

void test("exit code: the child's code, or 128 + the signal's number", () => {
  assert.equal(exitCodeFor(0, null), 0);
  assert.equal(exitCodeFor(3, null), 3);
  assert.equal(exitCodeFor(null, "SIGTERM"), 128 + constants.signals.SIGTERM);
  assert.equal(exitCodeFor(null, "SIGINT"), 130);
  assert.equal(exitCodeFor(null, "SIGKILL"), 137);
});

void test("heartbeats come every third of the lease, never faster than 50 ms", () => {
  assert.equal(heartbeatDelay(15_000), 5_000);
  assert.equal(heartbeatDelay(1_000), 333);
  assert.equal(heartbeatDelay(30), 50);
});

void test("after a 404 the wrapper asks for the very port its child listens on, claiming it", () => {
  const original = { service_name: "w", service_type: "pdf", health_path: "/h", preferred_port: 9000 };
  assert.deepEqual(reclaimRequest(original, { host: "10.0.0.5", port: 8113 }), {
    service_name: "w",
    service_type: "pdf",
    health_path: "/h",
    host: "10.0.0.5",
    preferred_port: 8113,
    required: true,
    claim: true,
  });
});

void test("only no answer and 5xx (store_unavailable) are worth waiting out", () => {
  assert.equal(transient(new RegistryUnreachable("down")), true);
  assert.equal(transient(new RegistryError(503, "store_unavailable", "redis down")), true);
  assert.equal(transient(new RegistryError(409, "range_exhausted", "full")), false);
  assert.equal(transient(new RegistryError(400, "bad_request", "service_name: bad")), false);
  assert.equal(transient(new Error("other")), false);
});

void test("ages read as seconds, minutes, hours", () => {
  assert.equal(ago("2026-12-01T11:59:57.000Z", NOW), "3s ago");
  assert.equal(ago("2026-12-01T11:55:00.000Z", NOW), "5m ago");
  assert.equal(ago("2026-12-01T09:00:00.000Z", NOW), "3h ago");
  assert.equal(ago("2026-12-01T12:00:01.000Z", NOW), "0s ago", "a clock a little ahead is not negative");
  assert.equal(ago(null, NOW), "-");
});

void test("list table: the contract's columns, sorted by name, host, port", () => {
  const text = formatAllocations(
    [
      alloc({ service_name: "ml", service_type: "ml", port: 8300, pools: [], health: "unknown" }),
      alloc({ port: 8111, allocation_id: "b", status: "expired", health: "unhealthy" }),
      alloc(),
    ],
    NOW,
  );
  const lines = text.trimEnd().split("\n");
  assert.match(lines[0]!, /^NAME\s+TYPE\s+HOST\s+PORT\s+STATUS\s+HEALTH\s+LAST HEARTBEAT\s+POOLS\s+ID$/);
  assert.match(lines[1]!, /^ml\s+ml\s+127\.0\.0\.1\s+8300\s+active\s+unknown\s+3s ago\s+-\s+k3j4h5$/);
  assert.match(
    lines[2]!,
    /^pdf-worker\s+pdf\s+127\.0\.0\.1\s+8110\s+active\s+healthy\s+3s ago\s+pdf_services/,
  );
  assert.match(lines[3]!, /^pdf-worker\s+pdf\s+127\.0\.0\.1\s+8111\s+expired\s+unhealthy/);
  assert.equal(formatAllocations([], NOW), "no allocations\n");
});

void test("one allocation, stats and types", () => {
  const one = formatAllocation(alloc());
  assert.match(one, /^id\s+k3j4h5$/m);
  assert.match(one, /^port\s+8110$/m);
  assert.match(one, /^url\s+http:\/\/127\.0\.0\.1:8110$/m);
  const stats = formatStats({
    total: 3,
    active: 2,
    expired: 1,
    by_type: {
      pdf: { active: 2, expired: 1, capacity: 10, utilization: 0.3 },
      dynamic: { active: 0, expired: 0, capacity: 2000, utilization: 0 },
      full: { active: 3, expired: 0, capacity: 2, utilization: 1.5 },
      none: { active: 0, expired: 0, capacity: 0, utilization: null },
    },
  });
  assert.match(stats, /^total 3, active 2, expired 1$/m);
  assert.match(stats, /^dynamic\s+0\s+0\s+2000\s+0\.0%$/m);
  assert.match(stats, /^pdf\s+2\s+1\s+10\s+30\.0%$/m);
  assert.match(stats, /^full\s+3\s+0\s+2\s+150\.0%$/m, "a fallback's overflow passes 100 %");
  assert.match(stats, /^none\s+0\s+0\s+0\s+-$/m);
  const types = formatTypes({
    pdf: { range: "8110-8119", fallback: "dynamic", capacity: 10, allocated: 3, free: 7 },
    ml: { range: "8300-8499", fallback: null, capacity: 200, allocated: 0, free: 200 },
  });
  assert.match(types, /^ml\s+8300-8499\s+-\s+200\s+0\s+200$/m);
  assert.match(types, /^pdf\s+8110-8119\s+dynamic\s+10\s+3\s+7$/m);
});
