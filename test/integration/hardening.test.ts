// Hostile and odd input end to end (issue 8): encoded slashes that climb, CONNECT and the asterisk form,
// absolute-form targets, upstream hop-by-hop response headers, a breaker that counts 500, `gateway check` warnings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeUpstream } from "../helpers/upstream.ts";
import { get, poolConfig, startGateway } from "../helpers/gateway.ts";
import { spawnLogged } from "../helpers/processes.ts";

/** Sends raw bytes and reads until the server closes or a full response arrived. */
function rawRequest(base: string, text: string): Promise<{ head: string; body: string; closed: boolean }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), "127.0.0.1", () => sock.write(text));
    let data = "";
    const done = (closed: boolean) => {
      const i = data.indexOf("\r\n\r\n");
      resolve({ head: i < 0 ? data : data.slice(0, i + 2), body: i < 0 ? "" : data.slice(i + 4), closed });
      sock.destroy();
    };
    sock.on("data", (c: Buffer) => {
      data += c.toString();
      const i = data.indexOf("\r\n\r\n");
      const m = /content-length: (\d+)/i.exec(data.slice(0, i));
      if (i >= 0 && m && Buffer.byteLength(data.slice(i + 4)) >= Number(m[1])) done(false);
    });
    sock.on("end", () => done(true));
    sock.on("error", reject);
  });
}

function jsonBody(r: { body: string }): Record<string, string> {
  return JSON.parse(r.body) as Record<string, string>;
}

test("encoded slashes that climb above / or out of the route's prefix are 400; inside it they pass encoded", async (t) => {
  const root = await FakeUpstream.start({ name: "root" });
  const app = await FakeUpstream.start({ name: "app" });
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { healthCheck: { interval: 60s } }
pools:
  root: { upstreams: [{ url: "${root.url}" }] }
  app: { upstreams: [{ url: "${app.url}" }] }
routes:
  - { prefix: /, pool: root }
  - { prefix: /app/, pool: app }
  - { prefix: /strip/, pool: app, stripPrefix: true }
`);
  t.after(async () => {
    await g.stop();
    await Promise.all([root.close(), app.close()]);
  });
  const send = (path: string) =>
    rawRequest(g.url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  for (const path of [
    "/..%2f..%2fetc/passwd",
    "/app/..%2f..%2fetc/passwd",
    "/app/x%2f..%2f..%2fy",
    "/app/..%5Cadmin",
    "/app/..\\admin",
    "/strip/..%2Fsecret",
  ]) {
    const r = await send(path);
    assert.match(r.head, /^HTTP\/1.1 400 /, path);
    assert.equal(jsonBody(r).error, "bad_request", path);
  }
  assert.equal(root.hits + app.hits, 0, "no climbing path reached an upstream");

  // Inside the prefix, and encoded slashes that are mere data, pass with %2F and %5C still encoded.
  assert.match((await send("/app/x%2f..%2fy")).head, /^HTTP\/1.1 200 /);
  assert.equal(app.received.at(-1)!.url, "/app/x%2F..%2Fy");
  assert.match((await send("/strip/a%2Fb%5Cc?q=%2F")).head, /^HTTP\/1.1 200 /);
  assert.equal(app.received.at(-1)!.url, "/a%2Fb%5Cc?q=%2F");
  assert.match((await send("/files/a%2fb")).head, /^HTTP\/1.1 200 /);
  assert.equal(root.received.at(-1)!.url, "/files/a%2Fb");
});

test("CONNECT and the asterisk form get a JSON 400; OPTIONS * is answered; absolute-form routes by its path", async (t) => {
  const root = await FakeUpstream.start({ name: "root" });
  const api = await FakeUpstream.start({ name: "api" });
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { healthCheck: { interval: 60s } }
pools:
  root: { upstreams: [{ url: "${root.url}" }] }
  api: { upstreams: [{ url: "${api.url}" }] }
routes:
  - { prefix: /, pool: root }
  - { prefix: /api/, pool: api, stripPrefix: true }
`);
  t.after(async () => {
    await g.stop();
    await Promise.all([root.close(), api.close()]);
  });

  // A CONNECT to a real listener on loopback: the gateway must neither tunnel to it nor hang up wordlessly.
  const connect = await rawRequest(
    g.url,
    `CONNECT 127.0.0.1:${api.port} HTTP/1.1\r\nHost: 127.0.0.1:${api.port}\r\n\r\n`,
  );
  assert.match(connect.head, /^HTTP\/1.1 400 /);
  assert.match(connect.head, /\r\ncontent-type: application\/json\r\n/i);
  const cb = jsonBody(connect);
  assert.equal(cb.error, "bad_request");
  assert.match(cb.message!, /CONNECT/);
  assert.match(connect.head, new RegExp(`\\r\\nx-request-id: ${cb.requestId}\\r\\n`, "i"));
  await g.logs.waitFor("request", (l) => l.method === "CONNECT" && l.status === 400);

  for (const method of ["GET", "POST", "DELETE"]) {
    const r = await rawRequest(
      g.url,
      `${method} * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
    assert.match(r.head, /^HTTP\/1.1 400 /, method);
    assert.equal(jsonBody(r).error, "bad_request");
    assert.match(jsonBody(r).message!, /asterisk-form/);
  }
  const options = await rawRequest(g.url, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assert.match(options.head, /^HTTP\/1.1 200 /);
  assert.match(options.head, /\r\ncontent-length: 0\r\n/i);

  // Absolute-form: the path routes, the authority is never contacted, the upstream gets origin-form.
  const abs = await rawRequest(
    g.url,
    "GET http://elsewhere.invalid/api/x?q=1 HTTP/1.1\r\nHost: elsewhere.invalid\r\nConnection: close\r\n\r\n",
  );
  assert.match(abs.head, /^HTTP\/1.1 200 /);
  assert.equal(api.received.at(-1)!.url, "/x?q=1");
  const absRoot = await rawRequest(
    g.url,
    "GET https://h.invalid HTTP/1.1\r\nHost: h.invalid\r\nConnection: close\r\n\r\n",
  );
  assert.match(absRoot.head, /^HTTP\/1.1 200 /);
  assert.equal(root.received.at(-1)!.url, "/");
  assert.equal(root.hits + api.hits, 2, "CONNECT and the asterisk form reached no upstream");
});

test("with the default failureStatuses, an upstream answering 500 while /health says 200 trips its breaker", async (t) => {
  const sick = await FakeUpstream.start({ name: "sick", statuses: [500] });
  const fine = await FakeUpstream.start({ name: "fine" });
  // Only the volume is lowered, so the test needs few requests; failureStatuses is left to its default.
  const g = await startGateway(
    poolConfig([{ url: sick.url }, { url: fine.url }], "  retries: 0\n  breaker: { volumeThreshold: 4 }"),
  );
  t.after(async () => {
    await g.stop();
    await Promise.all([sick.close(), fine.close()]);
  });
  assert.deepEqual(g.gw.config.pools[0]!.breaker.failureStatuses, [500, 502, 503, 504]);
  for (let i = 0; i < 8; i++) await get(`${g.url}/x`);
  const opened = await g.logs.waitFor("breaker_change", (l) => l.to === "open");
  assert.equal(opened.upstream, `127.0.0.1:${sick.port}`);
  await g.gw.runHealthRound();
  const sickStatus = g.gw.status().pools[0]!.upstreams.find((u) => u.id === `127.0.0.1:${sick.port}`)!;
  assert.equal(sickStatus.health, "healthy", "its /health still says 200");
  assert.equal(sickStatus.breaker, "open");
  const before = sick.hits;
  for (let i = 0; i < 6; i++) assert.equal((await get(`${g.url}/x`)).json().name, "fine");
  assert.equal(sick.hits, before, "no traffic to it while its breaker is open");
});

test("an upstream's Proxy-Authenticate is hop-by-hop and dropped; a client's TE: trailers still goes up", async (t) => {
  const up = await FakeUpstream.start({
    handler: (req, res) => {
      res.writeHead(req.url === "/challenge" ? 407 : 200, {
        "proxy-authenticate": 'Basic realm="inner-proxy"',
        "www-authenticate": 'Bearer realm="app"',
        "content-length": "2",
      });
      res.end("ok");
    },
  });
  const g = await startGateway(poolConfig([{ url: up.url }]));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  for (const path of ["/challenge", "/x"]) {
    const r = await rawRequest(
      g.url,
      `GET ${path} HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n`,
    );
    assert.match(r.head, path === "/challenge" ? /^HTTP\/1.1 407 / : /^HTTP\/1.1 200 /);
    assert.doesNotMatch(r.head, /proxy-authenticate/i, path);
    assert.match(r.head, /\r\nwww-authenticate: Bearer realm="app"\r\n/i, "an end-to-end challenge stays");
    assert.equal(up.received.at(-1)!.headers.te, "trailers");
  }
});

test("gateway check prints duration warnings on stderr as FILE:LINE:COL and still exits 0", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "gateway-check-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "gateway.yaml");
  await writeFile(
    file,
    "defaults:\n  healthCheck: { interval: 500 }\npools: { a: { upstreams: [{ url: http://127.0.0.1:1 }] } }\n" +
      "routes: [{ prefix: /, pool: a }]\n",
  );
  let stdout = "";
  const cli = spawnLogged([process.execPath, "--import", "tsx", "src/cli.ts", "check", "-c", file]);
  cli.child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  const { code } = await cli.exited;
  assert.equal(code, 0);
  assert.equal(stdout, "ok: 1 pools, 1 routes, 1 upstreams\n");
  assert.equal(
    cli.stderr(),
    `${file}:2:28: defaults.healthCheck.interval: warning: a bare 500 means 500 milliseconds; did you mean 500s? ` +
      "(write 500ms to keep it)\n",
  );
});
