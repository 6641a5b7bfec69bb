// The forwarding engine: the upstreams' keep-alive agents, plain HTTP attempts on node:http (attempt.ts), and
// WebSocket upgrades through the proxy library (http-proxy-3), of which this is the only importer.
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { createProxyServer } from "http-proxy-3";
import { upstreamAgent } from "../net/upstream-http.ts";
import { HttpAttempt, UpstreamError, type AttemptOptions } from "./attempt.ts";
import { DeadlineSweep } from "./deadlines.ts";
import type { HeaderBag } from "./phases.ts";

export { HttpAttempt, UpstreamError };
export type { AttemptOptions, AttemptOutcome, FailureKind } from "./attempt.ts";

/**
 * Owns what outlives one request: a keep-alive agent per upstream (net/upstream-http.ts), the deadline sweep of
 * attempts in flight, and the proxy library for WebSocket upgrades.
 */
export class Forwarder {
  private readonly proxy = createProxyServer({ xfwd: false });
  private readonly agents = new Map<object, http.Agent>();
  /** Connect and response deadlines of every HTTP attempt in flight, checked by one timer. */
  readonly deadlines = new DeadlineSweep();

  constructor() {
    // Errors reach the per-call callbacks; these listeners only keep a stray event from crashing the process.
    this.proxy.on("error", () => undefined);
    // One `proxyReqWs` listener per pending upgrade.
    this.proxy.setMaxListeners(0);
    this.proxy.on("econnreset", () => undefined);
  }

  /** The keep-alive agent of one upstream (`owner`: the upstream's state object), created on first use. */
  agent(owner: object, url: URL): http.Agent {
    let agent = this.agents.get(owner);
    if (!agent) {
      agent = upstreamAgent(url, true);
      this.agents.set(owner, agent);
    }
    return agent;
  }

  /** Closes an upstream's pooled connections (after it left the config and its requests finished). */
  releaseAgent(owner: object): void {
    this.agents.get(owner)?.destroy();
    this.agents.delete(owner);
  }

  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    this.deadlines.close();
  }

  /**
   * Starts one attempt of a plain HTTP request; `outcome` settles once: on response headers (already relayed),
   * on failure, or on client abort (`clientClosed`). A client already gone gets no attempt.
   */
  start(res: http.ServerResponse, method: string, options: AttemptOptions): HttpAttempt | undefined {
    if (res.destroyed) return undefined;
    return new HttpAttempt(res, method, options, this.deadlines);
  }

  /**
   * Tunnels a WebSocket upgrade. The upstream connection is opened first, by the gateway itself: until it is up
   * nothing of the upgrade has left and the client socket is untouched, so a refused or timed-out connect comes
   * back as a failure the pipeline may retry elsewhere. Once connected, http-proxy-3 runs the upgrade on that
   * socket. Resolves "upgraded" once the upstream switched protocols, the status when it replied with plain HTTP
   * (relayed to the client), or the failure; a failure after the connect has `onFailure` write the error to the
   * client first (synchronously: the proxy library closes the socket right after).
   */
  ws(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    options: WsOptions,
  ): Promise<"upgraded" | number | UpstreamError> {
    return new Promise((resolve) => {
      const { target } = options;
      const secure = target.protocol === "https:" || target.protocol === "wss:";
      const host = target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname;
      const port = Number(target.port) || (secure ? 443 : 80);
      const upstream: net.Socket = secure
        ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }) })
        : net.connect({ host, port });
      let connected = false;
      let done = false;
      const finishConnect = (r: UpstreamError) => {
        if (done) return;
        done = true;
        clearTimeout(connectTimer);
        socket.off("close", onClientGone);
        upstream.destroy();
        resolve(r);
      };
      const onClientGone = () =>
        finishConnect(new UpstreamError("connect", "ECLIENTGONE", "client left during the connect", false));
      const connectTimer = setTimeout(() => {
        const ms = options.connectTimeout;
        finishConnect(
          new UpstreamError("connect_timeout", "ECONNECTTIMEOUT", `connect timed out after ${ms}ms`, false),
        );
      }, options.connectTimeout);
      socket.once("close", onClientGone);
      upstream.once("error", (err: NodeJS.ErrnoException) => {
        if (!connected)
          finishConnect(new UpstreamError("connect", err.code ?? "ECONNRESET", err.message, false));
      });
      upstream.once(secure ? "secureConnect" : "connect", () => {
        if (done) return;
        connected = true;
        done = true;
        clearTimeout(connectTimer);
        socket.off("close", onClientGone);
        this.tunnel(req, socket, head, upstream, secure, options).then(resolve, resolve);
      });
    });
  }

  private tunnel(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    connection: net.Socket,
    secure: boolean,
    options: WsOptions,
  ): Promise<"upgraded" | number | UpstreamError> {
    return new Promise((resolve) => {
      let done = false;
      let timedOut = false;
      let pending: http.ClientRequest | undefined;
      const finish = (r: "upgraded" | number | UpstreamError) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.proxy.off("proxyReqWs", onProxyReq);
        resolve(r);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        if (pending) pending.destroy();
        else connection.destroy();
      }, options.timeout);
      const onProxyReq = (proxyReq: http.ClientRequest, r: http.IncomingMessage) => {
        if (r !== req) return;
        pending = proxyReq;
        // Registered before the library's own listeners: the response phase sees the head before it is written.
        proxyReq.once("upgrade", (proxyRes: http.IncomingMessage) => {
          options.onHead?.(101, proxyRes.headers);
          finish("upgraded");
        });
        // A refused upgrade: http-proxy relays the answer but leaves the upstream socket open (node-http-proxy #783).
        proxyReq.once("response", (proxyRes: http.IncomingMessage) => {
          const status = proxyRes.statusCode ?? 502;
          options.onHead?.(status, proxyRes.headers);
          proxyRes.once("end", () => connection.destroy());
          finish(status);
        });
      };
      this.proxy.on("proxyReqWs", onProxyReq);
      req.url = options.path;
      const agent = oneSocketAgent(connection, secure);
      this.proxy.ws(req, socket, head, { target: options.target, agent, toProxy: true }, (err: Error) => {
        connection.destroy();
        if (done) return;
        const code = (err as NodeJS.ErrnoException).code ?? "EPROTO";
        const error = timedOut
          ? new UpstreamError("response_timeout", "ETIMEDOUT", "upgrade not answered in time", true)
          : new UpstreamError("reset", code, err.message, true);
        options.onFailure(error);
        finish(error);
      });
    });
  }
}

export interface WsOptions {
  target: URL;
  path: string;
  connectTimeout: number;
  /** How long the upstream may take to answer the upgrade once connected. */
  timeout: number;
  /** The response phase, on the upstream's answer (101 or a refusal) before it is relayed. */
  onHead?: ((status: number, headers: HeaderBag) => void) | undefined;
  onFailure: (err: UpstreamError) => void;
}

/** An agent that hands out one already connected socket: the upgrade request goes on the gateway's connection. */
function oneSocketAgent(connection: net.Socket, secure: boolean): http.Agent {
  const agent = secure ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => connection;
  return agent;
}
