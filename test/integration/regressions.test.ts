// Regressions found in review: a stalled response body, an over-large chunked upload, a reload before boot's
// first health round.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { once } from "node:events";
import { loadConfigText } from "../../src/config/load.ts";
import { Runtime, type RuntimeObserver } from "../../src/runtime/runtime.ts";
import { FakeUpstream } from "../helpers/upstream.ts";
import { poolConfig, startGateway } from "../helpers/gateway.ts";

test("an upstream that stalls after its headers is cut after timeouts.response, and so is the client", async (t) => {
  const stall = await FakeUpstream.start({
    handler: (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
    },
  });
  const g = await startGateway(poolConfig([{ url: stall.url }]).replace("response: 5s", "response: 300ms"));
  t.after(async () => {
    await g.stop();
    await stall.close();
  });
  const { port } = new URL(g.url);
  const res = await new Promise<http.IncomingMessage>((r) => http.get({ port, path: "/x", agent: false }, r));
  assert.equal(res.statusCode, 200);
  const ended = await new Promise<string>((resolve) => {
    res.on("data", () => undefined);
    res.on("end", () => resolve("end"));
    res.on("error", () => resolve("cut"));
    res.on("close", () => resolve(res.complete ? "end" : "cut"));
  });
  assert.equal(ended, "cut");
  const line = await g.logs.waitFor("request", (l) => l.path === "/x");
  assert.equal(line.status, 200);
  assert.equal(g.gw.status().pools[0]!.upstreams[0]!.inFlight, 0);
});

test("a chunked upload over maxBodySize gets 413 and the connection closes", async (t) => {
  const u = await FakeUpstream.start();
  const g = await startGateway(poolConfig([{ url: u.url }], "  maxBodySize: 100kb"));
  t.after(async () => {
    await g.stop();
    await u.close();
  });
  const sock = net.connect(Number(new URL(g.url).port), "127.0.0.1");
  await once(sock, "connect");
  let data = "";
  sock.on("data", (c: Buffer) => (data += c.toString()));
  sock.on("error", () => undefined);
  const closed = once(sock, "close");
  sock.write("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  const chunk = Buffer.alloc(16 * 1024, 97);
  for (let i = 0; i < 64 && !sock.destroyed; i++) {
    sock.write(`${chunk.length.toString(16)}\r\n`);
    sock.write(chunk);
    sock.write("\r\n");
  }
  await closed;
  assert.match(data, /^HTTP\/1.1 413 /);
  assert.match(data, /\r\nconnection: close\r\n/i);
  assert.match(data, /"error":"payload_too_large"/);
});

test("a runtime carried over before the first round still runs the first round", async (t) => {
  const u = await FakeUpstream.start();
  t.after(() => u.close());
  const config = loadConfigText(poolConfig([{ url: u.url }]), "gw.yaml", {});
  const quiet: RuntimeObserver = {
    healthResult: () => undefined,
    healthChange: () => undefined,
    breakerChange: () => undefined,
    failover: () => undefined,
  };
  const first = new Runtime(config, quiet);
  const second = new Runtime(config, quiet, first);
  assert.deepEqual(first.retire(), [], "the carried upstream is not stopped");
  await second.start();
  const entry = [...second.entries.values()][0]!;
  assert.equal(entry.upstream.health, "healthy");
  assert.ok(entry.checker.last);
  second.stop();
});
