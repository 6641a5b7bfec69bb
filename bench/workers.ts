// Workers bench (`npm run bench:workers`, also run by `npm run bench`): the built gateway (dist/) with
// `workers: 1` and with `workers: 2`, loaded in the same run, against the same upstreams.
//
// Each variant is the real `gateway start` process tree (bin/gateway.js), its access log written to a file. Rounds
// alternate in ABBA order so a drift in machine load hits both alike. CPU per request is the whole tree's (primary
// plus workers, from /proc), so the cost of the primary's hop and of the log lines it writes for its workers is
// counted. On a 2-core machine the load generator needs a core of its own, so do not expect 2x here
// (docs/benchmarks.md says what to expect on more cores).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { installCleanup, median, startChild, tempDir } from "./lib.ts";

const { values: opts } = parseArgs({
  options: {
    keep: { type: "boolean", default: false },
    rounds: { type: "string", default: "4" },
    amount: { type: "string", default: "20000" },
    warmup: { type: "string", default: "5000" },
    connections: { type: "string", default: "32" },
  },
});
const ROUNDS = Number(opts.rounds);
const AMOUNT = Number(opts.amount);
const WARMUP = Number(opts.warmup);
const CONNECTIONS = Number(opts.connections);
const ROOT = join(import.meta.dirname, "..");

installCleanup(15 * 60_000, opts.keep);

interface Round {
  rps: number;
  p50: number;
  p99: number;
  cpuPerReq: number;
  /** The parent process's share: the primary's with workers, all of it with one process. */
  primaryPerReq: number;
  failed: number;
}

interface Variant {
  name: string;
  proc: ChildProcess;
  url: string;
  rounds: Round[];
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system) of a process and its live children, in microseconds, from /proc; `own` is the process's
 * alone (the primary's share with workers).
 */
function treeCpuMicros(pid: number): { total: number; own: number } {
  const stat = (p: number) => {
    try {
      const text = readFileSync(`/proc/${p}/stat`, "utf8");
      return text.slice(text.lastIndexOf(")") + 2).split(" ");
    } catch {
      return undefined;
    }
  };
  const pids = [pid];
  for (const name of readdirSync("/proc")) {
    if (/^\d+$/.test(name) && Number(stat(Number(name))?.[1]) === pid) pids.push(Number(name));
  }
  // Fields 14 and 15 of /proc/PID/stat (utime, stime): 11 and 12 after the state field.
  const ticks = (p: number) => {
    const f = stat(p);
    return f ? Number(f[11]) + Number(f[12]) : 0;
  };
  const micros = (t: number) => (t / TICKS_PER_SECOND) * 1e6;
  return { total: micros(pids.reduce((n, p) => n + ticks(p), 0)), own: micros(ticks(pid)) };
}

async function startGateway(
  name: string,
  workers: number,
  upstreams: string[],
  dir: string,
): Promise<Variant> {
  const port = await freePort();
  const adminPort = await freePort();
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    `listen: 127.0.0.1:${port}
workers: ${workers}
shutdownGrace: 1s
admin: { listen: ${adminPort} }
pools:
  app:
    upstreams:
${upstreams.map((u) => `      - { url: ${u} }`).join("\n")}
routes:
  - { prefix: /, pool: app }
`,
  );
  const log = openSync(join(dir, `${name}.log`), "a");
  const proc = spawn(process.execPath, [join(ROOT, "bin/gateway.js"), "start", "-c", config], {
    stdio: ["ignore", log, "inherit"],
    env: { ...process.env, GATEWAY_LOG_LEVEL: "info" },
  });
  closeSync(log);
  process.on("exit", () => proc.kill("SIGKILL"));
  // Ready: every worker serves and the first health round is done (a bench may poll).
  for (let i = 0; ; i++) {
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready && (workers === 1 || (await servingWorkers(adminPort)) === workers)) break;
    if (i > 300) throw new Error(`${name}: not ready after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, proc, url: `http://127.0.0.1:${port}`, rounds: [] };
}

async function servingWorkers(adminPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return Number(/^gateway_workers (\d+)/m.exec(text)?.[1] ?? 0);
}

async function load(v: Variant, amount: number): Promise<Round> {
  const cpu0 = treeCpuMicros(v.proc.pid!);
  const t0 = performance.now();
  const run = autocannon({ url: `${v.url}/bench`, connections: CONNECTIONS, amount });
  let answered = 0;
  let t1 = 0;
  run.on("response", () => {
    if (++answered === amount) t1 = performance.now();
  });
  const r = await run;
  const cpu1 = treeCpuMicros(v.proc.pid!);
  const seconds = ((t1 || performance.now()) - t0) / 1000;
  return {
    rps: r.latency.totalCount / seconds,
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuPerReq: (cpu1.total - cpu0.total) / amount,
    primaryPerReq: (cpu1.own - cpu0.own) / amount,
    failed: r.errors + r.timeouts + r.non2xx,
  };
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function row(name: string, r: Round): string {
  const cells = [
    fmt(r.rps).padStart(9),
    fmt(r.p50).padStart(8),
    fmt(r.p99).padStart(8),
    fmt(r.cpuPerReq).padStart(11),
    fmt(r.primaryPerReq).padStart(13),
  ];
  return `${name.padEnd(16)}${cells.join("")}${r.failed ? `   ${r.failed} failed!` : ""}`;
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, "dist/cli.js"))) throw new Error("no dist/: run `npm run build` first");
  const dir = tempDir("gateway-bench-workers-");
  const upstreams = await Promise.all([
    startChild("upstream", ["upstream-a", "0"]),
    startChild("upstream", ["upstream-b", "0"]),
  ]);
  const urls = upstreams.map((u) => u.url);
  const variants = [
    await startGateway("workers: 1", 1, urls, dir),
    await startGateway("workers: 2", 2, urls, dir),
  ];
  console.log(
    `workers bench (dist/): Node ${process.version}, ${availableParallelism()} CPUs, ${CONNECTIONS} connections, ` +
      `${ROUNDS} rounds x ${fmt(AMOUNT)} requests per variant (after a ${fmt(WARMUP)}-request warm-up each), ` +
      `access log to a file`,
  );
  for (const v of variants) await load(v, WARMUP);
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) v.rounds.push(await load(v, AMOUNT));
  }
  console.log(
    `\n${"".padEnd(16)}${"req/s".padStart(9)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"CPU µs/req".padStart(11)}${"primary µs".padStart(13)}`,
  );
  const medians = variants.map((v) => {
    const m: Round = {
      rps: median(v.rounds.map((r) => r.rps)),
      p50: median(v.rounds.map((r) => r.p50)),
      p99: median(v.rounds.map((r) => r.p99)),
      cpuPerReq: median(v.rounds.map((r) => r.cpuPerReq)),
      primaryPerReq: median(v.rounds.map((r) => r.primaryPerReq)),
      failed: v.rounds.reduce((n, r) => n + r.failed, 0),
    };
    console.log(row(v.name, m));
    return m;
  });
  const [one, two] = medians as [Round, Round];
  console.log(
    `\nworkers: 2 / workers: 1 = ${fmt(two.rps / one.rps, 2)}x req/s, ${fmt(two.cpuPerReq / one.cpuPerReq, 2)}x CPU per ` +
      `request (process trees: primary + workers)`,
  );
  for (const v of variants) {
    v.proc.kill("SIGTERM");
    await once(v.proc, "exit");
  }
  await Promise.all(upstreams.map((u) => u.stop()));
}

await main();
