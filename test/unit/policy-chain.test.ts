// Compiled chains without sockets: the contract's order whatever the listed order, the last cors, every auth,
// stacked limits, credential headers, and policy state kept over a reload when the policy did not change.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { Writable } from "node:stream";
import { loadConfigText } from "../../src/config/load.ts";
import { createLogger } from "../../src/log/log.ts";
import { PolicySet, type PolicyExchange } from "../../src/policy/chain.ts";

const quiet = createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });

const YAML = `
pools:
  app: { upstreams: [{ url: "http://127.0.0.1:9" }] }
routes:
  - { prefix: /, pool: app, policies: [limit-b, keys, cors-a, limit-a, cors-b] }
policies:
  cors-a: { cors: { origins: ["https://a.example"] } }
  cors-b: { cors: { origins: ["https://b.example"] } }
  keys:
    auth:
      apiKeys:
        - { name: web, key: web-key-123 }
        - { name: cli, sha256: ${"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".toUpperCase()} }
  limit-a: { rateLimit: { rate: 3/s } }
  limit-b: { rateLimit: { rate: 2/m, key: subject } }
`;

function setup(yaml = YAML, previous?: PolicySet) {
  const config = loadConfigText(yaml, "gateway.yaml", {});
  const rejected: string[] = [];
  const set = new PolicySet(
    config,
    { log: quiet, rejected: (r, p, why) => rejected.push(`${r} ${p} ${why}`) },
    previous,
  );
  const route = config.routes[0]!;
  return { set, chain: set.chain(route.id, route.policies ?? []), rejected };
}

function req(method: string, headers: Record<string, string>): IncomingMessage {
  return { method, headers: { ...headers } } as unknown as IncomingMessage;
}
const ex = (): PolicyExchange => ({ client: "198.51.100.1", subject: undefined, responseHeaders: [] });

test("a preflight is answered before auth and limits, with the last listed cors", async () => {
  const { chain, rejected } = setup();
  const answer = await chain.request(
    req("OPTIONS", { origin: "https://b.example", "access-control-request-method": "POST" }),
    ex(),
  );
  assert.equal(answer?.kind, "preflight");
  assert.equal(Object.fromEntries(answer.headers)["access-control-allow-origin"], "https://b.example");
  const fromA = await chain.request(
    req("OPTIONS", { origin: "https://a.example", "access-control-request-method": "GET" }),
    ex(),
  );
  assert.equal(Object.fromEntries(fromA!.headers)["access-control-allow-origin"], undefined);
  assert.deepEqual(rejected, []);
});

test("auth runs before the limits: a request without a key is 401 and spends no budget", async () => {
  const { chain, rejected, set } = setup();
  for (let i = 0; i < 5; i++) {
    const e = ex();
    const a = await chain.request(req("GET", { origin: "https://b.example" }), e);
    assert.equal(a?.kind, "reject");
    assert.equal(a.kind === "reject" && a.code, "unauthorized");
    assert.deepEqual(Object.fromEntries(a.headers), { "www-authenticate": "Bearer" });
    // CORS headers are already on the exchange, so the 401 carries them.
    assert.equal(Object.fromEntries(e.responseHeaders)["access-control-allow-origin"], "https://b.example");
  }
  assert.equal(rejected.length, 5);
  assert.equal(rejected[0], "/ keys unauthorized");
  assert.equal(storedKeysOf(set), 0);
});

function storedKeysOf(set: PolicySet): number {
  const m = set.rateLimit("limit-a")!.memory as unknown as {
    _memoryStorage: { _storage: Map<string, unknown> };
  };
  return m._memoryStorage._storage.size;
}

test("a key in X-API-Key or Authorization passes, sets X-Auth-Subject and is not passed on", async () => {
  const { chain } = setup();
  const r1 = req("GET", { "x-api-key": "web-key-123", "x-auth-subject": "admin" });
  const e1 = ex();
  assert.equal(await chain.request(r1, e1), undefined);
  assert.equal(r1.headers["x-auth-subject"], "web");
  assert.equal(r1.headers["x-api-key"], undefined);
  const r2 = req("GET", { authorization: "Bearer test" });
  assert.equal(await chain.request(r2, ex()), undefined);
  assert.equal(r2.headers["x-auth-subject"], "cli");
  assert.equal(r2.headers.authorization, undefined);
  // Both limits answered headers, in the order the chain ran them.
  const h = Object.fromEntries(e1.responseHeaders);
  assert.equal(h["ratelimit-policy"], '"limit-b";q=2;w=60, "limit-a";q=3;w=1');
  assert.match(h.ratelimit!, /^"limit-b";r=1;t=60, "limit-a";r=2;t=1$/);
});

test("a client-sent X-Auth-Subject is removed even on a route without policies", () => {
  const { set } = setup();
  const r = req("GET", { "x-auth-subject": "root" });
  assert.equal(set.chain("/plain", []).request(r, ex()), undefined);
  assert.equal(r.headers["x-auth-subject"], undefined);
});

test("stacked limits: each has its own budget, the tighter one rejects with Retry-After", async () => {
  const { chain, rejected } = setup();
  const answers = [];
  for (let i = 0; i < 3; i++)
    answers.push(await chain.request(req("GET", { "x-api-key": "web-key-123" }), ex()));
  // limit-b (2/m, by subject) rejects the third.
  assert.deepEqual(
    answers.map((a) => a?.kind ?? "pass"),
    ["pass", "pass", "reject"],
  );
  const last = answers[2]!;
  assert.equal(last.kind === "reject" && last.code, "rate_limited");
  assert.equal(last.kind === "reject" && last.policy, "limit-b");
  const retry = Number(Object.fromEntries(last.headers)["retry-after"]);
  assert.ok(retry >= 1 && retry <= 60);
  assert.deepEqual(rejected, ["/ limit-b rate_limited"]);
});

test("a reload keeps the counters of an unchanged limit and starts a changed one afresh", async () => {
  const first = setup();
  for (let i = 0; i < 2; i++) await first.chain.request(req("GET", { "x-api-key": "web-key-123" }), ex());
  const same = setup(YAML, first.set);
  assert.equal(same.set.rateLimit("limit-b"), first.set.rateLimit("limit-b"));
  assert.equal((await same.chain.request(req("GET", { "x-api-key": "web-key-123" }), ex()))?.kind, "reject");
  const changed = setup(YAML.replace("rate: 2/m", "rate: 5/m"), first.set);
  assert.notEqual(changed.set.rateLimit("limit-b"), first.set.rateLimit("limit-b"));
  assert.equal(changed.set.auth("keys"), first.set.auth("keys"));
  assert.equal(await changed.chain.request(req("GET", { "x-api-key": "web-key-123" }), ex()), undefined);
});
