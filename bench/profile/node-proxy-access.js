// The yardstick's plain proxy with the gateway's access line added: the proxy code of the yardstick's
// proxies/node-proxy.js (node:http + http-proxy 1.18.1, round robin, keep-alive agent; without its cluster branch)
// plus the line built and written nearly as the gateway does it (src/log/log.ts): the fields through
// JSON.stringify, a template with an ISO time kept per millisecond, the lines batched and written to stdout at most
// every 5 ms. It answers one question: what the contract's access line costs a proxy that does nothing else
// (account.sh, docs/benchmarks.md "Eighth pass").
//   PORT=19200 UPSTREAM_A=... UPSTREAM_B=... YARDSTICK=../shared/bench node bench/profile/node-proxy-access.js [mode]
// The mode (default line): line = built and written; build = built, then dropped; write = a constant line of the
// same length queued and written; hook = only the `finish` listener that calls it; none = the plain proxy.
import http from "node:http";
import path from "node:path";
import process from "node:process";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath, parse } from "node:url";
import { setImmediate, setTimeout } from "node:timers";
import { performance } from "node:perf_hooks";

// http-proxy from the yardstick's own node_modules: the same library and version as its node row.
const here = path.dirname(fileURLToPath(import.meta.url));
const yardstick = path.resolve(process.env.YARDSTICK || path.join(here, "../../../shared/bench"));
const httpProxy = createRequire(path.join(yardstick, "package.json"))("http-proxy");

const port = Number(process.env.PORT);
const upstreams = [process.env.UPSTREAM_A, process.env.UPSTREAM_B].filter(Boolean);
const mode = process.argv[2] ?? "line";
if (!port || upstreams.length === 0 || !["line", "build", "write", "hook", "none"].includes(mode)) {
  process.stderr.write("need PORT, UPSTREAM_A [UPSTREAM_B], and a mode: line, build, write, hook, none\n");
  process.exit(2);
}

let pending = [];
let scheduled = false;
let lastWrite = -Infinity;
const flush = () => {
  scheduled = false;
  if (pending.length === 0) return;
  const text = pending.join("");
  pending = [];
  lastWrite = performance.now();
  process.stdout.write(text);
};
const add = (line) => {
  pending.push(line);
  if (scheduled) return;
  scheduled = true;
  const wait = lastWrite + 5 - performance.now();
  if (wait <= 0) setImmediate(flush);
  else setTimeout(flush, wait).unref();
};

const CONSTANT =
  '{"time":"2026-12-04T17:02:48.848Z","level":"info","msg":"request","method":"GET","path":"/","status":200,' +
  '"durationMs":1.4,"route":"/","pool":"app","upstream":"127.0.0.1:19001","attempts":1,' +
  '"requestId":"6960a10a-03a4-4277-b86e-53e8b30e214a","client":"127.0.0.1"}\n';
let isoMs = -1;
let iso = "";
let dropped = 0;
function access(req, res, started, upstream) {
  if (mode === "hook") return;
  if (mode === "write") return add(CONSTANT);
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    iso = new Date(ms).toISOString();
  }
  const url = req.url;
  const q = url.indexOf("?");
  const rest = JSON.stringify({
    method: req.method,
    path: q < 0 ? url : url.slice(0, q),
    status: res.statusCode,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
    route: "/",
    pool: "app",
    upstream,
    attempts: 1,
    requestId: randomUUID(),
    client: req.socket.remoteAddress,
  });
  const line = `{"time":"${iso}","level":"info","msg":"request",${rest.slice(1)}\n`;
  if (mode === "line") add(line);
  else dropped += line.length;
}

// Parsed once, as the yardstick's node row does.
const targets = upstreams.map((u) => parse(u));
const names = targets.map((t) => t.host);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64 });
const proxy = httpProxy.createProxyServer({ agent, xfwd: false });
proxy.on("error", (err, req, res) => {
  if (res && typeof res.writeHead === "function") {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
    res.end("bad gateway\n");
  }
});

let rr = 0;
const server = http.createServer((req, res) => {
  if (mode !== "none") {
    const started = performance.now();
    const upstream = names[rr];
    res.on("finish", () => access(req, res, started, upstream));
  }
  const target = targets[rr];
  rr = (rr + 1) % targets.length;
  proxy.web(req, res, { target });
});
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => {
  process.stderr.write(`node-proxy-access (${mode}) pid ${process.pid} on 127.0.0.1:${port}\n`);
});
const stop = () => {
  flush();
  server.close();
  // Uses the dropped lines, so nothing can treat their build as dead code.
  if (mode === "build") process.stderr.write(`built and dropped ${dropped} bytes of access lines\n`);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
