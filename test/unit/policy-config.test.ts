// Policy keys of gateway.yaml: defaults, plain keys digested at load, and every mistake reported with its position.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, formatIssue, loadConfigText } from "../../src/config/load.ts";
import { sha256Hex } from "../../src/policy/api-keys.ts";
import { printableConfig } from "../../src/cli/print-config.ts";

const BASE = `pools:
  app: { upstreams: [{ url: "http://127.0.0.1:9" }] }
`;

function errors(yaml: string): string[] {
  try {
    loadConfigText(yaml, "g.yaml", {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map(formatIssue);
    throw err;
  }
  return [];
}

test("policies resolve with their defaults; a plain key is held only as its digest", () => {
  const c = loadConfigText(
    `${BASE}routes: [{ prefix: /, pool: app, policies: [p] }]
trustedProxies: [10.0.0.0/8]
policies:
  p:
    cors: { origins: [https://a.example] }
    auth: { apiKeys: [{ name: web, key: s3cret-key }] }
    rateLimit: { rate: 10/m, burst: 2, key: "header:X-Tenant" }
`,
    "g.yaml",
    {},
  );
  const p = c.policies.get("p")!;
  assert.deepEqual(p.cors, {
    origins: ["https://a.example"],
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    headers: ["Authorization", "Content-Type"],
    exposeHeaders: [],
    credentials: false,
    maxAge: 600_000,
  });
  assert.deepEqual(p.auth!.apiKeys, [{ name: "web", sha256: sha256Hex("s3cret-key") }]);
  assert.ok(!JSON.stringify([...c.policies.values()]).includes("s3cret-key"));
  assert.deepEqual(p.rateLimit, {
    points: 10,
    window: 60_000,
    burst: 2,
    key: { kind: "header", name: "x-tenant" },
    store: "memory",
    maxKeys: 100_000,
  });
  assert.deepEqual(c.routes[0]!.policies, ["p"]);
  assert.deepEqual(c.trustedProxies, ["10.0.0.0/8"]);
});

test("an unknown policy name on a route is an error at its position", () => {
  assert.deepEqual(errors(`${BASE}routes:\n  - { prefix: /, pool: app, policies: [nope] }\n`), [
    'g.yaml:4:40: routes.0.policies.0: unknown policy "nope"',
  ]);
});

test("config errors: * with credentials, alg none, key kinds mixed, http JWKS off loopback, bad rate, store redis without redis", () => {
  const out = errors(`${BASE}routes: [{ prefix: /, pool: app }]
trustedProxies: [10.0.0.0/33]
policies:
  a: { cors: { origins: ["*"], credentials: true } }
  b: { auth: { jwt: { secret: x, algorithms: [none] } } }
  c: { auth: { jwt: { secret: x, algorithms: [RS256] } } }
  d: { auth: { jwt: { jwksUrl: "http://idp.example/jwks", algorithms: [RS256] } } }
  e: { rateLimit: { rate: 10/day } }
  f: { rateLimit: { rate: 10/s, store: redis } }
  g: { auth: { apiKeys: [{ name: k, key: "" }] } }
  h: { auth: { jwt: { algorithms: [RS256] } } }
  i: {}
`);
  const text = out.join("\n");
  for (const expected of [
    "trustedProxies.0: trustedProxies entries must be addresses or CIDR blocks",
    'policies.a.cors.credentials: credentials cannot be used with origins ["*"]',
    "policies.b.auth.jwt.algorithms.0: algorithms must be among HS256",
    "policies.c.auth.jwt.algorithms: a secret verifies HS256/384/512 only",
    "policies.d.auth.jwt.jwksUrl: jwksUrl must be an https:// URL (http:// only to a loopback host)",
    "policies.e.rateLimit.rate: rate must look like 100/s, 600/m or 1000/h",
    "policies.f.rateLimit.store: store: redis needs the top-level redis key",
    "policies.g.auth.apiKeys.0.key: key must not be empty",
    "policies.h.auth.jwt: jwt needs exactly one of secret, publicKey, jwksUrl",
    "policies.i: a policy needs cors, auth or rateLimit",
  ]) {
    assert.ok(text.includes(expected), `missing: ${expected}\n${text}`);
  }
  // Every line has FILE:LINE:COL.
  for (const line of out) assert.match(line, /^g\.yaml:\d+:\d+: /);
});

test("no error message repeats a secret", () => {
  const out = errors(`${BASE}routes: [{ prefix: /, pool: app }]
policies:
  b: { auth: { jwt: { secret: very-secret-value, algorithms: [RS256] } } }
`);
  assert.ok(out.length > 0);
  assert.ok(!out.join("\n").includes("very-secret-value"));
});

test("sticky on a pool: cookie name, a secret of 16 characters or more, previous secrets, maxAge", () => {
  const c = loadConfigText(
    `pools:
  app:
    upstreams: [{ url: "http://127.0.0.1:9" }]
    sticky: { cookie: gw_app, secret: 0123456789abcdef, previousSecrets: [old-secret], maxAge: 1h }
routes: [{ prefix: /, pool: app }]
`,
    "g.yaml",
    {},
  );
  assert.deepEqual(c.pools[0]!.sticky, {
    cookie: "gw_app",
    secret: "0123456789abcdef",
    previousSecrets: ["old-secret"],
    maxAge: 3_600_000,
  });
  const bad = errors(`pools:
  app:
    upstreams: [{ url: "http://127.0.0.1:9" }]
    sticky: { cookie: "a b", secret: short }
routes: [{ prefix: /, pool: app }]
`);
  assert.equal(bad.length, 2);
});

test("registry.policies: names must exist, and an auth policy there is a config error", () => {
  const out = errors(`${BASE}routes: [{ prefix: /, pool: app }]
policies:
  keys: { auth: { apiKeys: [{ name: k, key: secret-value }] } }
  limit: { rateLimit: { rate: 5/s } }
registry:
  policies: [limit, keys, missing]
`);
  const text = out.join("\n");
  assert.match(
    text,
    /registry\.policies\.1: policy "keys" has auth: the registry API takes cors and rateLimit/,
  );
  assert.match(text, /registry\.policies\.2: unknown policy "missing"/);
  assert.ok(!text.includes("secret-value"));
});

test("gateway check --print shows the policies with every secret redacted", () => {
  const c = loadConfigText(
    `pools:
  app:
    upstreams: [{ url: "http://127.0.0.1:9" }]
    sticky: { cookie: gw, secret: sticky-secret-0123456, previousSecrets: [old-sticky-secret-1] }
routes: [{ prefix: /, pool: app, policies: [p] }]
policies:
  p:
    auth:
      apiKeys: [{ name: web, key: plain-api-key-value }]
      jwt: { secret: jwt-secret-value-0123, algorithms: [HS256] }
    rateLimit: { rate: 5/s }
`,
    "g.yaml",
    {},
  );
  const text = printableConfig(c);
  for (const secret of [
    "sticky-secret-0123456",
    "old-sticky-secret-1",
    "plain-api-key-value",
    "jwt-secret-value-0123",
  ]) {
    assert.ok(!text.includes(secret), secret);
  }
  const shown = JSON.parse(text) as { policies: Record<string, { rateLimit: { points: number } }> };
  assert.equal(shown.policies.p!.rateLimit.points, 5);
});
