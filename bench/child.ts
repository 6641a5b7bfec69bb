// Bench child processes: a sample upstream, the gateway, or a plain http-proxy-3 proxy, each reporting over IPC.
//
// Each server runs in its own process so the bench can read that process's CPU time (process.cpuUsage) and, for
// the failover bench, SIGKILL an upstream like a crash. Usage (forked by bench/lib.ts, never run by hand):
//   child.ts upstream <name> <port> [standby]  answers every path but /health with its name; with `standby`,
//                                              it listens only when told to over IPC
//   child.ts gateway <config.yaml> [level]     the real Gateway (level default info); logs to stdout (a file)
//   child.ts plain <url> [<url>...]            node:http + http-proxy-3, round robin, keep-alive agents, no logs
//   child.ts fastgw <url> <url>                fast-gateway 3.4.7 (restana + fast-proxy-lite), round robin
import http from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { createProxyServer } from "http-proxy-3";
import { createLogger, parseLogLevel, type LogLevel } from "../src/log/log.ts";
import { Gateway } from "../src/server/gateway.ts";
import type { FromChild } from "./lib.ts";

function send(msg: FromChild): void {
  process.send?.(msg);
}

async function listen(server: http.Server, port: number): Promise<number> {
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

async function upstream(name: string, port: number, standby: boolean): Promise<() => Promise<void>> {
  // A small fixed body; the name lets the failover bench see which upstream answered.
  const body = Buffer.from(name);
  const server = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": 2 }).end("ok");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": body.length }).end(body);
  });
  // Longer than the proxies' agent idle timeout (4 s), as a real upstream behind a keep-alive pool should be.
  server.keepAliveTimeout = 30_000;
  if (standby) {
    // Loaded and waiting: the failover bench "restarts" a primary by telling a spare process to listen.
    const go = new Promise<void>((resolve) => {
      const onMessage = (msg: unknown) => {
        if (typeof msg !== "object" || msg === null || !("type" in msg) || msg.type !== "listen") return;
        process.off("message", onMessage);
        resolve();
      };
      process.on("message", onMessage);
    });
    send({ type: "standby" });
    await go;
  }
  send({ type: "ready", port: await listen(server, port) });
  return () => new Promise((r) => server.close(() => r()));
}

async function gateway(configPath: string, level: LogLevel): Promise<() => Promise<void>> {
  // Info level writes one access line per request, the configuration the speed target is stated for. stdout is
  // whatever the parent gave this process (a file), as with `gateway start > gateway.log`.
  const gw = await Gateway.start({ configPath, log: createLogger({ level }), defaultMetrics: true });
  // Ready means the first health round is done, so no measured request meets an unchecked pool.
  const deadline = Date.now() + 10_000;
  while (!gw.readiness().ready) {
    if (Date.now() > deadline) throw new Error(`gateway not ready: ${gw.readiness().reason ?? "?"}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  send({ type: "ready", port: Number(new URL(gw.url).port) });
  return () => gw.stop();
}

async function plain(targets: string[]): Promise<() => Promise<void>> {
  // The baseline the issue names: http-proxy's own response handling, one keep-alive agent per upstream (without
  // one, http-proxy opens a connection per request), round robin, an error handler so a failure cannot crash it.
  const agents = targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64 }));
  const proxy = createProxyServer({});
  proxy.on("error", (_err, _req, res) => {
    if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  let next = 0;
  const server = http.createServer((req, res) => {
    const i = next;
    next = (next + 1) % targets.length;
    proxy.web(req, res, { target: targets[i]!, agent: agents[i]! });
  });
  send({ type: "ready", port: await listen(server, 0) });
  return async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(() => r(undefined)));
    for (const a of agents) a.destroy();
  };
}

async function fastGateway(targets: string[]): Promise<() => Promise<void>> {
  // The best-known Node peer (registry-policies-scale.md §4): its own router and keep-alive forwarder; one route,
  // the upstream chosen per request in proxyHandler, as its docs show for load balancing.
  const { default: gateway } = (await import("fast-gateway")) as unknown as {
    default: (opts: unknown) => { start(port: number, host: string): Promise<http.Server> };
  };
  let next = 0;
  const server = await gateway({
    routes: [
      {
        prefix: "",
        prefixRewrite: "",
        target: targets[0],
        disableQsOverwrite: true,
        proxyHandler: (
          req: unknown,
          res: unknown,
          url: string,
          proxy: (...a: unknown[]) => unknown,
          opts: { base: string },
        ) => {
          opts.base = targets[next]!;
          next = (next + 1) % targets.length;
          return proxy(req, res, url, opts);
        },
      },
    ],
  }).start(0, "127.0.0.1");
  send({ type: "ready", port: (server.address() as AddressInfo).port });
  return async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(() => r(undefined)));
  };
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  let stop: () => Promise<void>;
  if (mode === "upstream")
    stop = await upstream(args[0] ?? "upstream", Number(args[1] ?? 0), args[2] === "standby");
  else if (mode === "gateway") stop = await gateway(args[0]!, parseLogLevel(args[1]));
  else if (mode === "plain") stop = await plain(args);
  else if (mode === "fastgw") stop = await fastGateway(args);
  else throw new Error(`unknown mode ${String(mode)}`);

  const quit = () => {
    void stop().finally(() => process.exit(0));
    // A stop that hangs (a stuck connection) must not keep the bench waiting.
    setTimeout(() => process.exit(0), 3_000).unref();
  };
  process.on("message", (msg: unknown) => {
    const type = typeof msg === "object" && msg !== null && "type" in msg ? msg.type : undefined;
    if (type === "cpu") {
      const u = process.cpuUsage();
      send({ type: "cpu", micros: u.user + u.system });
    } else if (type === "stop") quit();
  });
  // The parent died (or was killed): do not outlive it.
  process.on("disconnect", () => process.exit(0));
}

main().catch((err: unknown) => {
  send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
});
