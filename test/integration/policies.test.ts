// Edge policies on the real gateway: every 401 and 429 with its JSON body and headers, preflights that never reach
// the upstream, upstream CORS headers replaced, X-Auth-Subject spoofing, credentials kept from the upstream, no
// secret in the logs, a JWKS on 127.0.0.1, trustedProxies, WebSocket upgrades on a protected route.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { get, startGateway, type TestGateway } from "../helpers/gateway.ts";
import { keyPair, nowS, signJwt } from "../helpers/jwt.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const API_KEY = "k3y-for-the-panel-web-client";
const JWT_SECRET = "jwt-secret-for-integration-tests-0123456789";

function config(upstream: string, extra = ""): string {
  return `listen: 127.0.0.1:0
shutdownGrace: 2s
defaults:
  healthCheck: { interval: 60s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
  timeouts: { connect: 1s, response: 5s }
trustedProxies: [127.0.0.1/32]
policies:
  web:
    cors:
      origins: [https://panel.example.com]
      exposeHeaders: [X-Request-Id]
      credentials: true
  keys:
    auth:
      apiKeys: [{ name: panel-web, key: ${API_KEY} }]
  tokens:
    auth:
      jwt: { secret: ${JWT_SECRET}, issuer: https://auth.test, audience: panel, algorithms: [HS256] }
  per-minute:
    rateLimit: { rate: 3/m, key: subject }
${extra}
pools:
  app:
    upstreams: [{ url: ${upstream} }]
routes:
  - { prefix: /keys/, pool: app, policies: [keys, web] }
  - { prefix: /jwt/, pool: app, policies: [tokens, web] }
  - { prefix: /limited/, pool: app, policies: [per-minute, keys, web] }
  - { prefix: /open/, pool: app }
`;
}

async function setup(t: TestContext, extra = "", handler?: http.RequestListener) {
  const up = await FakeUpstream.start(handler ? { handler } : {});
  t.after(() => up.close());
  const gw = await startGateway(config(up.url, extra));
  t.after(() => gw.stop());
  return { up, gw };
}

const token = (over: Record<string, unknown> = {}) =>
  signJwt(
    { sub: "alice", iss: "https://auth.test", aud: "panel", exp: nowS() + 300, ...over },
    { alg: "HS256", key: JWT_SECRET },
  );

function assertJsonError(res: Awaited<ReturnType<typeof get>>, status: number, code: string): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers.get("content-type"), "application/json");
  const body = res.json<{ error: string; message: string; requestId: string }>();
  assert.equal(body.error, code);
  assert.equal(typeof body.message, "string");
  assert.equal(body.requestId, res.headers.get("x-request-id"));
}

test("every 401 path: JSON body, WWW-Authenticate, CORS headers; nothing reaches the upstream", async (t) => {
  const { up, gw } = await setup(t);
  const origin = { origin: "https://panel.example.com" };
  const cases: [string, Record<string, string>][] = [
    ["/keys/x", {}],
    ["/keys/x", { "x-api-key": "wrong" }],
    ["/keys/x", { authorization: "Bearer wrong" }],
    ["/keys/x", { authorization: `Basic ${Buffer.from(`u:${API_KEY}`).toString("base64")}` }],
    ["/jwt/x", {}],
    ["/jwt/x", { authorization: `Bearer ${token({ exp: nowS() - 10 })}` }],
    ["/jwt/x", { authorization: `Bearer ${token({ aud: "other" })}` }],
    ["/jwt/x", { authorization: `Bearer ${token({ iss: "https://evil.test" })}` }],
    ["/jwt/x", { authorization: `Bearer ${token({ nbf: nowS() + 120 })}` }],
    [
      "/jwt/x",
      { authorization: `Bearer ${signJwt({ sub: "a", exp: nowS() + 60 }, { alg: "none", key: "" })}` },
    ],
    ["/jwt/x", { authorization: `Bearer ${token().slice(0, -3)}abc` }],
    ["/jwt/x", { "x-api-key": API_KEY }],
  ];
  for (const [path, headers] of cases) {
    const res = await get(`${gw.url}${path}`, { headers: { ...origin, ...headers } });
    assertJsonError(res, 401, "unauthorized");
    assert.equal(res.headers.get("www-authenticate"), "Bearer", path);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://panel.example.com");
    assert.equal(res.headers.get("access-control-allow-credentials"), "true");
    assert.match(res.headers.get("vary") ?? "", /Origin/);
  }
  assert.equal(up.hits, 0);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  assert.match(
    metrics,
    /gateway_policy_rejections_total\{route="\/keys\/",policy="keys",reason="unauthorized"\} 4/,
  );
  assert.match(
    metrics,
    /gateway_policy_rejections_total\{route="\/jwt\/",policy="tokens",reason="unauthorized"\} 8/,
  );
});

test("the 429 path: JSON body, Retry-After, RateLimit headers in the draft syntax, CORS headers", async (t) => {
  const { up, gw } = await setup(t);
  const headers = { "x-api-key": API_KEY, origin: "https://panel.example.com" };
  const statuses: number[] = [];
  let last: Awaited<ReturnType<typeof get>> | undefined;
  for (let i = 0; i < 5; i++) {
    last = await get(`${gw.url}/limited/x`, { headers });
    statuses.push(last.status);
    assert.equal(last.headers.get("ratelimit-policy"), '"per-minute";q=3;w=60');
    assert.match(last.headers.get("ratelimit") ?? "", /^"per-minute";r=\d+;t=\d+$/);
  }
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  assertJsonError(last!, 429, "rate_limited");
  const retry = Number(last!.headers.get("retry-after"));
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, String(retry));
  assert.match(last!.headers.get("ratelimit") ?? "", /^"per-minute";r=0;t=\d+$/);
  assert.equal(last!.headers.get("access-control-allow-origin"), "https://panel.example.com");
  assert.equal(up.hits, 3);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  assert.match(
    metrics,
    /gateway_policy_rejections_total\{route="\/limited\/",policy="per-minute",reason="rate_limited"\} 2/,
  );
});

test("a preflight is answered 204 by the gateway and never reaches the upstream", async (t) => {
  const { up, gw } = await setup(t);
  const res = await fetch(`${gw.url}/keys/x`, {
    method: "OPTIONS",
    headers: { origin: "https://panel.example.com", "access-control-request-method": "DELETE" },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), "https://panel.example.com");
  assert.equal(res.headers.get("access-control-allow-methods"), "GET, HEAD, POST, PUT, PATCH, DELETE");
  assert.equal(res.headers.get("access-control-allow-headers"), "Authorization, Content-Type");
  assert.equal(res.headers.get("access-control-max-age"), "600");
  assert.equal(res.headers.get("access-control-allow-credentials"), "true");
  const other = await fetch(`${gw.url}/keys/x`, {
    method: "OPTIONS",
    headers: { origin: "https://evil.example", "access-control-request-method": "GET" },
  });
  assert.equal(other.status, 204);
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  assert.equal(up.hits, 0);
});

test("the upstream's own CORS headers are replaced by the route's", async (t) => {
  const { gw } = await setup(t, "", (_req, res) => {
    res.writeHead(200, {
      "access-control-allow-origin": "*",
      "access-control-allow-methods": "PATCH",
      "access-control-allow-credentials": "false",
      vary: "Accept-Encoding",
    });
    res.end("ok");
  });
  const allowed = await get(`${gw.url}/keys/x`, {
    headers: { "x-api-key": API_KEY, origin: "https://panel.example.com" },
  });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://panel.example.com");
  assert.equal(allowed.headers.get("access-control-allow-credentials"), "true");
  assert.equal(allowed.headers.get("access-control-allow-methods"), null);
  assert.equal(allowed.headers.get("access-control-expose-headers"), "X-Request-Id");
  assert.equal(allowed.headers.get("vary"), "Accept-Encoding, Origin");
  const other = await get(`${gw.url}/keys/x`, {
    headers: { "x-api-key": API_KEY, origin: "https://evil.example" },
  });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  // A route without cors passes the upstream's headers through untouched.
  const open = await get(`${gw.url}/open/x`);
  assert.equal(open.headers.get("access-control-allow-origin"), "*");
});

test("X-Auth-Subject is the gateway's: set on a passing auth, a client-sent one removed on every route", async (t) => {
  const { up, gw } = await setup(t);
  const spoof = { "x-auth-subject": "root" };
  await get(`${gw.url}/open/x`, { headers: spoof });
  await get(`${gw.url}/keys/x`, { headers: { ...spoof, "x-api-key": API_KEY } });
  await get(`${gw.url}/keys/x`, { headers: { ...spoof, authorization: `Bearer ${API_KEY}` } });
  const jwt = token();
  await get(`${gw.url}/jwt/x`, { headers: { ...spoof, authorization: `Bearer ${jwt}` } });
  const seen = up.received.map((r) => r.headers);
  assert.deepEqual(
    seen.map((h) => h["x-auth-subject"]),
    [undefined, "panel-web", "panel-web", "alice"],
  );
  // API keys never reach the upstream; a JWT's Authorization does.
  assert.equal(seen[1]!["x-api-key"], undefined);
  assert.equal(seen[2]!.authorization, undefined);
  assert.equal(seen[3]!.authorization, `Bearer ${jwt}`);
  const lines = gw.logs.events("request");
  assert.deepEqual(
    lines.map((l) => l.subject),
    [undefined, "panel-web", "panel-web", "alice"],
  );
  assert.ok(lines.every((l) => l.client === "127.0.0.1"));
});

test("no secret reaches the log output, the metrics or an error body", async (t) => {
  const sticky = "sticky-secret-for-the-test-0123";
  const up = await FakeUpstream.start();
  t.after(() => up.close());
  const yaml = config(up.url).replace(
    "    upstreams: [{ url:",
    `    sticky: { cookie: gw_s, secret: ${sticky} }\n    upstreams: [{ url:`,
  );
  const gw = await startGateway(yaml);
  t.after(() => gw.stop());
  const jwt = token();
  const bodies: string[] = [];
  const credentials: Record<string, string>[] = [
    { "x-api-key": API_KEY },
    { "x-api-key": `${API_KEY}x` },
    { authorization: `Bearer ${jwt}` },
    { authorization: `Bearer ${jwt}x` },
  ];
  for (const h of credentials) {
    for (const path of ["/keys/x", "/jwt/x", "/limited/x"])
      bodies.push((await get(`${gw.url}${path}`, { headers: h })).text);
  }
  await fetch(`${gw.gw.adminUrl}/admin/reload`, { method: "POST" });
  bodies.push(await (await fetch(`${gw.url}/metrics`)).text());
  bodies.push(await (await fetch(`${gw.gw.adminUrl}/admin/status`)).text());
  gw.gw.log.flush();
  const everything = JSON.stringify(gw.logs.lines) + bodies.join("\n");
  for (const secret of [API_KEY, JWT_SECRET, jwt, sticky])
    assert.ok(!everything.includes(secret), `leaked ${secret.slice(0, 8)}…`);
});

test("a JWKS served on 127.0.0.1 verifies RS256 tokens by kid", async (t) => {
  const rsa = keyPair("rsa");
  let fetches = 0;
  const jwks = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [rsa.jwk("main", "RS256")] }));
  });
  await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
  t.after(() => new Promise((r) => jwks.close(r)));
  const port = (jwks.address() as AddressInfo).port;
  const extra = `  idp:
    auth:
      jwt: { jwksUrl: "http://127.0.0.1:${port}/jwks.json", audience: panel, algorithms: [RS256] }`;
  const up = await FakeUpstream.start();
  t.after(() => up.close());
  const gw = await startGateway(
    config(up.url, extra).replace(
      "  - { prefix: /open/",
      "  - { prefix: /idp/, pool: app, policies: [idp] }\n  - { prefix: /open/",
    ),
  );
  t.after(() => gw.stop());
  const good = signJwt(
    { sub: "bob", aud: "panel", exp: nowS() + 60 },
    { alg: "RS256", key: rsa.privateKey, kid: "main" },
  );
  for (let i = 0; i < 3; i++) {
    const res = await get(`${gw.url}/idp/x`, { headers: { authorization: `Bearer ${good}` } });
    assert.equal(res.status, 200, res.text);
  }
  assert.equal(up.received.at(-1)!.headers["x-auth-subject"], "bob");
  assert.equal(fetches, 1);
  const other = signJwt(
    { sub: "eve", aud: "panel", exp: nowS() + 60 },
    { alg: "RS256", key: keyPair("rsa").privateKey, kid: "main" },
  );
  assert.equal((await get(`${gw.url}/idp/x`, { headers: { authorization: `Bearer ${other}` } })).status, 401);
});

test("trustedProxies: a trusted peer's X-Forwarded-For names the client (log, rate-limit key)", async (t) => {
  const extra = `  by-ip:
    rateLimit: { rate: 1/m }`;
  const up = await FakeUpstream.start();
  t.after(() => up.close());
  const gw = await startGateway(
    config(up.url, extra).replace(
      "  - { prefix: /open/",
      "  - { prefix: /ip/, pool: app, policies: [by-ip] }\n  - { prefix: /open/",
    ),
  );
  t.after(() => gw.stop());
  const as = (ip: string) => get(`${gw.url}/ip/x`, { headers: { "x-forwarded-for": `6.6.6.6, ${ip}` } });
  assert.equal((await as("198.51.100.1")).status, 200);
  assert.equal((await as("198.51.100.1")).status, 429);
  assert.equal((await as("198.51.100.2")).status, 200);
  const clients = gw.logs.events("request").map((l) => l.client);
  assert.deepEqual(clients, ["198.51.100.1", "198.51.100.1", "198.51.100.2"]);
});

async function wsUpstream(t: TestContext): Promise<{ url: string; subjects: unknown[] }> {
  const subjects: unknown[] = [];
  const server = http.createServer((req, res) => res.writeHead(req.url === "/health" ? 200 : 404).end());
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    subjects.push(req.headers["x-auth-subject"]);
    wss.handleUpgrade(req, socket, head, (ws) =>
      ws.on("message", (m: Buffer) => ws.send(`echo ${m.toString()}`)),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    wss.close();
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, subjects };
}

function openWs(
  url: string,
  headers: Record<string, string>,
): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => resolve({ ws }));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once("error", () => resolve({}));
  });
}

test("a WebSocket upgrade on a protected route is refused without a credential and accepted with one", async (t) => {
  const up = await wsUpstream(t);
  const gw: TestGateway = await startGateway(config(up.url));
  t.after(() => gw.stop());
  const wsBase = gw.url.replace("http:", "ws:");
  const refused = await openWs(`${wsBase}/keys/socket`, { "x-auth-subject": "root" });
  assert.equal(refused.status, 401);
  assert.equal((JSON.parse(refused.body!) as { error: string }).error, "unauthorized");
  assert.deepEqual(up.subjects, []);
  const accepted = await openWs(`${wsBase}/keys/socket`, { "x-api-key": API_KEY, "x-auth-subject": "root" });
  assert.ok(accepted.ws, "upgrade accepted");
  const echoed = new Promise<string>((r) => accepted.ws!.once("message", (m: Buffer) => r(m.toString())));
  accepted.ws.send("hi");
  assert.equal(await echoed, "echo hi");
  accepted.ws.close();
  assert.deepEqual(up.subjects, ["panel-web"]);
});
