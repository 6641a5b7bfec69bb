// The proxy end to end on real sockets: routing, path rules, header rules, error bodies, timeouts, WebSocket.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { FakeUpstream } from "../helpers/upstream.ts";
import { get, request, startGateway } from "../helpers/gateway.ts";

async function topology(t: { after(fn: () => Promise<void>): void }) {
  const main = await FakeUpstream.start({ name: "main" });
  const pdf = await FakeUpstream.start({ name: "pdf" });
  const weather = await FakeUpstream.start({ name: "weather" });
  const g = await startGateway(`listen: 127.0.0.1:0
defaults:
  healthCheck: { interval: 60s }
  timeouts: { connect: 1s, response: 500ms }
pools:
  main: { upstreams: [{ url: "${main.url}" }] }
  pdf: { upstreams: [{ url: "${pdf.url}" }] }
  weather: { upstreams: [{ url: "${weather.url}" }] }
routes:
  - { prefix: /api/pdf, pool: pdf }
  - { prefix: /api/weather/, pool: weather, stripPrefix: true }
  - { prefix: /, pool: main, host: main.example }
`);
  t.after(async () => {
    await g.stop();
    await Promise.all([main.close(), pdf.close(), weather.close()]);
  });
  return { g, main, pdf, weather };
}

test("routes by longest prefix on whole segments, strips prefixes, keeps the query", async (t) => {
  const { g, main, pdf, weather } = await topology(t);
  assert.equal((await get(`${g.url}/api/pdf/doc?x=%2e&y=1`)).json().name, "pdf");
  assert.equal(pdf.received.at(-1)!.url, "/api/pdf/doc?x=%2e&y=1");
  assert.equal((await get(`${g.url}/api/pdf`)).json().name, "pdf");
  assert.equal((await get(`${g.url}/api/weather/today?city=Oslo`)).json().name, "weather");
  assert.equal(weather.received.at(-1)!.url, "/today?city=Oslo");
  // /api/pdfx is not below /api/pdf, and only the host route catches the rest.
  const r = await request(`${g.url}/api/pdfx`, { headers: { host: "main.example" } });
  assert.equal((JSON.parse(r.body) as { name: string }).name, "main");
  assert.equal(main.received.at(-1)!.url, "/api/pdfx");
});

test("the upstream receives the normalized path; a climbing path is 400 and no route is 404, in JSON", async (t) => {
  const { g, pdf, weather } = await topology(t);
  await get(`${g.url}/api/pdf/a/./b/../%7Ec`);
  assert.equal(pdf.received.at(-1)!.url, "/api/pdf/a/~c");
  // Exactly the routed path: no second parse may turn `\` into a separator or re-encode characters.
  const kept = await rawRequest(
    g.url,
    "GET /api/weather/a\\..\\secret?a=\\ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(kept.head, /^HTTP\/1.1 200 /);
  assert.equal(weather.received.at(-1)!.url, "/a%5C..%5Csecret?a=\\");
  // The same `\` used to climb out of the stripped prefix, once an upstream reads it as `/`: refused.
  const climb = await rawRequest(
    g.url,
    "GET /api/weather/..\\secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(climb.head, /^HTTP\/1.1 400 /);

  const bad = await rawRequest(
    g.url,
    "GET /api/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  assert.match(bad.head, /^HTTP\/1.1 400 /);
  const body = JSON.parse(bad.body) as Record<string, string>;
  assert.equal(body.error, "bad_request");
  assert.equal(typeof body.requestId, "string");

  const none = await get(`${g.url}/nowhere`);
  assert.equal(none.status, 404);
  assert.equal(none.headers.get("content-type"), "application/json");
  const nb = none.json();
  assert.equal(nb.error, "no_route");
  assert.equal(nb.requestId, none.headers.get("x-request-id"));
});

test("headers: hop-by-hop dropped both ways, X-Forwarded-* set, X-Request-Id kept or made and returned", async (t) => {
  const hop = await FakeUpstream.start({
    handler: (_req, res) => {
      res.writeHead(200, {
        connection: "keep-alive, x-secret-hop",
        "x-secret-hop": "1",
        // Not the gateway's own Keep-Alive (Node writes timeout=5), so its absence shows the upstream's was dropped.
        "keep-alive": "timeout=77",
        "x-kept": "yes",
      });
      res.end("ok");
    },
  });
  const g = await startGateway(`listen: 127.0.0.1:0
pools: { p: { upstreams: [{ url: "${hop.url}" }] } }
routes: [{ prefix: /, pool: p }]
`);
  t.after(async () => {
    await g.stop();
    await hop.close();
  });
  const res = await rawRequest(
    g.url,
    "GET /h HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, x-private\r\nX-Private: drop-me\r\n" +
      "Keep-Alive: timeout=9\r\nProxy-Authorization: Basic abc\r\nTE: trailers, deflate\r\n" +
      "X-Forwarded-For: 203.0.113.9\r\nX-Request-Id: abc-123\r\n\r\n",
  );
  const seen = hop.received.at(-1)!.headers;
  assert.equal(seen["x-private"], undefined);
  assert.equal(seen["proxy-authorization"], undefined);
  assert.equal(seen.te, "trailers");
  assert.notEqual(seen["keep-alive"], "timeout=9");
  assert.equal(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
  assert.equal(seen["x-forwarded-proto"], "http");
  assert.equal(seen["x-forwarded-host"], "app.example");
  assert.equal(seen["x-request-id"], "abc-123");
  assert.equal(seen.host, "app.example");
  assert.match(res.head, /\r\nx-request-id: abc-123\r\n/i);
  assert.match(res.head, /\r\nx-kept: yes\r\n/i);
  assert.doesNotMatch(res.head, /x-secret-hop/i);
  assert.doesNotMatch(res.head, /timeout=77/i);

  const generated = await get(`${g.url}/h`);
  const id = generated.headers.get("x-request-id")!;
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(hop.received.at(-1)!.headers["x-request-id"], id);
});

test("an upstream that never answers gets 504 upstream_timeout after timeouts.response", async (t) => {
  const hang = await FakeUpstream.start({ handler: () => undefined });
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { timeouts: { response: 300ms }, retries: 2 }
pools: { p: { upstreams: [{ url: "${hang.url}" }] } }
routes: [{ prefix: /, pool: p }]
`);
  t.after(async () => {
    await g.stop();
    await hang.close();
  });
  const started = performance.now();
  const r = await get(`${g.url}/slow`);
  const took = performance.now() - started;
  assert.equal(r.status, 504);
  assert.equal(r.json().error, "upstream_timeout");
  assert.ok(took >= 280 && took < 2_000, `took ${took}ms`);
  assert.equal(hang.hits, 1, "a response timeout is not retried");
  const line = await g.logs.waitFor("request", (l) => l.status === 504);
  assert.equal(line.attempts, 1);
});

test("a refused upstream with no other gives 502 bad_gateway in JSON; an empty pool gives 503 with Retry-After", async (t) => {
  const dead = await FakeUpstream.start();
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { healthCheck: { interval: 60s, unhealthyThreshold: 1 } }
pools: { p: { upstreams: [{ url: "${dead.url}" }] } }
routes: [{ prefix: /, pool: p }]
`);
  t.after(async () => {
    await g.stop();
  });
  await dead.kill();
  const r = await get(`${g.url}/x`);
  assert.equal(r.status, 502);
  assert.equal(r.json().error, "bad_gateway");
  await g.gw.runHealthRound();
  const r2 = await get(`${g.url}/x`);
  assert.equal(r2.status, 503);
  assert.equal(r2.json().error, "no_upstream");
  assert.equal(r2.headers.get("retry-after"), "10");
});

test("WebSocket upgrades are proxied to the routed pool and echo both ways", async (t) => {
  const server = http.createServer((_req, res) => res.end("ok"));
  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws, req) => ws.on("message", (m: Buffer) => ws.send(`${req.url} ${m.toString()}`)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const g = await startGateway(`listen: 127.0.0.1:0
pools: { ws: { upstreams: [{ url: "http://127.0.0.1:${port}" }] } }
routes: [{ prefix: /ws/, pool: ws, stripPrefix: true }]
`);
  t.after(async () => {
    await g.stop();
    wss.close();
    server.close();
  });
  const ws = new WebSocket(`${g.url.replace("http", "ws")}/ws/chat?room=1`);
  await new Promise((r, j) => ws.once("open", r).once("error", j));
  const reply = new Promise<string>((r) => ws.once("message", (m: Buffer) => r(m.toString())));
  ws.send("hello");
  assert.equal(await reply, "/chat?room=1 hello");
  ws.close();

  const refused = await rawRequest(
    g.url,
    "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  assert.match(refused.head, /^HTTP\/1.1 404 /);

  // Tunnels are accounted like requests: an access line and gateway_requests_total once they close.
  const tunnel = await g.logs.waitFor("request", (l) => l.status === 101);
  assert.equal(tunnel.route, "/ws/");
  assert.equal(tunnel.path, "/ws/chat");
  assert.equal(tunnel.attempts, 1);
  await g.logs.waitFor("request", (l) => l.status === 404 && l.path === "/nope");
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /gateway_requests_total\{route="\/ws\/",method="GET",code="101"\} 1/);
});

/** Sends raw bytes and reads until the server closes or a full response arrived. */
function rawRequest(base: string, text: string): Promise<{ head: string; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), "127.0.0.1", () => sock.write(text));
    let data = "";
    const done = () => {
      const i = data.indexOf("\r\n\r\n");
      resolve({ head: data.slice(0, i + 2), body: data.slice(i + 4) });
      sock.destroy();
    };
    sock.on("data", (c: Buffer) => {
      data += c.toString();
      const i = data.indexOf("\r\n\r\n");
      const m = /content-length: (\d+)/i.exec(data.slice(0, i));
      if (i >= 0 && m && Buffer.byteLength(data.slice(i + 4)) >= Number(m[1])) done();
    });
    sock.on("end", done);
    sock.on("error", reject);
  });
}
