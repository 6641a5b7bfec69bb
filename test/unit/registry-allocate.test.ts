// Port choice without sockets (preferred, required, claim, fallback, reserved, per host, exhaustion), the API's
// validation naming the field, and the registry's config checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  capacity,
  choosePort,
  findOverlap,
  hostKey,
  parseRange,
  rangeChain,
  type TypeTable,
} from "../../src/registry/allocate.ts";
import { MemoryStore } from "../../src/registry/store-memory.ts";
import type { AllocateInput } from "../../src/registry/store.ts";
import { allocateBody, authorizeRegistry, describeIssue } from "../../src/server/registry-api.ts";
import { ConfigError, loadConfigText } from "../../src/config/load.ts";

const types: TypeTable = new Map([
  ["pdf", { range: { first: 8110, last: 8112 }, fallback: "dynamic" }],
  ["dynamic", { range: { first: 10000, last: 10001 } }],
  ["ml", { range: { first: 8300, last: 8301 } }],
]);
const none = () => false;

test("the first free port of the type's range, then of its fallback; then range_exhausted", () => {
  const taken = new Set<number>();
  const take = () => {
    const c = choosePort({ type: "pdf" }, types, (p) => taken.has(p));
    if (c.ok) taken.add(c.port);
    return c;
  };
  assert.deepEqual(take(), { ok: true, port: 8110, range: "pdf" });
  assert.deepEqual(take(), { ok: true, port: 8111, range: "pdf" });
  assert.deepEqual(take(), { ok: true, port: 8112, range: "pdf" });
  assert.deepEqual(take(), { ok: true, port: 10000, range: "dynamic" });
  assert.deepEqual(take(), { ok: true, port: 10001, range: "dynamic" });
  assert.deepEqual(take(), { ok: false, error: "range_exhausted" });
  // Without a fallback, a full range is exhausted at once.
  assert.deepEqual(
    choosePort({ type: "ml" }, types, (p) => p === 8300 || p === 8301),
    { ok: false, error: "range_exhausted" },
  );
  assert.deepEqual(choosePort({ type: "nope" }, types, none), { ok: false, error: "unknown_type" });
});

test("a preferred port is honoured when free, even outside the range; taken, it falls back or is a 409 when required", () => {
  assert.deepEqual(choosePort({ type: "pdf", preferred: 9999 }, types, none), {
    ok: true,
    port: 9999,
    range: "pdf",
  });
  const taken = (p: number) => p === 8111;
  assert.deepEqual(choosePort({ type: "pdf", preferred: 8111 }, types, taken), {
    ok: true,
    port: 8110,
    range: "pdf",
  });
  assert.deepEqual(choosePort({ type: "pdf", preferred: 8111, required: true }, types, taken), {
    ok: false,
    error: "port_unavailable",
  });
});

test("fallback chains stop at a cycle; capacity leaves out reserved ports; overlapping ranges are found", () => {
  const cyclic: TypeTable = new Map([
    ["a", { range: { first: 1, last: 1 }, fallback: "b" }],
    ["b", { range: { first: 2, last: 2 }, fallback: "a" }],
  ]);
  assert.deepEqual(rangeChain(cyclic, "a"), ["a", "b"]);
  assert.deepEqual(
    choosePort({ type: "a" }, cyclic, () => true),
    { ok: false, error: "range_exhausted" },
  );
  assert.equal(capacity({ first: 8110, last: 8119 }, new Set([8110, 8002, 8119])), 8);
  assert.deepEqual(parseRange("8110-8119"), { first: 8110, last: 8119 });
  assert.equal(parseRange("8119-8110"), undefined);
  assert.equal(parseRange("0-10"), undefined);
  assert.deepEqual(
    findOverlap([
      { type: "a", range: { first: 1, last: 10 } },
      { type: "b", range: { first: 11, last: 20 } },
      { type: "c", range: { first: 20, last: 30 } },
    ]),
    ["b", "c"],
  );
});

test("ports are per host; loopback names share one port space", () => {
  assert.equal(hostKey("localhost"), "127.0.0.1");
  assert.equal(hostKey("::1"), "127.0.0.1");
  assert.equal(hostKey("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(hostKey("::ffff:10.0.0.5"), "10.0.0.5");
  assert.equal(hostKey("Worker-A.local"), "worker-a.local");
});

function req(host: string, request: AllocateInput["request"], exclude: number[] = []): AllocateInput {
  return {
    record: {
      serviceName: "s",
      serviceType: request.type,
      host,
      weight: 1,
      pid: null,
      metadata: {},
      ttl: 1_000,
    },
    request,
    types,
    exclude,
  };
}

test("the memory store: the same port on two hosts, reserved and excluded ports skipped, required 409", async () => {
  const store = new MemoryStore(() => 0);
  const a = await store.allocate(req("10.0.0.1", { type: "ml" }));
  const b = await store.allocate(req("10.0.0.2", { type: "ml" }));
  assert.ok(a.ok && b.ok);
  assert.equal(a.record.port, 8300);
  assert.equal(b.record.port, 8300, "8300 on another host does not conflict");
  const c = await store.allocate(req("localhost", { type: "ml" }));
  const d = await store.allocate(req("127.0.0.1", { type: "ml" }));
  assert.ok(c.ok && d.ok);
  assert.deepEqual([c.record.port, d.record.port], [8300, 8301], "localhost and 127.0.0.1 are one host");
  // Reserved ports, static upstreams and the gateway's listeners come in as `exclude`.
  const e = await store.allocate(req("10.0.0.9", { type: "pdf" }, [8110, 8111]));
  assert.ok(e.ok);
  assert.equal(e.record.port, 8112);
  assert.deepEqual(
    await store.allocate(req("10.0.0.9", { type: "pdf", preferred: 8110, required: true }, [8110])),
    {
      ok: false,
      error: "port_unavailable",
    },
  );
  assert.deepEqual(await store.allocate(req("10.0.0.1", { type: "ml", preferred: 8300, required: true })), {
    ok: false,
    error: "port_unavailable",
  });
  assert.deepEqual(await store.allocate(req("10.0.0.1", { type: "ml" }, [8301])), {
    ok: false,
    error: "range_exhausted",
  });
  // Ids are opaque and distinct.
  assert.notEqual(a.record.id, b.record.id);
  assert.match(a.record.id, /^[A-Za-z0-9_-]{16}$/);
});

test("validation names the field: unknown fields, types, the service_name pattern, metadata limits", () => {
  const check = (body: unknown) => {
    const r = allocateBody.safeParse(body);
    return r.success ? "ok" : describeIssue(r.error);
  };
  assert.equal(check({ service_name: "pdf-worker.1", service_type: "pdf" }), "ok");
  assert.equal(check({ service_name: "pdf", service_type: "pdf", extra: true }), "extra: unknown field");
  assert.match(check({ service_name: "-pdf", service_type: "pdf" }), /^service_name: must match/);
  assert.match(check({ service_name: "a".repeat(64), service_type: "pdf" }), /^service_name: /);
  assert.equal(check({ service_name: "a".repeat(63), service_type: "pdf" }), "ok");
  assert.equal(check({ service_type: "pdf" }), "service_name: is required");
  assert.match(check({ service_name: "p", service_type: "pdf", preferred_port: 70000 }), /^preferred_port: /);
  assert.match(check({ service_name: "p", service_type: "pdf", required: "yes" }), /^required: /);
  assert.match(check({ service_name: "p", service_type: "pdf", host: "a/b" }), /^host: /);
  assert.equal(check({ service_name: "p", service_type: "pdf", host: "fe80::1" }), "ok");
  assert.match(check({ service_name: "p", service_type: "pdf", health_path: "health" }), /^health_path: /);
  const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"]));
  assert.match(check({ service_name: "p", service_type: "pdf", metadata: many }), /^metadata: /);
  assert.match(check({ service_name: "p", service_type: "pdf", metadata: { a: 1 } }), /^metadata\.a: /);
});

test("registry auth: either key when set; loopback only when neither is", () => {
  const h = (v: string) => ({ "x-api-key": v });
  assert.equal(authorizeRegistry("10.0.0.1", [undefined, undefined], {}), "forbidden");
  assert.equal(authorizeRegistry("127.0.0.1", [undefined, undefined], {}), "ok");
  assert.equal(authorizeRegistry("127.0.0.1", ["reg", undefined], {}), "unauthorized");
  assert.equal(authorizeRegistry("10.0.0.1", ["reg", "adm"], h("reg")), "ok");
  assert.equal(authorizeRegistry("10.0.0.1", ["reg", "adm"], h("adm")), "ok");
  assert.equal(authorizeRegistry("10.0.0.1", ["reg", "adm"], { authorization: "Bearer adm" }), "ok");
  assert.equal(authorizeRegistry("10.0.0.1", ["reg", "adm"], h("nope")), "unauthorized");
});

function configErrors(yaml: string): string[] {
  try {
    loadConfigText(yaml, "gw.yaml", {});
    return [];
  } catch (err) {
    if (err instanceof ConfigError)
      return err.issues.map((i) => `${i.line}:${i.col}: ${i.path}: ${i.message}`);
    throw err;
  }
}

test("config: overlapping ranges are an error with their position; discover pools may start empty", () => {
  const base = `pools:
  pdf:
    discover: { type: pdf }
routes:
  - { prefix: /, pool: pdf }
`;
  assert.deepEqual(
    configErrors(`registry:
  types:
    pdf: { range: 8110-8119, fallback: dynamic }
    ml: 8115-8120
    dynamic: 10000-11999
${base}`),
    ["4:9: registry.types.ml: range 8115-8120 overlaps pdf (8110-8119)"],
  );
  assert.deepEqual(
    configErrors(`registry:
  types:
    pdf: { range: 8110-8119, fallback: nope }
${base}`),
    ['3:40: registry.types.pdf.fallback: unknown type "nope"'],
  );
  assert.deepEqual(
    configErrors(`registry:
  types:
    pdf: 8119-8110
${base}`).map((e) => e.replace(/^\d+:\d+: /, "")),
    ["registry.types.pdf: a port range runs from a lower to a higher port, within 1-65535"],
  );
  assert.deepEqual(configErrors(base), ["3:15: pools.pdf.discover: discover needs a registry section"]);
  const ok = loadConfigText(
    `redis: { url: "unix:///tmp/r.sock" }
policies:
  registry-api: { rateLimit: { rate: 10/s } }
registry:
  ttl: 5s
  reserved: [8002]
  policies: [registry-api]
  types:
    pdf: 8110-8119
${base}`,
    "/etc/gw/gateway.yaml",
    { GATEWAY_REGISTRY_KEY: "k" },
  );
  assert.equal(ok.pools[0]!.upstreams.length, 0);
  assert.deepEqual(ok.pools[0]!.discover, { type: "pdf" });
  assert.equal(ok.registry!.ttl, 5_000);
  assert.equal(ok.registry!.deregisterAfter, 60_000);
  assert.equal(ok.registry!.apiKey, "k");
  assert.equal(ok.registry!.file, "/etc/gw/registry.json");
  assert.deepEqual(ok.registry!.types.pdf, { range: { first: 8110, last: 8119 } });
  assert.equal(ok.redis.keyPrefix, "gateway");
  assert.deepEqual(
    configErrors(`policies:
  guard: { auth: { apiKeys: [{ name: a, key: b }] } }
registry:
  policies: [guard, nope]
  types:
    pdf: 8110-8119
${base}`).map((e) => e.replace(/^\d+:\d+: /, "")),
    [
      'registry.policies.0: policy "guard" has auth: the registry API takes cors and rateLimit policies only (it has its own key)',
      'registry.policies.1: unknown policy "nope"',
    ],
  );
  assert.match(
    configErrors(`redis: { url: "http://x" }\n${base}`).join(),
    /redis\.url: url must be redis:\/\/, rediss:\/\/ or unix:\/\/\/path/,
  );
});
