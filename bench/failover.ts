// Failover bench (`npm run bench:failover`): SIGKILLs a primary under steady load, restarts it, and reports what
// clients saw through the gateway and, when nginx is installed, through nginx with `backup` + `proxy_next_upstream`.
//
// Each upstream is its own process so the primary can die like a crashed service (SIGKILL: no FIN for requests
// in flight, connection refused afterwards). The upstreams answer with their name, so the client side alone
// tells where each request went; no figure depends on the proxy's own account of itself.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { installCleanup, sleep, standbyUpstream, startChild, tempDir, track, type Child } from "./lib.ts";

const { values: opts } = parseArgs({
  options: {
    // Keep the temp dirs (configs, the proxies' logs) and print where they are.
    keep: { type: "boolean", default: false },
    duration: { type: "string", default: "12" },
    "kill-at": { type: "string", default: "3" },
    "restart-at": { type: "string", default: "7" },
    loops: { type: "string", default: "8" },
    "no-nginx": { type: "boolean", default: false },
  },
});
const DURATION = Number(opts.duration) * 1000;
const KILL_AT = Number(opts["kill-at"]) * 1000;
const RESTART_AT = Number(opts["restart-at"]) * 1000;
const LOOPS = Number(opts.loops);
const REQUEST_TIMEOUT = 5_000;
/** Answers from the new side needed after a switch before it counts as done. */
const MIN_EVIDENCE = 50;

installCleanup(3 * 60_000, opts.keep);

type Source = "primary" | "backup" | "failed";

interface Sample {
  /** ms since the load started, when the response ended (or the request failed). */
  end: number;
  latency: number;
  source: Source;
  /** For a failed request: the status and error code of the answer, or the client-side error. */
  why?: string;
}

interface Proxy {
  url: string;
  stop(): Promise<void>;
  /** Lines worth showing after the run: what the proxy itself logged about the failover. */
  notes(t0Wall: number): string[];
}

interface Outcome {
  name: string;
  samples: Sample[];
  killAt: number;
  /** When the restarted primary was listening again (ms since the load started). */
  backAt: number;
  notes: string[];
}

// ---- the proxies -------------------------------------------------------------------------------------------

async function startGateway(primary: string, backup: string): Promise<Proxy> {
  const dir = tempDir("gateway-failover-");
  const configPath = join(dir, "gateway.yaml");
  const logPath = join(dir, "gateway.log");
  // The issue's settings: checks every 1 s, 2 failures to go out, 2 passes to come back, 2 retries. Everything
  // else (breaker included) is the bundled default.
  writeFileSync(
    configPath,
    `listen: 127.0.0.1:0
shutdownGrace: 1s
defaults:
  healthCheck: { path: /health, interval: 1s, timeout: 500ms, healthyThreshold: 2, unhealthyThreshold: 2 }
  timeouts: { connect: 1s, response: 5s }
  retries: 2
pools:
  app:
    upstreams:
      - { url: ${primary}, id: primary }
      - { url: ${backup}, id: backup, backup: true }
routes:
  - { prefix: /, pool: app }
`,
  );
  const fd = openSync(logPath, "a");
  let child: Child;
  try {
    child = await startChild("gateway", [configPath, "info"], fd);
  } finally {
    closeSync(fd);
  }
  return {
    url: child.url,
    stop: () => child.stop(),
    notes: (t0Wall) => gatewayNotes(readFileSync(logPath, "utf8"), t0Wall),
  };
}

/** The gateway's own account: its state-change events, and how many requests needed a retry. */
function gatewayNotes(log: string, t0Wall: number): string[] {
  const out: string[] = [];
  let retried = 0;
  for (const text of log.split("\n")) {
    if (!text) continue;
    const l = JSON.parse(text) as Record<string, unknown>;
    if (l.msg === "request") {
      if (typeof l.attempts === "number" && l.attempts > 1) retried++;
      continue;
    }
    if (l.msg !== "failover" && l.msg !== "health_change" && l.msg !== "breaker_change") continue;
    const t = (Date.parse(String(l.time)) - t0Wall) / 1000;
    const what =
      l.msg === "failover"
        ? `${String(l.from)} -> ${String(l.to)}`
        : `${String(l.upstream)} ${String(l.from)} -> ${String(l.to)}`;
    out.push(`t=${t.toFixed(2)} s  ${l.msg}  ${what}  (${String(l.reason)})`);
  }
  out.push(`requests that needed a retry: ${retried}`);
  return out;
}

function nginxPath(): string | undefined {
  const r = spawnSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, "127.0.0.1");
      c.once("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function startNginx(bin: string, primary: string, backup: string): Promise<Proxy> {
  const dir = tempDir("nginx-failover-");
  const port = await freePort();
  const host = (u: string) => new URL(u).host;
  // The nginx equivalent of the gateway's pool: the primary out for 2 s after one failure, the backup used only
  // while no primary is, failed attempts (error, timeout, 502) passed to the next server, keep-alive upstream.
  // One process, in the foreground, everything under the temp prefix: nothing of the system install is touched.
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
    server ${host(primary)} max_fails=1 fail_timeout=2s;
    server ${host(backup)} backup;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502;
      proxy_connect_timeout 1s;
      proxy_read_timeout 5s;
    }
  }
}
`,
  );
  const proc = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  track(proc);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  await Promise.race([
    waitForPort(port, 5_000),
    exited.then(() => Promise.reject(new Error("nginx exited at start (see its error above)"))),
  ]);
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
    notes: () => {
      const log = readFileSync(join(dir, "error.log"), "utf8").split("\n");
      const failed = log.filter((l) => l.includes("[error]") && l.includes("upstream")).length;
      const disabled = log.filter((l) => l.includes("upstream server temporarily disabled")).length;
      return [
        `upstream errors logged (each one an attempt passed to the next server): ${failed}`,
        `"upstream server temporarily disabled" warnings: ${disabled}`,
      ];
    },
  };
}

// ---- the load --------------------------------------------------------------------------------------------

interface Answer {
  source: Source;
  why?: string;
}

/** Why a failed answer failed, short enough to group by: status plus the gateway's error message, if any. */
function failure(status: number | undefined, body: string): string {
  try {
    const j = JSON.parse(body) as { message?: unknown };
    if (typeof j.message === "string") return `${String(status)} ${j.message}`;
  } catch {
    // not the gateway's JSON error (nginx's HTML page, or a body from an upstream)
  }
  return `${String(status)} ${body.slice(0, 60).replace(/\s+/g, " ")}`;
}

function request(agent: http.Agent, url: string): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        if (ok && (body === "primary" || body === "backup")) resolve({ source: body });
        else resolve({ source: "failed", why: failure(res.statusCode, body) });
      });
      res.on("error", (err) => resolve({ source: "failed", why: `response: ${err.message}` }));
    });
    req.setTimeout(REQUEST_TIMEOUT, () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve({ source: "failed", why: `request: ${err.message}` }));
  });
}

async function scenario(
  name: string,
  start: (primary: string, backup: string) => Promise<Proxy>,
): Promise<Outcome> {
  let primary = await startChild("upstream", ["primary", "0"]);
  const backup = await startChild("upstream", ["backup", "0"]);
  // The replacement primary is loaded before the load starts and listens only at RESTART_AT: the restart time is
  // then exact, and no process start competes with the proxy for CPU during the outage.
  const restart = await standbyUpstream("primary", primary.port);
  const proxy = await start(primary.url, backup.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: LOOPS });
  const url = `${proxy.url}/item`;
  // Open the connections and settle the JIT before the clock starts.
  for (let i = 0; i < 1000; i++) await request(agent, url);

  const samples: Sample[] = [];
  const t0 = performance.now();
  const t0Wall = Date.now();
  const now = () => performance.now() - t0;
  let killAt = 0;
  let backAt = Infinity;

  const loop = async () => {
    while (now() < DURATION) {
      const started = now();
      const answer = await request(agent, url);
      const end = now();
      samples.push({ end, latency: end - started, ...answer });
    }
  };
  const director = async () => {
    await sleep(KILL_AT - now());
    killAt = now();
    await primary.kill();
    await sleep(RESTART_AT - now());
    primary = await restart();
    backAt = now();
  };
  await Promise.all([director(), ...Array.from({ length: LOOPS }, loop)]);
  agent.destroy();
  await proxy.stop();
  await Promise.all([primary.stop(), backup.stop()]);
  return { name, samples, killAt, backAt, notes: proxy.notes(t0Wall) };
}

// ---- the report ------------------------------------------------------------------------------------------

interface Figures {
  total: number;
  failed: number;
  toBackup: string;
  toPrimary: string;
  p99: number;
  max: number;
  maxAroundKill: number;
}

function figures(o: Outcome): Figures {
  const s = [...o.samples].sort((a, b) => a.end - b.end);
  const lat = s.map((x) => x.latency).sort((a, b) => a - b);
  // Kill → backup: the last answer after the kill that was not from the backup marks the moment after which all
  // were (none at all: the switch was immediate). Restart → primary: likewise, from the moment the restarted
  // primary listened again. A switch counts only when enough answers follow it to show it held.
  const switched = (from: number, to: number, target: Source): string | undefined => {
    const window = s.filter((x) => x.end >= from && x.end < to);
    const lastOther = window.findLastIndex((x) => x.source !== target);
    if (window.length - 1 - lastOther < MIN_EVIDENCE) return undefined;
    return `${(((window[lastOther]?.end ?? from) - from) / 1000).toFixed(2)} s`;
  };
  const toBackup = switched(o.killAt, o.backAt, "backup") ?? "never";
  const toPrimary =
    switched(o.backAt, Infinity, "primary") ??
    `not within the run (> ${((DURATION - o.backAt) / 1000).toFixed(1)} s)`;
  const aroundKill = s.filter((x) => x.end >= o.killAt && x.end < o.killAt + 2_000).map((x) => x.latency);
  return {
    total: s.length,
    failed: s.filter((x) => x.source === "failed").length,
    toBackup,
    toPrimary,
    p99: lat[Math.floor(lat.length * 0.99)] ?? 0,
    max: lat.at(-1) ?? 0,
    // reduce, not Math.max(...): a fast proxy answers tens of thousands of requests in 2 s.
    maxAroundKill: aroundKill.reduce((m, x) => Math.max(m, x), 0),
  };
}

function timeline(outcomes: Outcome[]): string[] {
  const head = `${"second".padEnd(8)}${outcomes.map((o) => `${o.name.padStart(10)}: primary/backup/failed`).join("  ")}`;
  const lines = [head];
  for (let sec = 0; sec * 1000 < DURATION; sec++) {
    const cells = outcomes.map((o) => {
      // The last second also holds the answers to requests still running when the load stopped.
      const last = (sec + 1) * 1000 >= DURATION;
      const inSec = o.samples.filter((x) => x.end >= sec * 1000 && (last || x.end < (sec + 1) * 1000));
      const n = (src: Source) => inSec.filter((x) => x.source === src).length;
      return `${String(n("primary")).padStart(18)}/${String(n("backup")).padStart(6)}/${String(n("failed")).padStart(6)}`;
    });
    // Marks from the first run; the others kill at the same time and restart within a few hundred ms.
    const first = outcomes[0];
    const within = (t: number) => t >= sec * 1000 && t < (sec + 1) * 1000;
    const mark = !first
      ? ""
      : within(first.killAt)
        ? "  <- kill"
        : within(first.backAt)
          ? "  <- primary back"
          : "";
    lines.push(`${`${sec}-${sec + 1}`.padEnd(8)}${cells.join("  ")}${mark}`);
  }
  return lines;
}

async function main(): Promise<void> {
  console.log(
    `failover bench: Node ${process.version}, ${LOOPS} keep-alive GET loops for ${DURATION / 1000} s; ` +
      `primary SIGKILLed at t=${KILL_AT / 1000} s, restarted on its port at t=${RESTART_AT / 1000} s`,
  );
  const outcomes = [await scenario("gateway", startGateway)];
  const bin = opts["no-nginx"] ? undefined : nginxPath();
  if (bin) {
    const version = spawnSync(bin, ["-v"], { encoding: "utf8" }).stderr.trim();
    console.log(`nginx: ${version} (${bin})`);
    outcomes.push(await scenario("nginx", (p, b) => startNginx(bin, p, b)));
  } else {
    console.log(opts["no-nginx"] ? "nginx: skipped (--no-nginx)" : "nginx: not on PATH, skipped");
  }

  const figs = outcomes.map(figures);
  const rows: [string, (f: Figures) => string][] = [
    ["requests", (f) => String(f.total)],
    ["failed (non-2xx or error)", (f) => String(f.failed)],
    ["kill -> all on backup", (f) => f.toBackup],
    ["restart -> all on primary", (f) => f.toPrimary],
    ["p99 latency", (f) => `${f.p99.toFixed(1)} ms`],
    ["max latency", (f) => `${f.max.toFixed(1)} ms`],
    ["max latency, 2 s after kill", (f) => `${f.maxAroundKill.toFixed(1)} ms`],
  ];
  const w = 34;
  console.log(`\n${"".padEnd(28)}${outcomes.map((o) => o.name.padStart(w)).join("")}`);
  for (const [label, get] of rows)
    console.log(`${label.padEnd(28)}${figs.map((f) => get(f).padStart(w)).join("")}`);
  for (const o of outcomes) {
    console.log(
      `restarted primary listening again at t=${(o.backAt / 1000).toFixed(2)} s (${o.name} run); kill at t=${(o.killAt / 1000).toFixed(2)} s`,
    );
  }
  console.log("");
  for (const line of timeline(outcomes)) console.log(line);
  for (const o of outcomes) {
    console.log(`\n${o.name}, own account:`);
    for (const n of o.notes) console.log(`  ${n}`);
    const reasons = new Map<string, number>();
    for (const x of o.samples) if (x.why) reasons.set(x.why, (reasons.get(x.why) ?? 0) + 1);
    if (reasons.size) console.log(`${o.name}, failed requests as the client saw them:`);
    for (const [why, n] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 8))
      console.log(`  ${n} x ${why}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
