// Proxy speed bench (`npm run bench`): the gateway (compiled, from dist/) vs a plain node:http + http-proxy-3 proxy
// and fast-gateway 3.4.7, in one run.
//
// On a small shared machine absolute req/s swing 2-3x between runs, so everything here is built for ratios: both
// proxies are loaded in the same run, against the same upstreams, with rounds interleaved in ABBA order (a linear
// drift in machine load then hits both equally), and each proxy runs in its own process so its CPU time per
// request can be read with process.cpuUsage(), which is much steadier than throughput (dependencies.md §7, §8).
import { openSync, closeSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import {
  freePort,
  installCleanup,
  median,
  startChild,
  startDistGateway,
  tempDir,
  type Child,
} from "./lib.ts";

const { values: opts } = parseArgs({
  options: {
    // Keep the temp dirs (configs, the proxies' logs) and print where they are.
    keep: { type: "boolean", default: false },
    rounds: { type: "string", default: "5" },
    amount: { type: "string", default: "20000" },
    warmup: { type: "string", default: "10000" },
    connections: { type: "string", default: "32" },
    // Where the gateway's access lines go: a file (as with `gateway > file`) or /dev/null (no disk cost).
    log: { type: "string", default: "file" },
    // Adds a third variant, the gateway with access logging off (level warn), to show what logging costs.
    "no-log-variant": { type: "boolean", default: false },
  },
});
const ROUNDS = Number(opts.rounds);
const AMOUNT = Number(opts.amount);
const WARMUP = Number(opts.warmup);
const CONNECTIONS = Number(opts.connections);
const TARGET = 0.95;

installCleanup(15 * 60_000, opts.keep);

interface Variant {
  name: string;
  child: Child;
  rounds: Round[];
}

interface Round {
  rps: number;
  p50: number;
  p99: number;
  cpuPerReq: number;
  failed: number;
}

function gatewayYaml(upstreams: Child[], port: number): string {
  // Bundled defaults (health checks every 5 s, breakers on, retries 2); only the addresses are the bench's.
  return `listen: 127.0.0.1:${port}
shutdownGrace: 1s
pools:
  app:
    upstreams:
${upstreams.map((u) => `      - { url: ${u.url} }`).join("\n")}
routes:
  - { prefix: /, pool: app }
`;
}

async function load(v: Variant, amount: number): Promise<Round> {
  const cpu0 = await v.child.cpu();
  const t0 = performance.now();
  const run = autocannon({ url: `${v.child.url}/bench`, connections: CONNECTIONS, amount });
  // autocannon resolves on its next 1 s sample tick, not at the last answer: its own duration would round every
  // round up to whole seconds. Time the last response instead.
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
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuPerReq: (cpu1 - cpu0) / amount,
    failed: r.errors + r.timeouts + r.non2xx,
  };
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const pad = (s: string, n: number) => s.padStart(n);

function row(name: string, r: Round): string {
  return `${name.padEnd(16)}${pad(fmt(r.rps), 9)}${pad(fmt(r.p50), 8)}${pad(fmt(r.p99), 8)}${pad(fmt(r.cpuPerReq), 11)}${r.failed ? `   ${r.failed} failed!` : ""}`;
}

/** The gateway runs from dist/: say so when dist/ is older than src/ (run `npm run build` first). */
function warnIfStale(): void {
  const root = join(import.meta.dirname, "..");
  const built = statSync(join(root, "dist/cli.js"), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = readdirSync(join(root, "src"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .reduce((m, f) => Math.max(m, statSync(join(root, "src", f)).mtimeMs), 0);
  if (built < newest) console.log("warning: dist/ is older than src/; run `npm run build` first\n");
}

async function main(): Promise<void> {
  warnIfStale();
  const dir = tempDir("gateway-bench-");
  const logPath = opts.log === "null" ? "/dev/null" : join(dir, "gateway.log");
  const configPath = join(dir, "gateway.yaml");

  const upstreams = await Promise.all([
    startChild("upstream", ["upstream-a", "0"]),
    startChild("upstream", ["upstream-b", "0"]),
  ]);
  const port = await freePort();
  writeFileSync(configPath, gatewayYaml(upstreams, port));
  const logFd = openSync(logPath, "a");
  const urls = upstreams.map((u) => u.url);
  // The gateway runs compiled (dist/, as `gateway start` does), not through tsx.
  const variants: Variant[] = [
    { name: "gateway", child: await startDistGateway(configPath, port, "info", logFd), rounds: [] },
    { name: "plain", child: await startChild("plain", urls), rounds: [] },
    { name: "fast-gateway", child: await startChild("fastgw", urls), rounds: [] },
  ];
  if (opts["no-log-variant"]) {
    const quietPort = await freePort();
    const quietConfig = join(dir, "gateway-nolog.yaml");
    writeFileSync(quietConfig, gatewayYaml(upstreams, quietPort));
    const devNull = openSync("/dev/null", "a");
    variants.push({
      name: "gateway-nolog",
      child: await startDistGateway(quietConfig, quietPort, "warn", devNull),
      rounds: [],
    });
    closeSync(devNull);
  }
  closeSync(logFd);

  console.log(
    `proxy bench: Node ${process.version}, ${availableParallelism()} CPUs, ${CONNECTIONS} connections, ` +
      `${ROUNDS} rounds x ${fmt(AMOUNT)} requests per proxy (after a ${fmt(WARMUP)}-request warm-up each)`,
  );
  console.log(`gateway access log (info level): ${opts.log === "null" ? "/dev/null" : "a file in " + dir}`);
  console.log(`loading the proxies in turn, ABBA order; the client shares the machine with the servers\n`);

  // Warm-up: JIT, keep-alive pools to the upstreams, the gateway's first breaker windows. Not counted.
  for (const v of variants) await load(v, WARMUP);

  console.log(
    `${"round/proxy".padEnd(16)}${pad("req/s", 9)}${pad("p50 ms", 8)}${pad("p99 ms", 8)}${pad("CPU µs/req", 11)}`,
  );
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const r = await load(v, AMOUNT);
      v.rounds.push(r);
      console.log(row(`${i + 1} ${v.name}`, r));
    }
  }

  const med = (v: Variant): Round => ({
    rps: median(v.rounds.map((r) => r.rps)),
    p50: median(v.rounds.map((r) => r.p50)),
    p99: median(v.rounds.map((r) => r.p99)),
    cpuPerReq: median(v.rounds.map((r) => r.cpuPerReq)),
    failed: v.rounds.reduce((n, r) => n + r.failed, 0),
  });
  const [gw, plain, fast] = variants as [Variant, Variant, Variant];
  console.log(`\nmedians of ${ROUNDS} rounds`);
  for (const v of variants) console.log(row(v.name, med(v)));

  const g = med(gw);
  const p = med(plain);
  // Paired ratios (gateway and plain of the same round) cancel slow drifts better than a ratio of medians.
  const paired = median(gw.rounds.map((r, i) => r.rps / plain.rounds[i]!.rps));
  const pairedCpu = median(gw.rounds.map((r, i) => r.cpuPerReq / plain.rounds[i]!.cpuPerReq));
  console.log(
    `\ngateway/plain throughput: ${fmt((g.rps / p.rps) * 100, 1)}% (ratio of medians), ` +
      `${fmt(paired * 100, 1)}% (median of per-round ratios)`,
  );
  console.log(
    `gateway/plain CPU per request: ${fmt(g.cpuPerReq / p.cpuPerReq, 2)}x (ratio of medians), ` +
      `${fmt(pairedCpu, 2)}x (median of per-round ratios); ` +
      `the gateway spends ${fmt(g.cpuPerReq - p.cpuPerReq)} µs more per request`,
  );
  // CPU is the steadier figure: if the gateway needed no more CPU it could not be slower once the machine is idle.
  console.log(
    `gateway/plain by CPU (plain µs / gateway µs): ${fmt((p.cpuPerReq / g.cpuPerReq) * 100, 1)}% ` +
      `(what throughput would be with a core per proxy)`,
  );
  const met = paired >= TARGET;
  console.log(
    `target: gateway >= ${TARGET * 100}% of plain throughput with access logging on: ` +
      `${met ? "MET" : "NOT MET"} (${fmt(paired * 100, 1)}%)`,
  );
  const pairedFast = median(fast.rounds.map((r, i) => r.rps / plain.rounds[i]!.rps));
  console.log(
    `fast-gateway/plain throughput: ${fmt(pairedFast * 100, 1)}% (median of per-round ratios); ` +
      `gateway/fast-gateway: ${fmt((paired / pairedFast) * 100, 1)}%`,
  );
  if (variants[3]) {
    const n = med(variants[3]);
    console.log(
      `access logging costs ${fmt(g.cpuPerReq - n.cpuPerReq)} µs/req of gateway CPU ` +
        `(gateway ${fmt(g.cpuPerReq)} vs gateway-nolog ${fmt(n.cpuPerReq)})`,
    );
  }

  await Promise.all([...variants, ...upstreams.map((child) => ({ child }))].map((v) => v.child.stop()));
  if (logPath !== "/dev/null") {
    const text = readFileSync(logPath, "utf8");
    const access = text.split("\n").filter((l) => l.includes('"msg":"request"')).length;
    console.log(`gateway wrote ${fmt(access)} access lines (${fmt(text.length / 1e6, 1)} MB)`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
