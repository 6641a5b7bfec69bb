// The gateway's side of upstream connections: pooled keep-alive sockets, their idle close (and an upstream's
// shorter `Keep-Alive: timeout=N`), and the read-idle cut of a relayed body, timed by the deadline sweep.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo, Socket } from "node:net";
import { poolConfig, request, startGateway } from "../helpers/gateway.ts";

/** A plain upstream that counts its connections and reports when each one closes, and who ended it. */
async function countingUpstream(handler: http.RequestListener) {
  const server = http.createServer(handler);
  // Far above the gateway's own idle close: a close seen here comes from the gateway.
  server.keepAliveTimeout = 30_000;
  interface Connection {
    socket: Socket;
    /** The paths requested on it. */
    paths: string[];
    closed?: number;
    endedByPeer: boolean;
  }
  const connections: Connection[] = [];
  const byClose = new Set<(c: Connection) => void>();
  server.on("request", (req: http.IncomingMessage) => {
    connections.find((c) => c.socket === req.socket)?.paths.push(req.url ?? "");
  });
  server.on("connection", (socket: Socket) => {
    const c: Connection = { socket, paths: [], endedByPeer: false };
    connections.push(c);
    socket.on("end", () => (c.endedByPeer = true));
    socket.on("close", () => {
      c.closed = performance.now();
      for (const f of byClose) f(c);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    connections,
    /** Resolves with the first connection that closes after having carried `path`. */
    closeOf: (path: string) =>
      new Promise<Connection>((resolve) => {
        const f = (c: Connection) => {
          if (!c.paths.includes(path)) return;
          byClose.delete(f);
          resolve(c);
        };
        byClose.add(f);
      }),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

test("back-to-back requests share one pooled upstream connection", async (t) => {
  const up = await countingUpstream((_req, res) => res.end("ok"));
  const g = await startGateway(poolConfig([{ url: up.url }]));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  for (let i = 0; i < 5; i++) assert.equal((await request(`${g.url}/x${i}`)).status, 200);
  // The health checker has connections of its own: count those that carried proxied requests.
  const proxied = up.connections.filter((c) => c.paths.some((p) => p.startsWith("/x")));
  assert.equal(proxied.length, 1, `${proxied.length} upstream connections for 5 sequential requests`);
  assert.deepEqual(
    proxied[0]!.paths.filter((p) => p.startsWith("/x")),
    ["/x0", "/x1", "/x2", "/x3", "/x4"],
  );
});

test("an upstream's `Keep-Alive: timeout=2` has its idle pooled connection closed by the gateway after about 1 s", async (t) => {
  const up = await countingUpstream((_req, res) => {
    res.setHeader("keep-alive", "timeout=2");
    res.end("ok");
  });
  const g = await startGateway(poolConfig([{ url: up.url }]));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  const closed = up.closeOf("/hint");
  const answered = performance.now();
  assert.equal((await request(`${g.url}/hint`)).status, 200);
  const c = await closed;
  const idleMs = c.closed! - answered;
  assert.ok(c.endedByPeer, "the gateway ended the connection, not the upstream");
  // Node's agent rule: one second below the announced timeout, well before the gateway's own 4 s.
  assert.ok(idleMs > 700 && idleMs < 2_500, `closed after ${Math.round(idleMs)} ms`);
});

test("a body that trickles is not cut; once it stalls, the cut comes about timeouts.response after the last byte", async (t) => {
  let lastByte = 0;
  const up = await countingUpstream((req, res) => {
    if (req.url === "/health") return void res.end();
    res.writeHead(200, { "content-length": "100" });
    // Six bytes 100 ms apart (600 ms in all, twice the 300 ms timeout), then nothing.
    let sent = 0;
    const timer = setInterval(() => {
      res.write("x");
      lastByte = performance.now();
      if (++sent === 6) clearInterval(timer);
    }, 100);
    res.on("close", () => clearInterval(timer));
  });
  const g = await startGateway(poolConfig([{ url: up.url }]).replace("response: 5s", "response: 300ms"));
  t.after(async () => {
    await g.stop();
    await up.close();
  });
  const { port } = new URL(g.url);
  const res = await new Promise<http.IncomingMessage>((r) =>
    http.get({ port, path: "/trickle", agent: false }, r),
  );
  assert.equal(res.statusCode, 200);
  let received = 0;
  res.on("data", (c: Buffer) => (received += c.length));
  // The cut shows as an `aborted` error and a close.
  await new Promise<void>((resolve) => {
    res.on("error", () => undefined);
    res.on("close", resolve);
  });
  const cutAfter = performance.now() - lastByte;
  assert.equal(received, 6, "every trickled byte reached the client");
  assert.equal(res.complete, false, "the client was cut, not given a complete body");
  // 300 ms, checked every eighth of it on a 20 ms sweep: generous bounds for a loaded machine.
  assert.ok(cutAfter >= 280 && cutAfter < 1_000, `cut ${Math.round(cutAfter)} ms after the last byte`);
});
