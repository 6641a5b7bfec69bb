// The request pipeline's policy seam on real sockets: a tiny test policy answering in the request phase, adding
// headers in the response phase, preferring an upstream at pick; WebSocket upgrades taking the same phases.
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import type { RoutePolicies } from "../../src/proxy/phases.ts";
import { startGateway } from "../helpers/gateway.ts";
import { FakeUpstream } from "../helpers/upstream.ts";

const UPGRADE =
  "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/** Sends raw bytes and resolves with everything the server sent until it closed. */
function rawRequest(base: string, text: string): Promise<{ head: string; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), "127.0.0.1", () => sock.write(text));
    let data = "";
    sock.on("data", (c: Buffer) => (data += c.toString()));
    sock.on("error", reject);
    sock.on("close", () => {
      const i = data.indexOf("\r\n\r\n");
      resolve({ head: data.slice(0, i + 2), body: data.slice(i + 4) });
    });
  });
}

/** The test policy: 401 without `x-key`, subject from it; a response header on every answer; upstream `x-secret` removed. */
function testPolicy(calls: { request: number; response: number[] }, async = false): RoutePolicies {
  return {
    request(ex) {
      calls.request++;
      const key = ex.req.headers["x-key"];
      const verdict =
        typeof key === "string"
          ? ((ex.subject = key), ex.dropUpstreamHeader("X-Key"), undefined)
          : { error: "unauthorized" as const, message: "No key.", headers: { "www-authenticate": "Bearer" } };
      return async ? Promise.resolve(verdict) : verdict;
    },
    response(_ex, status, headers) {
      calls.response.push(status);
      headers["x-policy"] = "seen";
      delete headers["x-secret"];
    },
  };
}

async function wsServer(t: { after(fn: () => unknown): void }): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => res.writeHead(req.url === "/health" ? 200 : 404).end());
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    seen.push(
      `${req.url} subject=${String(req.headers["x-auth-subject"])} key=${String(req.headers["x-key"])}`,
    );
    if (req.url?.startsWith("/refuse")) {
      socket.end("HTTP/1.1 404 Not Found\r\nx-secret: s\r\ncontent-length: 2\r\n\r\nno");
      return;
    }
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
  return { port: (server.address() as net.AddressInfo).port, seen };
}

test("a request phase answers 401 for HTTP and for a WebSocket upgrade, and passes with a credential", async (t) => {
  for (const async of [false, true]) {
    const calls = { request: 0, response: [] as number[] };
    const up = await FakeUpstream.start({
      handler: (req, res) => res.end(String(req.headers["x-auth-subject"])),
    });
    const ws = await wsServer(t);
    const g = await startGateway(
      `listen: 127.0.0.1:0
pools:
  app: { upstreams: [{ url: "${up.url}" }] }
  ws: { upstreams: [{ url: "http://127.0.0.1:${ws.port}" }] }
routes:
  - { prefix: /ws/, pool: ws }
  - { prefix: /open/, pool: app }
  - { prefix: /, pool: app }
`,
      {
        policies: (route) => (route.prefix === "/open/" ? undefined : testPolicy(calls, async)),
      },
    );
    t.after(async () => {
      await g.stop();
      await up.close();
    });

    const denied = await fetch(`${g.url}/x`);
    assert.equal(denied.status, 401, `async=${async}`);
    assert.equal(denied.headers.get("www-authenticate"), "Bearer");
    assert.equal(denied.headers.get("x-policy"), "seen");
    assert.deepEqual(await denied.json(), {
      error: "unauthorized",
      message: "No key.",
      requestId: denied.headers.get("x-request-id"),
    });
    assert.equal(up.received.length, 0, "a refused request never reaches the upstream");

    // A client-sent X-Auth-Subject never passes; the policy's subject does, and the dropped header stays here.
    const ok = await fetch(`${g.url}/x`, { headers: { "x-key": "alice", "x-auth-subject": "mallory" } });
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "alice");
    assert.equal(up.received[0]!.headers["x-key"], undefined);
    const line = await g.logs.waitFor("request", (l) => l.status === 200 && l.path === "/x");
    assert.equal(line.subject, "alice");
    assert.equal(line.client, "127.0.0.1");
    // A route without policies: no phase runs, a spoofed subject is still removed, no subject is logged.
    const open = await fetch(`${g.url}/open/y`, { headers: { "x-auth-subject": "mallory" } });
    assert.equal(await open.text(), "undefined");
    assert.equal(open.headers.get("x-policy"), null);
    const openLine = await g.logs.waitFor("request", (l) => l.path === "/open/y");
    assert.equal("subject" in openLine, false);
    assert.equal(openLine.client, "127.0.0.1");

    // The same policy on a WebSocket upgrade: refused raw with the same body and headers, accepted with the key.
    const refused = await rawRequest(g.url, `GET /ws/a HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`);
    assert.match(refused.head, /^HTTP\/1.1 401 /);
    assert.match(refused.head, /www-authenticate: Bearer\r\n/);
    assert.match(refused.head, /x-policy: seen\r\n/);
    assert.equal((JSON.parse(refused.body) as { error: string }).error, "unauthorized");
    assert.equal(ws.seen.length, 0);
    const sock = new WebSocket(`${g.url.replace("http", "ws")}/ws/a`, { headers: { "x-key": "bob" } });
    const upgradeHeaders = new Promise<http.IncomingHttpHeaders>((r) =>
      sock.once("upgrade", (res) => r(res.headers)),
    );
    await new Promise((r, j) => sock.once("open", r).once("error", j));
    assert.equal((await upgradeHeaders)["x-policy"], "seen", "the response phase sees the 101 too");
    const reply = new Promise<string>((r) => sock.once("message", (m: Buffer) => r(m.toString())));
    sock.send("hi");
    assert.equal(await reply, "echo hi");
    sock.close();
    assert.deepEqual(ws.seen, ["/ws/a subject=bob key=undefined"]);
    const tunnel = await g.logs.waitFor("request", (l) => l.status === 101);
    assert.equal(tunnel.subject, "bob");
    assert.ok(calls.response.includes(101) && calls.response.includes(401));
  }
});

test("the response phase sees every answer: upstream 200 and 404, a 502, a 503 and a refused upgrade", async (t) => {
  const calls = { request: 0, response: [] as number[] };
  const up = await FakeUpstream.start({
    handler: (req, res) => res.writeHead(req.url === "/missing" ? 404 : 200, { "x-secret": "s" }).end("body"),
  });
  const dying = await FakeUpstream.start();
  const ws = await wsServer(t);
  const policy: RoutePolicies = { response: testPolicy(calls).response! };
  const g = await startGateway(
    `listen: 127.0.0.1:0
defaults: { retries: 0, healthCheck: { interval: 60s } }
pools:
  app: { upstreams: [{ url: "${up.url}" }] }
  dead: { upstreams: [{ url: "${dying.url}" }] }
  ws: { upstreams: [{ url: "http://127.0.0.1:${ws.port}" }] }
routes:
  - { prefix: /dead/, pool: dead }
  - { prefix: /refuse, pool: ws }
  - { prefix: /, pool: app }
`,
    { policies: () => policy },
  );
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  await dying.kill();
  for (const [path, status] of [
    ["/ok", 200],
    ["/missing", 404],
    ["/dead/x", 502],
  ] as const) {
    const r = await fetch(`${g.url}${path}`);
    assert.equal(r.status, status, path);
    assert.equal(r.headers.get("x-policy"), "seen", path);
    assert.equal(r.headers.get("x-secret"), null, path);
    await r.text();
  }
  // The refused connection marked the dead upstream down: its pool now answers 503, with the header too.
  const none = await fetch(`${g.url}/dead/x`);
  assert.equal(none.status, 503);
  assert.equal(none.headers.get("x-policy"), "seen");
  await none.text();
  const refused = await rawRequest(g.url, `GET /refuse HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`);
  assert.match(refused.head, /^HTTP\/1.1 404 /);
  assert.match(refused.head, /x-policy: seen\r\n/);
  assert.doesNotMatch(refused.head, /x-secret/);
  assert.deepEqual(calls.response, [200, 404, 502, 503, 404]);
});

test("a preferred upstream is honoured in the active tier only, and retried elsewhere when it fails", async (t) => {
  const [a, b, backup] = await Promise.all(
    ["a", "b", "c"].map((name) => FakeUpstream.start({ name, handler: (_q, r) => r.end(name) })),
  );
  let want = "b";
  const policy: RoutePolicies = {
    prefer: (_ex, upstreams) =>
      upstreams.find((u) => u.url.port === String((want === "b" ? b : backup)!.port)),
  };
  const g = await startGateway(
    `listen: 127.0.0.1:0
pools:
  app:
    upstreams: [{ url: "${a!.url}" }, { url: "${b!.url}" }, { url: "${backup!.url}", backup: true }]
routes: [{ prefix: /, pool: app }]
`,
    { policies: () => policy },
  );
  t.after(async () => {
    await g.stop();
    await Promise.all([a!.close(), b!.close(), backup!.close()]);
  });
  const bodies = async (n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await (await fetch(g.url)).text());
    return out.join("");
  };
  assert.equal(await bodies(20), "b".repeat(20));
  // A backup is not preferred while the primaries serve.
  want = "c";
  assert.equal(await bodies(4), "abab");
  // A preferred upstream that is down is skipped: the request is balanced as usual.
  want = "b";
  await b!.kill();
  assert.equal(await bodies(3), "aaa");
});

test("a WebSocket upgrade to a refused upstream marks it down and is retried on the next one", async (t) => {
  const ws = await wsServer(t);
  const dying = await FakeUpstream.start();
  const g = await startGateway(
    `listen: 127.0.0.1:0
defaults: { healthCheck: { interval: 60s } }
pools:
  ws: { upstreams: [{ url: "${dying.url}" }, { url: "http://127.0.0.1:${ws.port}" }] }
routes: [{ prefix: /, pool: ws }]
`,
  );
  t.after(() => g.stop());
  // Smooth round robin sends the first upgrade to the first upstream, which now refuses connections.
  await dying.kill();
  const sock = new WebSocket(`${g.url.replace("http", "ws")}/chat`);
  await new Promise((r, j) => sock.once("open", r).once("error", j));
  const reply = new Promise<string>((r) => sock.once("message", (m: Buffer) => r(m.toString())));
  sock.send("x");
  assert.equal(await reply, "echo x");
  sock.close();
  const down = await g.logs.waitFor("health_change", (l) => l.to === "unhealthy");
  assert.equal(down.upstream, `127.0.0.1:${dying.port}`);
  assert.match(String(down.reason), /ECONNREFUSED/);
  const line = await g.logs.waitFor("request", (l) => l.status === 101);
  assert.equal(line.attempts, 2);
  assert.equal(line.upstream, `127.0.0.1:${ws.port}`);
});

test("deadlines are swept, not timed: hanging requests add no timer each, and still get their 504", async (t) => {
  const held: http.ServerResponse[] = [];
  let seen = 0;
  const upstream = await FakeUpstream.start({
    handler: (_req, res) => {
      seen++;
      held.push(res);
    },
  });
  const g = await startGateway(
    `listen: 127.0.0.1:0
defaults: { retries: 0, healthCheck: { interval: 60s }, timeouts: { connect: 1s, response: 1500ms } }
pools: { app: { upstreams: [{ url: "${upstream.url}" }] } }
routes: [{ prefix: /, pool: app }]
`,
  );
  t.after(async () => {
    for (const r of held) r.destroy();
    await g.stop();
    await upstream.close();
  });
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  const before = timers();
  const N = 40;
  const answers = Array.from({ length: N }, () => fetch(`${g.url}/hang`).then((r) => r.status));
  await new Promise<void>((resolve) => {
    const poll = () => (seen >= N ? resolve() : setImmediate(poll));
    poll();
  });
  // A timer per request would add N; the sweep adds one for all of them (plus the odd socket keep-alive).
  assert.ok(timers() - before < 10, `${timers() - before} more timers with ${N} requests in flight`);
  assert.deepEqual(await Promise.all(answers), Array(N).fill(504));
});
