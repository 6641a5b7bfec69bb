// Edge policy bench (`npm run bench:policies`): the same gateway with and without policies, in one run, as ratios
// (CORS + API key + memory rate limit; JWT with a warm cache; JWT with a cold cache), and a spray of 1,000,000
// distinct rate-limit keys against the memory store's bound.
//
// Built like bench/proxy.ts: every variant is its own gateway process on the same upstreams, loaded in turn with
// rounds in ABBA-like rotation, so machine drift hits all of them; CPU per request comes from process.cpuUsage().
import { spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { createHmac } from "node:crypto";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { createLogger } from "../src/log/log.ts";
import { RateLimit, storedKeys } from "../src/policy/rate-limit.ts";
import { installCleanup, median, startChild, tempDir, type Child } from "./lib.ts";

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    amount: { type: "string", default: "20000" },
    warmup: { type: "string", default: "10000" },
    connections: { type: "string", default: "32" },
    spray: { type: "string", default: "1000000" },
    "max-keys": { type: "string", default: "100000" },
    // Internal: the spray runs in a process of its own (see main).
    "spray-only": { type: "boolean", default: false },
  },
});
const ROUNDS = Number(opts.rounds);
const AMOUNT = Number(opts.amount);
const WARMUP = Number(opts.warmup);
const CONNECTIONS = Number(opts.connections);
const TARGET = 0.92;
const API_KEY = "bench-api-key-0123456789";
const SECRET = "bench-jwt-secret-0123456789-abcdefgh";

installCleanup(20 * 60_000);

function hs256(sub: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, aud: "bench", exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${input}.${createHmac("sha256", SECRET).update(input).digest("base64url")}`;
}

function yaml(upstreams: Child[], policies: string): string {
  return `listen: 127.0.0.1:0
shutdownGrace: 1s
policies:
  edge:
    cors: { origins: [https://app.example.com], credentials: true }
    auth: { apiKeys: [{ name: bench, key: ${API_KEY} }] }
    rateLimit: { rate: 100000000/s }
  jwt:
    auth: { jwt: { secret: ${SECRET}, audience: bench, algorithms: [HS256] } }
pools:
  app:
    upstreams:
${upstreams.map((u) => `      - { url: ${u.url} }`).join("\n")}
routes:
  - { prefix: /, pool: app${policies ? `, policies: [${policies}]` : ""} }
`;
}

interface Variant {
  name: string;
  child: Child;
  headers?: Record<string, string>;
  /** A fresh header set per request (the cold JWT cache). */
  perRequest?: () => Record<string, string>;
  rounds: Round[];
}

interface Round {
  rps: number;
  cpuPerReq: number;
  failed: number;
}

async function load(v: Variant, amount: number): Promise<Round> {
  const cpu0 = await v.child.cpu();
  const t0 = performance.now();
  const next = v.perRequest;
  const run = autocannon({
    url: `${v.child.url}/bench`,
    connections: CONNECTIONS,
    amount,
    ...(v.headers ? { headers: v.headers } : {}),
    ...(next
      ? { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, ...next() } }) }] }
      : {}),
  });
  let answered = 0;
  let t1 = 0;
  run.on("response", () => {
    if (++answered === amount) t1 = performance.now();
  });
  const r = await run;
  const cpu1 = await v.child.cpu();
  const seconds = ((t1 || performance.now()) - t0) / 1000;
  return {
    rps: r.latency.totalCount / seconds,
    cpuPerReq: (cpu1 - cpu0) / amount,
    failed: r.errors + r.timeouts + r.non2xx,
  };
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function speed(): Promise<void> {
  const dir = tempDir("gateway-bench-policies-");
  const upstreams = await Promise.all([
    startChild("upstream", ["upstream-a", "0"]),
    startChild("upstream", ["upstream-b", "0"]),
  ]);
  const logFd = openSync(join(dir, "gateway.log"), "a");
  const gateway = async (name: string, policies: string) => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, yaml(upstreams, policies));
    return startChild("gateway", [path, "info"], logFd);
  };
  const warmToken = hs256("warm");
  // The cold variant never repeats a token: every request is a full jose verify (the cache only ever misses).
  const coldTokens = Array.from({ length: WARMUP + ROUNDS * AMOUNT + 1000 }, (_, i) => hs256(`cold-${i}`));
  let cold = 0;
  const variants: Variant[] = [
    { name: "no policy", child: await gateway("none", ""), rounds: [] },
    {
      name: "cors+key+rate",
      child: await gateway("edge", "edge"),
      headers: { "x-api-key": API_KEY, origin: "https://app.example.com" },
      rounds: [],
    },
    {
      name: "jwt warm",
      child: await gateway("jwt-warm", "jwt"),
      headers: { authorization: `Bearer ${warmToken}` },
      rounds: [],
    },
    {
      name: "jwt cold",
      child: await gateway("jwt-cold", "jwt"),
      perRequest: () => ({ authorization: `Bearer ${coldTokens[cold++ % coldTokens.length]!}` }),
      rounds: [],
    },
  ];
  closeSync(logFd);
  console.log(
    `policy bench: Node ${process.version}, ${availableParallelism()} CPUs, ${CONNECTIONS} connections, ` +
      `${ROUNDS} rounds x ${fmt(AMOUNT)} requests per gateway (after ${fmt(WARMUP)} warm-up), access log on\n`,
  );
  for (const v of variants) await load(v, WARMUP);
  console.log(`${"round/variant".padEnd(20)}${"req/s".padStart(9)}${"CPU µs/req".padStart(12)}`);
  for (let i = 0; i < ROUNDS; i++) {
    // Rotate the starting variant each round, so no variant always runs first or last.
    const order = variants.map((_, j) => variants[(i + j) % variants.length]!);
    for (const v of order) {
      const r = await load(v, AMOUNT);
      v.rounds.push(r);
      console.log(
        `${`${i + 1} ${v.name}`.padEnd(20)}${fmt(r.rps).padStart(9)}${fmt(r.cpuPerReq).padStart(12)}${r.failed ? `  ${r.failed} failed!` : ""}`,
      );
    }
  }
  const [base] = variants as [Variant];
  console.log(
    `\nvariant               req/s  CPU µs/req  throughput vs no policy (median of per-round ratios)`,
  );
  for (const v of variants) {
    const ratio = median(v.rounds.map((r, i) => r.rps / base.rounds[i]!.rps));
    const cpu = median(v.rounds.map((r) => r.cpuPerReq));
    const target =
      v.name === "cors+key+rate" || v.name === "jwt warm"
        ? `  target >= ${TARGET * 100}%: ${ratio >= TARGET ? "MET" : "NOT MET"}`
        : "";
    console.log(
      `${v.name.padEnd(18)}${fmt(median(v.rounds.map((r) => r.rps))).padStart(9)}${fmt(cpu).padStart(12)}  ${fmt(ratio * 100, 1)}%${target}`,
    );
  }
  const baseCpu = median(base.rounds.map((r) => r.cpuPerReq));
  for (const v of variants.slice(1)) {
    console.log(
      `${v.name}: +${fmt(median(v.rounds.map((r) => r.cpuPerReq)) - baseCpu)} µs of gateway CPU per request`,
    );
  }
  await Promise.all([...variants.map((v) => v.child), ...upstreams].map((c) => c.stop()));
}

/** Every this many keys the spray yields to the event loop, as requests do: each arrives in an I/O callback. */
const SPRAY_TICK = 1000;

async function spray(): Promise<void> {
  const total = Number(opts.spray);
  const maxKeys = Number(opts["max-keys"]);
  const quiet = createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });
  // An hour's window: nothing expires during the spray, the worst case for the store.
  const rl = new RateLimit(
    "spray",
    { points: 10, window: 3_600_000, burst: 0, key: { kind: "ip" }, store: "memory", maxKeys },
    { log: quiet },
  );
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  const tick = () => new Promise<void>((r) => setImmediate(r));
  // After a full collection V8 sweeps and gives pages back concurrently: a moment later RSS shows what is held.
  const mem = async () => {
    gc();
    await new Promise<void>((r) => setTimeout(r, 50));
    return process.memoryUsage();
  };
  const m0 = await mem();
  let mFull = m0;
  let mSteady = m0;
  const rows: [number, NodeJS.MemoryUsage][] = [[0, m0]];
  const every = Math.max(maxKeys, Math.floor(total / 5));
  let busy = 0;
  let t = performance.now();
  for (let i = 0; i < total; i++) {
    const key = `a:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}-${i}`;
    // The gateway's own path for a memory limit: decided at once, no promise.
    if (rl.consumeNow(key) === undefined) await rl.consume(key);
    const n = i + 1;
    if (n % SPRAY_TICK === 0) await tick();
    if (n === maxKeys || n === 2 * maxKeys || n % every === 0 || n === total) {
      busy += performance.now() - t;
      const m = await mem();
      if (n === maxKeys) mFull = m;
      if (n === 2 * maxKeys) mSteady = m;
      if (n % every === 0 || n === total) rows.push([n, m]);
      t = performance.now();
    }
  }
  const seconds = busy / 1000;
  const m1 = rows[rows.length - 1]![1];
  const mb = (b: number) => fmt(b / 1048576, 1);
  const perKey = (mFull.heapUsed - m0.heapUsed) / maxKeys;
  // The configured bound is maxKeys records plus the 1,024 overflow counters, at the measured heap cost per key
  // (+25 % allocator slack). RSS also holds what V8 reserves for the churn of a million short-lived strings (its
  // young generation and free lists): it rises once, then must stay flat however many more keys come.
  const heapBound = (maxKeys + 1024) * perKey * 1.25;
  const heapGrew = m1.heapUsed - m0.heapUsed;
  const lateRss = m1.rss - mSteady.rss;
  console.log(
    `\nrate-limit key spray: ${fmt(total)} distinct keys in ${fmt(seconds, 1)} s ` +
      `(${fmt(total / seconds)} keys/s), maxKeys ${fmt(maxKeys)}, window 1 h (nothing expires)`,
  );
  console.log(
    `  keys held at the end: ${fmt(storedKeys(rl.memory!))} (maxKeys + 1,024 overflow counters at most)`,
  );
  console.log(
    `  heap: +${mb(mFull.heapUsed - m0.heapUsed)} MB when the store filled (${fmt(perKey)} bytes/key), ` +
      `+${mb(heapGrew)} MB after all ${fmt(total)} keys; bound ${mb(heapBound)} MB: ` +
      (heapGrew <= heapBound ? "WITHIN" : "OVER"),
  );
  console.log(
    `  unbounded, ${fmt(total)} keys would hold about ${mb(total * perKey)} MB of heap for the whole window`,
  );
  console.log(
    `  RSS: +${mb(mFull.rss - m0.rss)} MB when the store filled, +${mb(mSteady.rss - m0.rss)} MB at ` +
      `${fmt(2 * maxKeys)} keys, +${mb(m1.rss - m0.rss)} MB at the end: ${mb(lateRss)} MB over the last ` +
      `${fmt(total - 2 * maxKeys)} keys (${lateRss <= 16 * 1048576 ? "flat" : "STILL GROWING"})`,
  );
  console.log(`  MB over the spray (after a full GC):`);
  console.log(
    `  ${"keys".padStart(9)}${"rss".padStart(8)}${"heapTotal".padStart(11)}${"heapUsed".padStart(10)}` +
      `${"external".padStart(10)}${"arrayBuf".padStart(10)}`,
  );
  for (const [n, m] of rows) {
    console.log(
      `  ${fmt(n).padStart(9)}${mb(m.rss).padStart(8)}${mb(m.heapTotal).padStart(11)}${mb(m.heapUsed).padStart(10)}` +
        `${mb(m.external).padStart(10)}${mb(m.arrayBuffers).padStart(10)}`,
    );
  }
}

async function main(): Promise<void> {
  if (opts["spray-only"]) return spray();
  // The spray runs in a process of its own, so its RSS is the limiter's and not the load generator's.
  const args = process.argv.slice(2).filter((a) => a !== "--spray-only");
  const child = spawn(
    process.execPath,
    ["--expose-gc", "--import", "tsx", import.meta.filename, ...args, "--spray-only"],
    {
      stdio: "inherit",
    },
  );
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`spray child exited with ${String(code)}`);
  await speed();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
