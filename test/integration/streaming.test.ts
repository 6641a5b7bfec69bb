// Bodies stream both ways in constant memory, and aborted requests leave no socket open anywhere.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { startGateway } from "../helpers/gateway.ts";

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const chunk = Buffer.alloc(64 * 1024, 7);

function zeros(total: number): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

/** Samples RSS while `work` runs and returns the peak growth over the starting value. */
async function peakRssGrowth(work: () => Promise<void>): Promise<number> {
  global.gc?.();
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage.rss()) - base;
}

/**
 * A gateway whose one pool is `handle` (the upstream, which also answers /health), both stopped after the test;
 * resolves with the gateway's host and port.
 */
async function bigPool(
  t: TestContext,
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ hostname: string; port: string }> {
  const upstream = http.createServer((req, res) =>
    req.url === "/health" ? res.end("ok") : handle(req, res),
  );
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  const port = (upstream.address() as { port: number }).port;
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { timeouts: { response: 60s } }
pools: { big: { upstreams: [{ url: "http://127.0.0.1:${port}" }] } }
routes: [{ prefix: /, pool: big }]
`);
  t.after(async () => {
    await g.stop();
    upstream.close();
  });
  return new URL(g.url);
}

test("a 256 MiB upload and a 256 MiB download stream through in constant memory", async (t) => {
  let uploaded = 0;
  const { hostname, port: gwPort } = await bigPool(t, (req, res) => {
    if (req.method === "POST") {
      req.on("data", (c: Buffer) => (uploaded += c.length));
      req.on("end", () => res.end(String(uploaded)));
      return;
    }
    res.writeHead(200, { "content-length": String(SIZE) });
    zeros(SIZE).pipe(res);
  });

  const up = await peakRssGrowth(async () => {
    const req = http.request({ host: hostname, port: gwPort, path: "/upload", method: "POST", agent: false });
    const answer = new Promise<string>((resolve) =>
      req.on("response", (res) => {
        let s = "";
        res.on("data", (c: Buffer) => (s += c.toString()));
        res.on("end", () => resolve(s));
      }),
    );
    await pipeline(zeros(SIZE), req);
    assert.equal(await answer, String(SIZE));
  });
  assert.equal(uploaded, SIZE);

  let downloaded = 0;
  const down = await peakRssGrowth(async () => {
    const res = await new Promise<http.IncomingMessage>((resolve) =>
      http.get({ host: hostname, port: gwPort, path: "/download", agent: false }, resolve),
    );
    for await (const c of res) downloaded += (c as Buffer).length;
  });
  assert.equal(downloaded, SIZE);
  t.diagnostic(`RSS growth: upload ${(up / MiB).toFixed(1)} MiB, download ${(down / MiB).toFixed(1)} MiB`);
  assert.ok(up < 64 * MiB, `upload grew RSS by ${(up / MiB).toFixed(1)} MiB`);
  assert.ok(down < 64 * MiB, `download grew RSS by ${(down / MiB).toFixed(1)} MiB`);
});

/** Resolves with `read()` once it has stayed the same for three looks 100 ms apart (at most 10 s). */
async function steady(read: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 100 && same < 3; i++) {
    // A stall has no event of its own: the only way to see that nothing more moves is to look again later.
    await new Promise((r) => setTimeout(r, 100));
    const now = read();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

test("a client that stops reading holds the upstream back instead of filling the gateway's memory", async (t) => {
  let produced = 0;
  const { hostname, port: gwPort } = await bigPool(t, (_req, res) => {
    res.writeHead(200, { "content-length": String(SIZE) });
    const body = zeros(SIZE);
    body.on("data", (c: Buffer) => (produced += c.length));
    body.pipe(res);
  });
  const res = await new Promise<http.IncomingMessage>((resolve) =>
    http.get({ host: hostname, port: gwPort, path: "/download", agent: false }, resolve),
  );
  res.pause();
  const stalled = await steady(() => produced);
  t.diagnostic(`the upstream stalled after ${(stalled / MiB).toFixed(1)} MiB of ${SIZE / MiB}`);
  // On a failed assertion the paused download must not hold the gateway's shutdown (an after hook, run later) for
  // its grace period.
  if (stalled >= 64 * MiB) res.destroy();
  // Socket buffers on both legs hold a few MiB; without backpressure the whole body would have been read.
  assert.ok(
    stalled < 64 * MiB,
    `the upstream sent ${(stalled / MiB).toFixed(1)} MiB to a client that read nothing`,
  );
  let downloaded = 0;
  for await (const c of res) downloaded += (c as Buffer).length;
  assert.equal(downloaded, SIZE);
});

test("an abort storm leaves no upstream connection open and no request in flight", async (t) => {
  const open = new Set<import("node:net").Socket>();
  let started = 0;
  const upstream = http.createServer((req, res) => {
    if (req.url === "/health") return void res.end("ok");
    started++;
    // Half the requests never answer, half stream forever: both must be cut when the client leaves.
    if (req.url === "/stream") {
      res.writeHead(200);
      const timer = setInterval(() => res.write("tick\n"), 5);
      res.on("close", () => clearInterval(timer));
    }
  });
  upstream.on("connection", (s: import("node:net").Socket) => {
    open.add(s);
    s.once("close", () => open.delete(s));
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  const port = (upstream.address() as { port: number }).port;
  const g = await startGateway(`listen: 127.0.0.1:0
defaults: { timeouts: { response: 30s } }
pools: { p: { upstreams: [{ url: "http://127.0.0.1:${port}" }] } }
routes: [{ prefix: /, pool: p }]
`);
  t.after(async () => {
    await g.stop();
    upstream.close();
  });
  const { hostname, port: gwPort } = new URL(g.url);
  const N = 200;
  await Promise.all(
    Array.from({ length: N }, (_, i) => {
      return new Promise<void>((resolve) => {
        const req = http.get({
          host: hostname,
          port: gwPort,
          path: i % 2 ? "/stream" : "/hang",
          agent: false,
        });
        req.on("error", () => resolve());
        req.on("response", (res) => res.once("data", () => req.destroy()));
        req.on("close", () => resolve());
        if (i % 2 === 0) setTimeout(() => req.destroy(), 30);
      });
    }),
  );
  // Every upstream socket must close; wait on the close events themselves, but not forever: a leaked socket
  // must fail here with a count, not hang the suite until the runner's timeout.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 20_000)));
  const closed = Promise.all([...open].filter((s) => !s.destroyed).map((s) => once(s, "close")));
  const outcome = await Promise.race([closed, deadline]);
  clearTimeout(timer);
  assert.notEqual(
    outcome,
    "timeout",
    `${open.size} upstream socket(s) still open 20 s after the storm: a leak`,
  );
  assert.equal(open.size, 0, "upstream sockets left open");
  // Every /stream request reaches the upstream before its client leaves; a /hang one may be cut earlier.
  assert.ok(started >= N / 2, `upstream saw ${started} of ${N}`);
  // On a loaded machine a client may leave before the gateway even read its request, so the gateway saw at most
  // N; what it saw must all be over, answered 200 (stream) or logged as 499 (client gone), nothing else.
  const inflight = async () => (await g.gw.metrics.inflight.get()).values[0]?.value ?? 0;
  const until = Date.now() + 10_000;
  while ((await inflight()) > 0 && Date.now() < until) await new Promise((r) => setImmediate(r));
  assert.equal(await inflight(), 0, "requests still in flight");
  await new Promise((r) => setImmediate(r)); // the access lines of the last turn
  const lines = g.logs.events("request");
  assert.ok(lines.length >= started && lines.length <= N, `${lines.length} access lines`);
  assert.deepEqual(
    lines.filter((l) => l.status !== 499 && l.status !== 200),
    [],
  );
});
