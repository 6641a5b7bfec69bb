// Compiled chains without sockets: the contract's order whatever the listed order, the last cors, every auth,
// stacked limits, credential headers, and policy state kept over a reload when the policy did not change.
import { test } from "node:test";
import { createHmac } from "node:crypto";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { Writable } from "node:stream";
import { loadConfigText } from "../../src/config/load.ts";
import { createLogger } from "../../src/log/log.ts";
import { PolicySet, type HeaderBag, type PolicyExchange, type RouteChain } from "../../src/policy/chain.ts";
import { storedKeys } from "../../src/policy/rate-limit.ts";

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

/** Runs a chain's request phase, then its response phase on the answer (its own, or an upstream's 200). */
async function run(
  chain: RouteChain,
  method: string,
  headers: Record<string, string>,
  upstream: HeaderBag = {},
) {
  const dropped: string[] = [];
  const ex: PolicyExchange = {
    req: {
      method,
      headers: { ...headers },
      socket: { remoteAddress: "198.51.100.1" },
    } as unknown as IncomingMessage,
    client: "198.51.100.1",
    subject: undefined,
    target: undefined,
    policyState: undefined,
    dropUpstreamHeader: (n) => dropped.push(n),
  };
  const answer = await chain.request?.(ex);
  const out: HeaderBag = answer ? { ...answer.headers } : { ...upstream };
  const status = !answer
    ? 200
    : "error" in answer
      ? answer.error === "unauthorized"
        ? 401
        : 429
      : answer.status;
  chain.response?.(ex, status, out);
  return { answer, status, headers: out as Record<string, string>, dropped, subject: ex.subject };
}

test("a preflight is answered 204 before auth and limits, with the last listed cors", async () => {
  const { chain, rejected } = setup();
  const r = await run(chain, "OPTIONS", {
    origin: "https://b.example",
    "access-control-request-method": "POST",
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers["access-control-allow-origin"], "https://b.example");
  assert.equal(r.headers["ratelimit"], undefined);
  const fromA = await run(chain, "OPTIONS", {
    origin: "https://a.example",
    "access-control-request-method": "GET",
  });
  assert.equal(fromA.status, 204);
  assert.equal(fromA.headers["access-control-allow-origin"], undefined);
  assert.deepEqual(rejected, []);
});

test("auth runs before the limits: a request without a key is 401 (with CORS headers) and spends no budget", async () => {
  const { chain, rejected, set } = setup();
  for (let i = 0; i < 5; i++) {
    const r = await run(chain, "GET", { origin: "https://b.example" });
    assert.equal(r.status, 401);
    assert.equal(r.headers["www-authenticate"], "Bearer");
    assert.equal(r.headers["access-control-allow-origin"], "https://b.example");
    assert.equal(r.headers.vary, "Origin");
  }
  assert.equal(rejected.length, 5);
  assert.equal(rejected[0], "/ keys unauthorized");
  assert.equal(storedKeys(set.rateLimit("limit-a")!.memory!), 0);
});

test("a key in X-API-Key or Authorization passes, names the subject and is kept from the upstream", async () => {
  const { chain } = setup();
  const r1 = await run(chain, "GET", { "x-api-key": "web-key-123" });
  assert.equal(r1.answer, undefined);
  assert.equal(r1.subject, "web");
  assert.deepEqual(r1.dropped, ["x-api-key"]);
  const r2 = await run(chain, "GET", { authorization: "Bearer test" });
  assert.equal(r2.subject, "cli");
  assert.deepEqual(r2.dropped, ["x-api-key", "authorization"]);
  // Both limits answered headers, in the order the chain ran them.
  assert.equal(r1.headers["ratelimit-policy"], '"limit-b";q=2;w=60, "limit-a";q=3;w=1');
  assert.match(r1.headers.ratelimit!, /^"limit-b";r=1;t=60, "limit-a";r=2;t=1$/);
});

test("the upstream's Access-Control-* headers are replaced; its Vary is kept and extended", async () => {
  const { chain } = setup();
  const r = await run(
    chain,
    "GET",
    { "x-api-key": "web-key-123", origin: "https://b.example" },
    { "access-control-allow-origin": "*", "Access-Control-Allow-Methods": "PATCH", vary: "Accept-Encoding" },
  );
  assert.equal(r.headers["access-control-allow-origin"], "https://b.example");
  assert.equal(r.headers["Access-Control-Allow-Methods"], undefined);
  assert.equal(r.headers.vary, "Accept-Encoding, Origin");
});

test("a route without policies compiles to nothing", () => {
  const { set } = setup();
  assert.equal(set.compile({ id: "/plain", pool: "app" }), undefined);
});

test("stacked limits: each has its own budget, the tighter one rejects with Retry-After", async () => {
  const { chain, rejected } = setup();
  const rs = [];
  for (let i = 0; i < 3; i++) rs.push(await run(chain, "GET", { "x-api-key": "web-key-123" }));
  // limit-b (2/m, by subject) rejects the third.
  assert.deepEqual(
    rs.map((r) => r.status),
    [200, 200, 429],
  );
  const last = rs[2]!;
  assert.equal(last.answer && "error" in last.answer && last.answer.error, "rate_limited");
  const retry = Number(last.headers["retry-after"]);
  assert.ok(retry >= 1 && retry <= 60);
  assert.match(last.headers.ratelimit!, /^"limit-b";r=0;t=\d+$/);
  assert.deepEqual(rejected, ["/ limit-b rate_limited"]);
});

test("a reload keeps the counters of an unchanged limit and starts a changed one afresh", async () => {
  const first = setup();
  for (let i = 0; i < 2; i++) await run(first.chain, "GET", { "x-api-key": "web-key-123" });
  const same = setup(YAML, first.set);
  assert.equal(same.set.rateLimit("limit-b"), first.set.rateLimit("limit-b"));
  assert.equal((await run(same.chain, "GET", { "x-api-key": "web-key-123" })).status, 429);
  const changed = setup(YAML.replace("rate: 2/m", "rate: 5/m"), first.set);
  assert.notEqual(changed.set.rateLimit("limit-b"), first.set.rateLimit("limit-b"));
  assert.equal(changed.set.auth("keys"), first.set.auth("keys"));
  assert.equal((await run(changed.chain, "GET", { "x-api-key": "web-key-123" })).status, 200);
});

test("API keys and memory limits answer synchronously; only an unverified JWT makes the request phase wait", async () => {
  const secret = "chain-test-secret-0123456789-abcdef";
  const { chain } = setup(`
pools:
  app: { upstreams: [{ url: "http://127.0.0.1:9" }] }
routes:
  - { prefix: /, pool: app, policies: [edge, tok] }
policies:
  edge:
    cors: { origins: ["https://a.example"] }
    rateLimit: { rate: 100/s }
  tok:
    auth:
      apiKeys: [{ name: web, key: web-key-123 }]
      jwt: { secret: ${secret}, algorithms: [HS256] }
`);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 600 })}`;
  const token = `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
  const exchange = (headers: Record<string, string>): PolicyExchange => ({
    req: { method: "GET", headers, socket: { remoteAddress: "198.51.100.1" } } as unknown as IncomingMessage,
    client: "198.51.100.1",
    subject: undefined,
    target: undefined,
    policyState: undefined,
    dropUpstreamHeader: () => undefined,
  });
  const isPromise = (v: unknown) => typeof (v as { then?: unknown } | undefined)?.then === "function";

  const keyed = exchange({ origin: "https://a.example", "x-api-key": "web-key-123" });
  const v1 = chain.request!(keyed);
  assert.equal(isPromise(v1), false);
  assert.equal(v1, undefined);
  assert.equal(keyed.subject, "web");
  const h: HeaderBag = {};
  chain.response!(keyed, 200, h);
  assert.equal(h["access-control-allow-origin"], "https://a.example");
  assert.equal(h["ratelimit-policy"], '"edge";q=100;w=1');
  assert.match(String(h.ratelimit), /^"edge";r=99;t=1$/);

  assert.equal(isPromise(chain.request!(exchange({}))), false, "a 401 is decided at once too");

  // A token jose has not verified yet waits for it; once cached, the same token is decided at once.
  const cold = exchange({ authorization: `Bearer ${token}` });
  const v2 = chain.request!(cold);
  assert.equal(isPromise(v2), true);
  assert.equal(await v2, undefined);
  assert.equal(cold.subject, "alice");
  const warm = exchange({ authorization: `Bearer ${token}` });
  const v3 = chain.request!(warm);
  assert.equal(isPromise(v3), false);
  assert.equal(v3, undefined);
  assert.equal(warm.subject, "alice");
});
