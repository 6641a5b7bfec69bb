// Hostile and odd input end to end (issue 8): encoded slashes that climb, CONNECT and the asterisk form,
// absolute-form targets, upstream hop-by-hop response headers, a breaker that counts 500, `gateway check` warnings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { FakeUpstream } from "../helpers/upstream.ts";
import { get, poolConfig, request, startGateway } from "../helpers/gateway.ts";
import { spawnCli } from "../helpers/processes.ts";

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
  const cli = spawnCli(["check", "-c", file]);
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

test("Expect: 100-continue: the client gets 100 Continue, the upstream never sees Expect, small and large bodies pass", async (t) => {
  const up = await FakeUpstream.start();
  const g = await startGateway(poolConfig([{ url: up.url }]));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  // 5 bytes are kept for a retry; 200 KiB stream. Both must not wait on a 100 the upstream is never asked for.
  for (const size of [5, 200 * 1024]) {
    const body = Buffer.alloc(size, 120);
    const sock = net.connect(Number(new URL(g.url).port), "127.0.0.1");
    t.after(() => sock.destroy());
    await once(sock, "connect");
    let data = "";
    let continued: () => void = () => undefined;
    const gotContinue = new Promise<void>((r) => (continued = r));
    // Connection: close, so the whole answer is in once the gateway closes the socket.
    const ended = once(sock, "close");
    sock.on("data", (c: Buffer) => {
      data += c.toString();
      if (data.includes("100 Continue\r\n\r\n")) continued();
    });
    sock.write(
      `POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`,
    );
    await gotContinue;
    sock.write(body);
    await ended;
    assert.match(data, /^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 /);
    assert.match(data, /"method":"POST"/);
    const seen = up.received.at(-1)!;
    assert.equal(seen.body.length, size);
    assert.equal(seen.headers.expect, undefined, "Expect is not passed on");
  }
});

test("a declared Content-Length over maxBodySize gets 413 before any of the body is read", async (t) => {
  const up = await FakeUpstream.start();
  const g = await startGateway(poolConfig([{ url: up.url }], "  maxBodySize: 1kb"));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  // Only the head is sent: an answer can only come from the declared length.
  const r = await rawRequest(g.url, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n");
  assert.match(r.head, /^HTTP\/1.1 413 /);
  assert.match(r.head, /\r\nconnection: close\r\n/i);
  assert.equal(jsonBody(r).error, "payload_too_large");
  assert.equal(up.hits, 0);
  // With Expect, Node has already invited the body (100 Continue) when the handler sees the length; the 413
  // follows at once all the same, and the body is never waited for.
  const e = await rawRequest(
    g.url,
    "PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2048\r\n\r\n",
  );
  assert.match(e.head + e.body, /^HTTP\/1.1 100 Continue\r\n(\r\n)?HTTP\/1.1 413 /);
  assert.equal(up.hits, 0);
});

/**
 * A listener on 127.0.0.1 that never accepts: a child process whose event loop is blocked, so the kernel's accept
 * queue fills and further SYNs are dropped. Connecting to it times out, with nothing off this machine.
 */
async function blackhole(t: { after(fn: () => unknown): void }): Promise<string> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("node:net").createServer();
       s.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
         console.log(s.address().port);
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
       });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  t.after(() => child.kill("SIGKILL"));
  const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
  const port = Number(line);
  // Fill the accept queue (backlog 1 holds 2): once a connect no longer completes, the queue is full.
  const fillers: net.Socket[] = [];
  t.after(() => fillers.forEach((s) => s.destroy()));
  for (;;) {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => undefined);
    fillers.push(s);
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      once(s, "connect").then(() => "connected"),
      new Promise((r) => (timer = setTimeout(() => r("stuck"), 1_000))),
    ]);
    clearTimeout(timer);
    if (done === "stuck") break;
    assert.ok(fillers.length < 50, "the accept queue never filled");
  }
  return `http://127.0.0.1:${port}`;
}

test("a connect timeout is retried on another upstream, for POST too, and counted as a timeout", async (t) => {
  const hole = await blackhole(t);
  const fine = await FakeUpstream.start({ name: "fine" });
  const g = await startGateway(`listen: 127.0.0.1:0
defaults:
  healthCheck: { enabled: false }
  timeouts: { connect: 300ms, response: 5s }
  retries: 1
pools: { p: { upstreams: [{ url: "${hole}", id: hole }, { url: "${fine.url}", id: fine }] } }
routes: [{ prefix: /, pool: p }]
`);
  t.after(async () => {
    await g.stop();
    await fine.close();
  });
  for (const method of ["GET", "POST", "GET", "POST"]) {
    const r = await request(`${g.url}/x`, { method, body: method === "POST" ? "payload" : undefined });
    assert.equal(r.status, 200, method);
    assert.equal((JSON.parse(r.body) as { name: string }).name, "fine");
  }
  const retried = g.logs.events("request").filter((l) => l.attempts === 2);
  assert.ok(retried.length >= 1, "some request went to the unreachable upstream first");
  assert.ok(
    retried.every((l) => Number(l.durationMs) >= 280),
    "each waited out the connect timeout",
  );
  assert.equal(fine.received.filter((r) => r.method === "POST" && r.body === "payload").length, 2);
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(
    metrics,
    /gateway_upstream_requests_total\{pool="p",upstream="hole",outcome="timeout"\} [1-9]/,
  );
  assert.match(metrics, /gateway_retries_total\{pool="p"\} [1-9]/);
});

test("two requests racing a half-open breaker: only one trial reaches the upstream", async (t) => {
  let mode: "fail" | "hold" = "fail";
  let release: () => void = () => undefined;
  let trialArrived: () => void = () => undefined;
  const arrived = new Promise<void>((r) => (trialArrived = r));
  const sick = await FakeUpstream.start({
    name: "sick",
    handler: (_req, res) => {
      if (mode === "fail") return void res.writeHead(500).end("{}");
      trialArrived();
      release = () => {
        release = () => undefined;
        res.writeHead(200, { "content-type": "application/json" }).end('{"name":"sick"}');
      };
    },
  });
  const fine = await FakeUpstream.start({ name: "fine" });
  const g = await startGateway(
    poolConfig(
      [{ url: sick.url }, { url: fine.url }],
      "  retries: 0\n  breaker: { volumeThreshold: 4, resetTimeout: 300ms }",
    ),
  );
  t.after(async () => {
    release();
    await g.stop();
    await Promise.all([sick.close(), fine.close()]);
  });
  for (let i = 0; i < 8; i++) await get(`${g.url}/x`);
  await g.logs.waitFor("breaker_change", (l) => l.to === "open");
  mode = "hold";
  await g.logs.waitFor("breaker_change", (l) => l.to === "half_open");
  const sickBefore = sick.hits;
  const fineBefore = fine.hits;
  // Six at once: whichever reaches the half-open upstream first is its one trial; the rest go to `fine`.
  const racing = Array.from({ length: 6 }, () => get(`${g.url}/race`));
  await arrived;
  // The five others finish on `fine` while the trial is still held.
  while (fine.hits - fineBefore < 5) await new Promise((r) => setImmediate(r));
  assert.equal(sick.hits - sickBefore, 1, "exactly one trial");
  release();
  const results = await Promise.all(racing);
  assert.deepEqual(
    results.map((r) => r.status),
    [200, 200, 200, 200, 200, 200],
  );
  assert.equal(results.filter((r) => r.json().name === "sick").length, 1);
  await g.logs.waitFor("breaker_change", (l) => l.to === "closed");
});

/** A self-signed certificate for 127.0.0.1, made by the openssl CLI (Node cannot issue X.509 certificates). */
async function selfSigned(dir: string): Promise<{ key: string; cert: string; certFile: string }> {
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  const openssl = spawn(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"]
      .concat(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
      .concat(["-keyout", keyFile, "-out", certFile]),
    { stdio: "ignore" },
  );
  const [code] = (await once(openssl, "exit")) as [number | null];
  assert.equal(code, 0, "openssl could not make a certificate");
  return { key: await readFile(keyFile, "utf8"), cert: await readFile(certFile, "utf8"), certFile };
}

test("an HTTPS upstream: verified against the CAs Node trusts (NODE_EXTRA_CA_CERTS), refused when untrusted", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "gateway-tls-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { key, cert, certFile } = await selfSigned(dir);
  const seen: { url: string; proto: string | undefined }[] = [];
  const upstream = https.createServer({ key, cert }, (req, res) => {
    if (req.url !== "/health")
      seen.push({ url: req.url ?? "", proto: req.headers["x-forwarded-proto"] as string });
    res.writeHead(200, { "content-type": "application/json" }).end('{"name":"tls"}');
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  t.after(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const url = `https://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
  const file = join(dir, "gateway.yaml");
  await writeFile(file, poolConfig([{ url }]));

  // Trusted: the gateway process is started with the certificate as an extra CA, as an operator would.
  const cli = spawnCli(["start", "-c", file], { env: { NODE_EXTRA_CA_CERTS: certFile } });
  t.after(async () => {
    cli.child.kill("SIGTERM");
    await cli.exited;
  });
  const started = await cli.logs.waitFor("gateway_started");
  await cli.logs.waitFor("ready");
  const base = `http://${String(started.listen)}`;
  const ok = await get(`${base}/secure?x=1`);
  assert.equal(ok.status, 200);
  assert.equal(ok.json().name, "tls");
  assert.deepEqual(seen.at(-1), { url: "/secure?x=1", proto: "http" });

  // Untrusted: this test process has no such CA, so its gateway refuses the certificate and answers 502.
  // Its health checks verify the same way (they would take the upstream out); off here, to see the proxying.
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { healthCheck: { enabled: false }, retries: 0 }
pools: { p: { upstreams: [{ url: "${url}" }] } }
routes: [{ prefix: /, pool: p }]
`);
  t.after(() => g.stop());
  const refused = await get(`${g.url}/secure`);
  assert.equal(refused.status, 502);
  assert.equal(refused.json().error, "bad_gateway");
  assert.equal(seen.length, 1, "the untrusted gateway sent no request");
});

test("CONNECT to a separate admin listener is refused the same way", async (t) => {
  const up = await FakeUpstream.start();
  const g = await startGateway(poolConfig([{ url: up.url }], "admin: { listen: 127.0.0.1:0 }"));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  assert.notEqual(g.gw.adminUrl, g.url);
  const r = await rawRequest(g.gw.adminUrl, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
  assert.match(r.head, /^HTTP\/1.1 400 /);
  assert.equal(jsonBody(r).error, "bad_request");
});
