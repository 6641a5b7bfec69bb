// Hostile and odd input end to end (issue 8): encoded slashes that climb, CONNECT and the asterisk form,
// absolute-form targets, upstream hop-by-hop response headers, a breaker that counts 500.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { FakeUpstream } from "../helpers/upstream.ts";
import { startGateway } from "../helpers/gateway.ts";

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
