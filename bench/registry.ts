// Registry bench (`npm run bench:registry`): for the memory and the redis store, allocations per second, heartbeat
// round trips, the time from an allocation on gateway A until gateway B routes to it, and proxied throughput with
// 200 discovered members against 200 static ones.
//
// Every gateway and the upstreams run in processes of their own (bench/child.ts, and this file in `--upstreams`
// mode), so the client's CPU is not the gateway's. With the memory store there is one gateway: "A until B" is then
// "allocation until the same gateway routes", which still includes the first health check a member needs.
import { fork } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { startRedis, type TestRedis } from "../test/helpers/redis.ts";
import { installCleanup, median, startChild, tempDir, track, type Child } from "./lib.ts";

const { values: opts } = parseArgs({
  options: {
    keep: { type: "boolean", default: false },
    stores: { type: "string", default: "memory,redis" },
    allocs: { type: "string", default: "3000" },
    warmup: { type: "string", default: "500" },
    concurrency: { type: "string", default: "32" },
    heartbeats: { type: "string", default: "2000" },
    samples: { type: "string", default: "40" },
    members: { type: "string", default: "200" },
    amount: { type: "string", default: "20000" },
    rounds: { type: "string", default: "4" },
    connections: { type: "string", default: "32" },
    // Internal: this process serves N upstreams on ports 0 and reports them over IPC.
    upstreams: { type: "string" },
  },
});

if (opts.upstreams !== undefined) await serveUpstreams(Number(opts.upstreams));
else {
  installCleanup(40 * 60_000, opts.keep);
  await main();
  process.exit(0);
}

/** `--upstreams N`: N tiny servers in one process (answers: their index), for the static and discovered pools. */
async function serveUpstreams(n: number): Promise<void> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const body = Buffer.from(`u${i}`);
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain", "content-length": body.length }).end(body);
    });
    server.keepAliveTimeout = 30_000;
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    ports.push((server.address() as AddressInfo).port);
  }
  process.send?.({ type: "ports", ports });
  process.on("disconnect", () => process.exit(0));
}

async function upstreamProcess(n: number): Promise<number[]> {
  const proc = fork(new URL(import.meta.url).pathname, ["--upstreams", String(n)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  track(proc);
  const [msg] = (await once(proc, "message")) as [{ ports: number[] }];
  return msg.ports;
}

interface Api {
  base: string;
  call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }>;
}

/** A keep-alive JSON client for one gateway's registry API. */
function api(base: string): Api {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    base,
    call: (method, path, body) =>
      new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(
          `${base}${path}`,
          {
            method,
            agent,
            headers: data
              ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) }
              : {},
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
              }),
            );
          },
        );
        req.on("error", reject);
        req.end(data);
      }),
  };
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

function config(store: string, redis: TestRedis | undefined, prefix: string, staticPorts: number[]): string {
  const statics = staticPorts.map((p) => `      - { url: "http://127.0.0.1:${p}" }`).join("\n");
  return `listen: 127.0.0.1:0
shutdownGrace: 1s
${redis ? `redis: { url: "${redis.url}", keyPrefix: ${prefix} }\n` : ""}registry:
  store: ${store}
  # Long leases: the members send no heartbeats while the throughput rounds run.
  ttl: 10m
  deregisterAfter: 30m
  types:
    bench: 20000-29999
    prop: 30000-30999
    member: 31000-39999
defaults:
  # The allocation-rate phase registers thousands of services that do not listen: check them rarely.
  healthCheck: { interval: 60s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2 }
  retries: 0
pools:
  prop:
    discover: { type: prop }
    upstreams: []
    healthCheck: { interval: 100ms, timeout: 500ms, healthyThreshold: 1 }
  members:
    discover: { type: member }
    upstreams: []
    healthCheck: { interval: 10s, timeout: 1s, healthyThreshold: 1 }
  static:
    healthCheck: { interval: 10s, timeout: 1s, healthyThreshold: 1 }
    upstreams:
${statics}
routes:
  - { prefix: /prop/, pool: prop }
  - { prefix: /members/, pool: members }
  - { prefix: /, pool: static }
`;
}

interface Figures {
  store: string;
  allocsPerSec: number;
  hbP50: number;
  hbP99: number;
  noopP50: number;
  propP50: number;
  propP99: number;
  propNote: string;
  staticRps: number;
  discoveredRps: number;
  /** Gateway CPU µs per request (median over rounds): steadier than req/s on a shared machine. */
  staticCpu: number;
  discoveredCpu: number;
  failed: number;
}

async function allocationRate(
  a: Api,
  n: number,
  concurrency: number,
): Promise<{ rate: number; ids: string[] }> {
  const ids: string[] = [];
  let next = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const r = await a.call("POST", "/registry/allocations", {
          service_name: `bench-${i}`,
          service_type: "bench",
        });
        if (r.status === 201) ids.push((r.json.allocation as { allocation_id: string }).allocation_id);
        else if (errors++ < 3) console.error(`allocate answered ${r.status}: ${JSON.stringify(r.json)}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (errors) console.error(`${errors} allocations failed`);
  return { rate: ids.length / seconds, ids };
}

/** The round trip of a request that does nothing (GET /healthz): the floor the heartbeat figures sit on. */
async function noopRtt(a: Api, n: number): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await a.call("GET", "/healthz");
    rtts.push(performance.now() - t0);
  }
  return rtts;
}

async function heartbeatRtt(a: Api, ids: string[], n: number): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await a.call("POST", `/registry/allocations/${ids[i % ids.length]!}/heartbeat`);
    rtts.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`heartbeat answered ${r.status}`);
  }
  return rtts;
}

/** Allocation at A until B's discovering pool answers from that member (its first health check included). */
async function propagation(a: Api, bUrl: string, samples: number): Promise<number[]> {
  const servers: { server: http.Server; port: number; name: string }[] = [];
  for (let i = 0; i < samples; i++) {
    const name = `prop-${i}`;
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" }).end(name);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    servers.push({ server, port: (server.address() as AddressInfo).port, name });
  }
  const times: number[] = [];
  try {
    for (const s of servers) {
      const t0 = performance.now();
      const r = await a.call("POST", "/registry/allocations", {
        service_name: s.name,
        service_type: "prop",
        host: "127.0.0.1",
        preferred_port: s.port,
        required: true,
        claim: true,
      });
      if (r.status !== 201) throw new Error(`allocate answered ${r.status}: ${JSON.stringify(r.json)}`);
      const id = (r.json.allocation as { allocation_id: string }).allocation_id;
      for (;;) {
        const res = await get(`${bUrl}/prop/x`);
        if (res.status === 200 && res.body === s.name) break;
        if (performance.now() - t0 > 10_000) throw new Error(`${s.name}: B did not route to it within 10 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      times.push(performance.now() - t0);
      await a.call("DELETE", `/registry/allocations/${id}`);
      // Wait until B has let it go, so the next sample starts from an empty pool.
      while ((await get(`${bUrl}/prop/x`)).status === 200) await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    for (const s of servers) s.server.close();
  }
  return times;
}

async function load(
  gw: Child,
  url: string,
  amount: number,
  connections: number,
): Promise<{ rps: number; cpuPerReq: number; failed: number }> {
  const cpu0 = await gw.cpu();
  const t0 = performance.now();
  let answered = 0;
  let t1 = 0;
  const run = autocannon({ url, connections, amount });
  const statuses = new Map<number, number>();
  run.on("response", (_client: unknown, status: number) => {
    if (status >= 300) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    if (++answered === amount) t1 = performance.now();
  });
  const r = await run;
  if (statuses.size) console.error(`${url}: non-2xx answers ${JSON.stringify(Object.fromEntries(statuses))}`);
  const cpu1 = await gw.cpu();
  return {
    rps: r.latency.totalCount / (((t1 || performance.now()) - t0) / 1000),
    cpuPerReq: (cpu1 - cpu0) / amount,
    failed: r.errors + r.timeouts + r.non2xx,
  };
}

async function waitHealthy(a: Api, type: string, n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await a.call("GET", `/registry/allocations?type=${type}`);
    const list = (r.json.allocations ?? []) as { health: string }[];
    if (list.length >= n && list.every((x) => x.health === "healthy")) return;
    if (Date.now() > deadline) throw new Error(`members not healthy within 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function benchStore(store: string): Promise<Figures> {
  const dir = tempDir(`registry-bench-${store}-`);
  const redis = store === "redis" ? await startRedis() : undefined;
  const members = Number(opts.members);
  const ports = await upstreamProcess(members * 2);
  const staticPorts = ports.slice(0, members);
  const memberPorts = ports.slice(members);
  const configPath = join(dir, "gateway.yaml");
  writeFileSync(configPath, config(store, redis, `bench${Date.now()}`, staticPorts));
  const logFd = openSync(join(dir, "gateway.log"), "a");
  const gateways: Child[] = [await startChild("gateway", [configPath, "warn"], logFd)];
  if (redis) gateways.push(await startChild("gateway", [configPath, "warn"], logFd));
  closeSync(logFd);
  const a = api(gateways[0]!.url);
  const bUrl = gateways.at(-1)!.url;
  try {
    // Warm-up, not counted: the first few hundred allocations of a fresh process run cold code (the JIT, lazily
    // loaded modules, new sockets), which weighed on a run of a few thousand. Released, so the ranges start empty.
    const warm = await allocationRate(a, Number(opts.warmup), Number(opts.concurrency));
    for (const id of warm.ids) await a.call("DELETE", `/registry/allocations/${id}`);
    const { rate, ids } = await allocationRate(a, Number(opts.allocs), Number(opts.concurrency));
    const rtts = await heartbeatRtt(a, ids, Number(opts.heartbeats));
    const noop = await noopRtt(a, Number(opts.heartbeats));
    for (const id of ids) await a.call("DELETE", `/registry/allocations/${id}`);
    const prop = await propagation(a, bUrl, Number(opts.samples));

    for (const port of memberPorts) {
      const r = await a.call("POST", "/registry/allocations", {
        service_name: `member-${port}`,
        service_type: "member",
        host: "127.0.0.1",
        preferred_port: port,
        required: true,
        claim: true,
      });
      if (r.status !== 201)
        throw new Error(`member allocate answered ${r.status}: ${JSON.stringify(r.json)}`);
    }
    await waitHealthy(a, "member", members);
    const amount = Number(opts.amount);
    const connections = Number(opts.connections);
    const gw = gateways[0]!;
    await load(gw, `${a.base}/x`, amount / 2, connections);
    await load(gw, `${a.base}/members/x`, amount / 2, connections);
    const st: number[] = [];
    const di: number[] = [];
    const stCpu: number[] = [];
    const diCpu: number[] = [];
    let failed = 0;
    // ABBA: a linear drift in the machine's load hits both alike.
    for (let round = 0; round < Number(opts.rounds); round++) {
      const order = round % 2 ? ["members", "static"] : ["static", "members"];
      for (const which of order) {
        const r = await load(gw, `${a.base}${which === "static" ? "/x" : "/members/x"}`, amount, connections);
        failed += r.failed;
        (which === "static" ? st : di).push(r.rps);
        (which === "static" ? stCpu : diCpu).push(r.cpuPerReq);
      }
    }
    return {
      store,
      allocsPerSec: rate,
      hbP50: percentile(rtts, 50),
      hbP99: percentile(rtts, 99),
      noopP50: percentile(noop, 50),
      propP50: percentile(prop, 50),
      propP99: percentile(prop, 99),
      propNote: redis ? "A→B" : "A→A",
      staticRps: median(st),
      discoveredRps: median(di),
      staticCpu: median(stCpu),
      discoveredCpu: median(diCpu),
      failed,
    };
  } finally {
    for (const g of gateways) await g.stop();
    await redis?.stop();
  }
}

async function main(): Promise<void> {
  const f = (n: number, d = 0) =>
    n.toLocaleString("en", { minimumFractionDigits: d, maximumFractionDigits: d });
  const head = [
    "store",
    "alloc/s",
    "hb p50 ms",
    "hb p99 ms",
    "/healthz p50 ms",
    "route p50 ms",
    "route p99 ms",
    "static rps",
    "discovered rps",
    "ratio",
    "CPU µs/req static",
    "discovered",
  ];
  const row = (r: Figures) => [
    r.store,
    f(r.allocsPerSec),
    f(r.hbP50, 2),
    f(r.hbP99, 2),
    f(r.noopP50, 2),
    `${f(r.propP50)} (${r.propNote})`,
    f(r.propP99),
    f(r.staticRps),
    f(r.discoveredRps),
    `${f((100 * r.discoveredRps) / r.staticRps, 1)} %${r.failed ? ` (${r.failed} failed!)` : ""}`,
    f(r.staticCpu),
    f(r.discoveredCpu),
  ];
  // Each store's row as soon as it is measured: on a loaded machine a later store may hit the time limit.
  console.log(head.join(" | "));
  for (const store of opts.stores.split(",")) {
    console.error(`bench: ${store} store...`);
    console.log(row(await benchStore(store)).join(" | "));
  }
  console.log(
    `\n${opts.allocs} allocations at concurrency ${opts.concurrency} (after ${opts.warmup} not counted); ` +
      `${opts.heartbeats} sequential heartbeats; ` +
      `${opts.samples} route samples (100 ms health interval, 1 pass); ${opts.rounds} ABBA rounds of ${opts.amount} ` +
      `requests over ${opts.connections} connections, ${opts.members} upstreams each.`,
  );
  console.log("targets: alloc/s >= 2,000 on redis; route p99 < 1,000 ms; discovered >= 98 % of static");
  console.log(
    `load average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
}
