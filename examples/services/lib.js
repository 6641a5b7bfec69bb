// What every sample service shares: --port/--name arguments, GET /health, JSON answers, and a clean SIGTERM exit.
import { Buffer } from "node:buffer";
import http from "node:http";
import process from "node:process";
import { setTimeout } from "node:timers";
import { URL } from "node:url";
import { parseArgs } from "node:util";

/**
 * Reads `--port N` (else $PORT, which the gateway sets for managed upstreams) and `--name NAME`, and `--host`
 * (else $HOST, else 127.0.0.1: the samples are meant to sit behind the gateway, not to face the network).
 */
export function options(defaults) {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      name: { type: "string" },
      host: { type: "string" },
    },
    strict: false,
  });
  const port = Number(values.port ?? process.env.PORT ?? defaults.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`invalid port: ${String(values.port ?? process.env.PORT)}\n`);
    process.exit(2);
  }
  const name = typeof values.name === "string" ? values.name : defaults.name;
  const host = typeof values.host === "string" ? values.host : (process.env.HOST ?? "127.0.0.1");
  return { port, name, host };
}

export function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Starts a service. `handle(req, url)` returns the JSON body for a request (or `{ status, body }`); every answer
 * names the service and the instance, so it shows which upstream the gateway picked.
 */
export function serve({ service, port, name, host = "127.0.0.1", handle = () => ({}) }) {
  const started = Date.now();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const who = { service, instance: name, port: server.address()?.port };
    if (url.pathname === "/health") {
      sendJson(res, 200, { status: "ok", ...who, uptimeSeconds: Math.round((Date.now() - started) / 1000) });
      return;
    }
    // Drain the request body: the samples do not use it, but a keep-alive connection needs it read.
    req.resume();
    req.on("end", () => {
      let out;
      try {
        out = handle(req, url);
      } catch (err) {
        out = { status: 400, body: { error: "bad_request", message: String(err) } };
      }
      const status = out && typeof out.status === "number" ? out.status : 200;
      const body = out && typeof out.status === "number" ? out.body : out;
      sendJson(res, status, { ...who, method: req.method, path: url.pathname, ...body });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, host, () => {
    const addr = server.address();
    process.stdout.write(
      `${service} (${name}) listening on http://${host}:${addr.port} (pid ${process.pid})\n`,
    );
  });
  server.on("error", (err) => {
    process.stderr.write(`${service} (${name}): ${err.message}\n`);
    process.exit(1);
  });
  let stopping = false;
  const stop = (signal) => {
    // A wrapper such as `gateway ports run` forwards the signal its process group got too: one stop is enough.
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${service} (${name}) got ${signal}, shutting down\n`);
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Requests still running get a moment to finish, then the process goes anyway.
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  return server;
}
