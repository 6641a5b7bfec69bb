// One active health probe against a real server: what it sends (the proxy's request shape: a header list that
// must carry Host itself), a fresh connection per probe, and the verdict from the status.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { HealthChecker } from "../../src/health/checker.ts";

const settings = {
  enabled: true,
  path: "/health?deep=1",
  interval: 60_000,
  timeout: 2_000,
  healthyThreshold: 1,
  unhealthyThreshold: 1,
  expectStatus: [[200, 399]] as [number, number][],
};

test("a probe sends Host, its User-Agent and the path with its query, on a new connection each time", async (t) => {
  const seen: { url: string | undefined; headers: http.IncomingHttpHeaders }[] = [];
  let connections = 0;
  let status = 200;
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    res.writeHead(status).end("ok");
  });
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const statuses: boolean[] = [];
  const checker = new HealthChecker(new URL(`http://127.0.0.1:${port}`), settings, {
    setStatus: (up) => {
      statuses.push(up);
      return true;
    },
  });
  t.after(() => checker.stop());

  const first = await checker.runOnce();
  assert.equal(first?.ok, true);
  assert.equal(first?.status, 200);
  status = 503;
  const second = await checker.runOnce();
  assert.equal(second?.ok, false);
  assert.equal(second?.error, "status 503");
  assert.deepEqual(statuses, [true, false]);

  assert.equal(seen.length, 2);
  for (const s of seen) {
    assert.equal(s.url, "/health?deep=1");
    assert.equal(s.headers.host, `127.0.0.1:${port}`);
    assert.equal(s.headers["user-agent"], "gateway-health-check");
    assert.equal(s.headers.connection, "close");
  }
  assert.equal(connections, 2, "each probe opens its own connection");
});

test("a probe of a port nobody listens on fails with the connect error", async (t) => {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const checker = new HealthChecker(new URL(`http://127.0.0.1:${port}`), settings, { setStatus: () => true });
  t.after(() => checker.stop());
  const result = await checker.runOnce();
  assert.equal(result?.ok, false);
  assert.equal(result?.error, "ECONNREFUSED");
});

test("credentials in the upstream's URL go with the probe as Basic auth, as http.get(url) sent them", async (t) => {
  let authorization: string | undefined;
  const server = http.createServer((req, res) => {
    authorization = req.headers.authorization;
    res.writeHead(req.headers.authorization ? 200 : 401).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const checker = new HealthChecker(new URL(`http://ops:p%40ss@127.0.0.1:${port}`), settings, {
    setStatus: () => true,
  });
  t.after(() => checker.stop());
  const result = await checker.runOnce();
  assert.equal(result?.ok, true);
  assert.equal(authorization, `Basic ${Buffer.from("ops:p@ss").toString("base64")}`);
});
